#pragma once

// Starting and watching the processes of a cluster: what ippctl, its supervisor and the
// benchmarks share.

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace ipp::ctl {

/// The directory of the running executable (where ippcontroller and ippengine are installed
/// next to ippctl); "." when /proc is not readable.
std::filesystem::path exe_dir();

struct SpawnOptions {
  std::filesystem::path log;    ///< standard output and error are appended here (mode 0600)
  bool new_session = false;     ///< setsid: a daemon that outlives the terminal's signals
  bool default_sighup = false;  ///< SIGHUP and SIGPIPE back to their defaults, whatever the
                                ///< parent ignores
  int stdin_fd = -1;            ///< standard input from this descriptor (default: /dev/null)
  int stdout_fd = -1;           ///< standard output to this descriptor (default: `log`, as errors)
};

/// Starts `argv` (argv[0] a path, or a name looked up in PATH) with standard input from
/// /dev/null unless `options` say otherwise; returns its pid.
/// Throws std::system_error naming argv[0] when it cannot be started.
pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& options);

/// Starts `argv` as spawn() does and waits for it: its exit code, or 128 + the signal.
int run_and_wait(const std::vector<std::string>& argv, const SpawnOptions& options);

/// Whether `pid` is a live process: reaps it if it is our exited child, and a zombie whose
/// parent has not reaped it yet counts as dead.
bool alive(pid_t pid);

/// The last `lines` lines of `file`, each on a new line indented by two spaces (for errors
/// that point at a log); empty when the file is missing.
std::string tail(const std::filesystem::path& file, std::size_t lines = 5);

}  // namespace ipp::ctl
