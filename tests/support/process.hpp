#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace ipp::test {

/// The text of the file at `p` (empty when there is none).
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Alive and not a zombie waiting for its parent.
inline bool alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() || stat[close + 2] != 'Z';
}

/// A child process, stopped and reaped when the object dies: asked with SIGTERM first (so a
/// controller removes its shared memory), then killed if it lingers.
class Process {
 public:
  /// Starts `argv`; with `stderr_file`, its standard error goes to that file.
  explicit Process(const std::vector<std::string>& argv, const std::string& stderr_file = {}) {
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (!stderr_file.empty())
      posix_spawn_file_actions_addopen(&actions, 2, stderr_file.c_str(),
                                       O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + argv.at(0));
  }
  ~Process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      if (wait(std::chrono::milliseconds(2000)) < 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
      }
    }
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  void signal(int sig) const { ::kill(pid_, sig); }
  /// Waits up to `limit` for the process to exit; returns its exit status or -1 on timeout.
  int wait(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
};

inline std::string binary(const std::string& name) {
  return std::string(IPP_BUILD_DIR) + "/bin/" + name;
}

/// What an ippctl run printed, and its exit code.
struct CtlResult {
  int code;
  std::string out;
  std::string err;
};

/// Runs the built ippctl on the profile `profile` with `args` (shell words), as a user would
/// from a shell; its output goes through files in the profile, removed after.
inline CtlResult ippctl(const std::filesystem::path& profile, const std::string& args) {
  static std::atomic<int> runs{0};
  const int n = runs.fetch_add(1);
  const auto out = profile / ("ippctl-" + std::to_string(n) + ".out");
  const auto err = profile / ("ippctl-" + std::to_string(n) + ".err");
  const std::string cmd = binary("ippctl") + " --profile-dir '" + profile.string() + "' " + args +
                          " > '" + out.string() + "' 2> '" + err.string() + "'";
  const int status = std::system(cmd.c_str());
  CtlResult r{WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), slurp(out),
              slurp(err)};
  std::error_code ec;
  std::filesystem::remove(out, ec);
  std::filesystem::remove(err, ec);
  return r;
}

}  // namespace ipp::test
