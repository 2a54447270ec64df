#pragma once

// Engines on other hosts, started over ssh: the hosts a user names, the command that runs an
// engine there, and what its ssh's exit code says about the engine.

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ipp::ctl {

/// A host engines are started on, and how many.
struct RemoteHost {
  std::string destination;  ///< what ssh is given: `host`, `user@host`, an alias, an address
  int engines = 1;
  friend bool operator==(const RemoteHost&, const RemoteHost&) = default;
};

/// Parses `a:4,b:8`: comma-separated `HOST[:N]` (N engines, default 1). An IPv6 address is
/// written `[ADDR]:N` or bare without a count. Throws UsageError naming the bad entry.
std::vector<RemoteHost> parse_hosts(const std::string& list);

/// Reads a hosts file: one `HOST[:N]` or `HOST N` per line; blank lines and `#` comments are
/// skipped. Throws UsageError naming the file and line.
std::vector<RemoteHost> read_hostfile(const std::filesystem::path& file);

/// `s` in single quotes for a POSIX shell (`it's` -> `'it'\''s'`).
std::string shell_quote(const std::string& s);

/// The command that runs an engine on `destination` over ssh: `ssh` (the user's ssh command
/// and its options) with options that never prompt and that notice a dead link, then a remote
/// `sh` script. The script reads `file_bytes` bytes from standard input (the engine connection
/// file, written by the caller) into a fresh private directory, starts `engine_argv` there with
/// `--file` appended, prints one line `ipp-engine PID HOST` (parse_remote_start) to standard
/// output, and exits with the engine's exit code, or 128 + N when signal N killed it. When its
/// standard input closes (the caller closed it, exited, or lost the connection) it stops the
/// engine with SIGTERM. The directory is removed when the engine ends. Exit 126/127: the engine
/// could not be run there; 125: the file could not be written.
std::vector<std::string> remote_engine_command(const std::vector<std::string>& ssh,
                                               const std::string& destination,
                                               std::size_t file_bytes,
                                               const std::vector<std::string>& engine_argv);

/// The pid and host name a remote engine's script printed; nullopt for any other line.
struct RemoteStart {
  pid_t pid = -1;
  std::string host;
};
std::optional<RemoteStart> parse_remote_start(const std::string& line);

/// What an engine's ssh exit code says, as a waitpid status the engine itself would have had
/// (128 + N -> killed by signal N); nullopt for 255, ssh's own failure (it could not connect,
/// or lost its connection).
std::optional<int> remote_wait_status(int ssh_exit_code);

}  // namespace ipp::ctl
