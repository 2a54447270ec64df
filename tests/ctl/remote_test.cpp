// Engines on other hosts: the hosts a user names, and the script that runs an engine there
// (run here by sh as ssh's remote shell would run it; tests/cluster/hosts_test.cpp runs it
// over a real ssh).
#include "ipp/ctl/remote.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ipp/ctl/process.hpp"
#include "ipp/error.hpp"
#include "support/paths.hpp"
#include "support/process.hpp"

namespace ipp::ctl {
namespace {

using namespace std::chrono_literals;

TEST(RemoteHosts, AListNamesEachHostAndItsEngines) {
  EXPECT_EQ(parse_hosts("a:4,b:8"), (std::vector<RemoteHost>{{"a", 4}, {"b", 8}}));
  EXPECT_EQ(parse_hosts("me@node1, node2"),
            (std::vector<RemoteHost>{{"me@node1", 1}, {"node2", 1}}));
  EXPECT_EQ(parse_hosts("[fd00::7]:3,fe80::1"),
            (std::vector<RemoteHost>{{"fd00::7", 3}, {"fe80::1", 1}}));
}

TEST(RemoteHosts, ABadEntryIsNamed) {
  for (const char* bad : {"a:0", "a:x", "a:2000", "a,,b", "", "[::1", "-oProxyCommand=x", "a b"}) {
    try {
      (void)parse_hosts(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UsageError& e) {
      EXPECT_FALSE(std::string(e.what()).empty());
    }
  }
  try {
    (void)parse_hosts("a:4,b:0");
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'b:0'"), std::string::npos) << e.what();
  }
}

TEST(RemoteHosts, AHostsFileTakesCommentsAndEitherWayOfCounting) {
  test::TempDir dir;
  std::ofstream(dir / "hosts") << "# the lab\nnode1:4\n\n  node2 2   # fast\nnode3\n";
  EXPECT_EQ(read_hostfile(dir / "hosts"),
            (std::vector<RemoteHost>{{"node1", 4}, {"node2", 2}, {"node3", 1}}));
  std::ofstream(dir / "bad") << "node1:4\nnode2:many\n";
  try {
    (void)read_hostfile(dir / "bad");
    ADD_FAILURE();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)read_hostfile(dir / "missing"), UsageError);
}

TEST(RemoteHosts, TheCodeSshReturnsSaysHowTheEngineEnded) {
  EXPECT_FALSE(remote_wait_status(255).has_value()) << "ssh itself failed";
  const int segv = *remote_wait_status(128 + SIGSEGV);
  EXPECT_TRUE(WIFSIGNALED(segv));
  EXPECT_EQ(WTERMSIG(segv), SIGSEGV);
  const int lost = *remote_wait_status(83);
  EXPECT_TRUE(WIFEXITED(lost));
  EXPECT_EQ(WEXITSTATUS(lost), 83);
  EXPECT_EQ(WEXITSTATUS(*remote_wait_status(0)), 0);
}

TEST(RemoteHosts, AStartLineGivesThePidAndHost) {
  auto s = parse_remote_start("ipp-engine 4242 node7");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->pid, 4242);
  EXPECT_EQ(s->host, "node7");
  EXPECT_FALSE(parse_remote_start("ipp-engine x node7"));
  EXPECT_FALSE(parse_remote_start("hello 1 2"));
}

std::string run_sh(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  char buf[256];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;)
    out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST(RemoteHosts, QuotingKeepsEveryCharacter) {
  for (const std::string s : {"plain", "it's", "a b", "$HOME `x` \"q\" \\ ;|&", ""}) {
    EXPECT_EQ(run_sh("printf %s " + shell_quote(s)), s);
  }
}

/// The remote command run by sh here, as sshd runs it: the "ssh" is `sh -c "$0"`-style.
class RemoteScript : public ::testing::Test {
 protected:
  /// Starts the script with `engine` (a shell command run as the engine, given --file PATH)
  /// and writes `file` to it; returns its pid.
  pid_t start(const std::string& engine, const std::string& file) {
    return start_argv({"/bin/sh", "-c", engine, "engine"}, file);
  }
  pid_t start_argv(const std::vector<std::string>& engine, const std::string& file) {
    const auto argv = remote_engine_command({}, "host", file.size(), engine);
    EXPECT_EQ(argv.at(0), "ssh");
    EXPECT_EQ(argv.at(argv.size() - 2), "host");
    int in[2], out[2];
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    const pid_t pid = spawn({"/bin/sh", "-c", argv.back()},
                            {.log = dir_ / "log", .stdin_fd = in[0], .stdout_fd = out[1]});
    ::close(in[0]);
    ::close(out[1]);
    in_ = in[1];
    out_ = out[0];
    EXPECT_EQ(::write(in_, file.data(), file.size()), static_cast<ssize_t>(file.size()));
    return pid;
  }
  std::string first_line() {
    std::string line;
    char c;
    while (::read(out_, &c, 1) == 1 && c != '\n')
      line += c;
    return line;
  }
  static int exit_code(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  void TearDown() override {
    if (in_ >= 0) ::close(in_);
    if (out_ >= 0) ::close(out_);
  }
  test::TempDir dir_;
  int in_ = -1, out_ = -1;
};

TEST_F(RemoteScript, TheEngineGetsTheFileAloneAndItsSignalComesBackAsTheExitCode) {
  const pid_t pid = start(
      // $1 is --file, $2 its path: the file is private, its directory goes when the engine does
      "stat -c %a \"$2\" >&2; cat \"$2\" >&2; echo \"$2\" > " + (dir_ / "path").string() +
          "; kill -SEGV $$",
      "{\"key\": \"engine\"}");
  const auto started = parse_remote_start(first_line());
  ASSERT_TRUE(started);
  EXPECT_GT(started->pid, 0);
  EXPECT_FALSE(started->host.empty());
  const int code = exit_code(pid);
  EXPECT_EQ(code, 128 + SIGSEGV);
  EXPECT_EQ(WTERMSIG(*remote_wait_status(code)), SIGSEGV);
  // (The remote shell's own word on the signal follows.)
  EXPECT_TRUE(test::slurp(dir_ / "log").starts_with("600\n{\"key\": \"engine\"}"))
      << test::slurp(dir_ / "log");
  std::string path = test::slurp(dir_ / "path");
  ASSERT_FALSE(path.empty());
  path.pop_back();
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(path).parent_path()))
      << "the private directory outlived the engine";
}

TEST_F(RemoteScript, ClosingItsInputStopsTheEngine) {
  const pid_t pid =
      start("trap 'echo stopped >&2; exit 0' TERM; while :; do sleep 0.05; done", "{}");
  const auto started = parse_remote_start(first_line());
  ASSERT_TRUE(started);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(::kill(started->pid, 0), 0) << "the engine runs while its input is open";
  ::close(in_);
  in_ = -1;
  EXPECT_EQ(exit_code(pid), 0);
  EXPECT_EQ(test::slurp(dir_ / "log"), "stopped\n");
  EXPECT_NE(::kill(started->pid, 0), 0) << "the engine outlived its session";
}

TEST_F(RemoteScript, AnEngineThatCannotRunThereExitsWith127) {
  const pid_t pid = start_argv({"/nonexistent/ippengine", "--threads", "2"}, "{}");
  (void)first_line();
  EXPECT_EQ(exit_code(pid), 127);
}

}  // namespace
}  // namespace ipp::ctl
