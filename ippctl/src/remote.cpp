#include "ipp/ctl/remote.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "ipp/error.hpp"

namespace ipp::ctl {

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

int engines_of(const std::string& count, const std::string& entry) {
  int n = 0;
  if (!all_digits(count) ||
      std::from_chars(count.data(), count.data() + count.size(), n).ec != std::errc() || n < 1 ||
      n > 1024)
    throw UsageError(fmt::format("'{}': the number of engines must be 1 to 1024", entry));
  return n;
}

/// One `HOST[:N]` entry.
RemoteHost parse_host(const std::string& raw) {
  const std::string entry = trim(raw);
  if (entry.empty()) throw UsageError("an empty host in the list of hosts");
  RemoteHost h;
  if (entry.front() == '[') {  // [IPv6]:N
    const auto close = entry.find(']');
    if (close == std::string::npos || close == 1)
      throw UsageError(fmt::format("'{}': an IPv6 address is written [ADDRESS]:N", entry));
    h.destination = entry.substr(1, close - 1);
    const std::string rest = entry.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') throw UsageError(fmt::format("'{}': expected [ADDRESS]:N", entry));
      h.engines = engines_of(rest.substr(1), entry);
    }
  } else if (const auto colon = entry.rfind(':');
             colon != std::string::npos && entry.find(':') == colon) {  // one colon: HOST:N
    h.destination = entry.substr(0, colon);
    h.engines = engines_of(entry.substr(colon + 1), entry);
  } else {  // a name, or a bare IPv6 address (its colons are not a count)
    h.destination = entry;
  }
  if (h.destination.empty() || h.destination.front() == '-' ||
      std::any_of(h.destination.begin(), h.destination.end(),
                  [](unsigned char c) { return std::isspace(c) || c == '\'' || c == '"'; }))
    throw UsageError(fmt::format("'{}' is not a host ssh can be given", entry));
  return h;
}

// Runs on the engine's host, under the user's login shell as `sh -c SCRIPT ipp-engine BYTES
// ENGINE ARGS...`. One line, `;`-separated, so that any login shell passes it on unchanged.
// - umask and mktemp: the connection file is the user's alone, in a directory of its own.
// - head -c reads exactly the file's bytes (GNU head never reads past them from a pipe).
// - The watcher is a subshell running only builtins, so killing it leaves nothing behind; it
//   reads the session's standard input (fd 3: an asynchronous list's own stdin is /dev/null)
//   until it closes, then stops the engine.
// - wait gives 128 + N for an engine killed by signal N: the exit code ssh returns.
constexpr const char* kScript =
    "umask 077; "
    "d=$(mktemp -d \"${TMPDIR:-/tmp}/ipp-engine.XXXXXX\") || exit 125; "
    "trap 'rm -rf \"$d\"' EXIT; "
    "head -c \"$1\" > \"$d/ipp-engine.json\" || exit 125; "
    "shift; "
    "exec 3<&0; "
    "\"$@\" --file \"$d/ipp-engine.json\" < /dev/null >&2 & "
    "pid=$!; "
    "echo \"ipp-engine $pid $(uname -n)\"; "
    "{ while read -r _; do :; done; kill -TERM \"$pid\"; } <&3 > /dev/null 2>&1 & "
    "w=$!; "
    "exec 3<&-; "
    "wait \"$pid\"; rc=$?; "
    "kill \"$w\" 2> /dev/null; "
    "exit $rc";

}  // namespace

std::vector<RemoteHost> parse_hosts(const std::string& list) {
  std::vector<RemoteHost> hosts;
  std::string entry;
  std::istringstream in(list);
  while (std::getline(in, entry, ','))
    hosts.push_back(parse_host(entry));
  if (hosts.empty()) throw UsageError("no hosts given");
  return hosts;
}

std::vector<RemoteHost> read_hostfile(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw UsageError(fmt::format("cannot read the hosts file {}", file.string()));
  std::vector<RemoteHost> hosts;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (const auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    // `HOST N` is the same as `HOST:N`.
    if (const auto space = line.find_first_of(" \t"); space != std::string::npos)
      line = line.substr(0, space) + ":" + trim(line.substr(space));
    try {
      hosts.push_back(parse_host(line));
    } catch (const UsageError& e) {
      throw UsageError(fmt::format("{} line {}: {}", file.string(), number, e.what()));
    }
  }
  if (hosts.empty())
    throw UsageError(fmt::format("the hosts file {} names no host", file.string()));
  return hosts;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::vector<std::string> remote_engine_command(const std::vector<std::string>& ssh,
                                               const std::string& destination,
                                               std::size_t file_bytes,
                                               const std::vector<std::string>& engine_argv) {
  std::vector<std::string> argv = ssh.empty() ? std::vector<std::string>{"ssh"} : ssh;
  // Never ask for a password (there is no terminal to ask on); notice a dead link within
  // 15 s rather than at TCP's own pace; no terminal, so the engine's output stays as it is.
  for (const char* o :
       {"-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-T"})
    argv.emplace_back(o);
  argv.push_back(destination);
  // ssh joins its remote arguments with spaces for the remote shell: one quoted command.
  std::string remote =
      "sh -c " + shell_quote(kScript) + " ipp-engine " + std::to_string(file_bytes);
  for (const auto& a : engine_argv)
    remote += " " + shell_quote(a);
  argv.push_back(remote);
  return argv;
}

std::optional<RemoteStart> parse_remote_start(const std::string& line) {
  std::istringstream in(line);
  std::string word, host;
  long pid = -1;
  if (!(in >> word >> pid >> host) || word != "ipp-engine" || pid <= 0) return std::nullopt;
  return RemoteStart{static_cast<pid_t>(pid), host};
}

std::optional<int> remote_wait_status(int ssh_exit_code) {
  if (ssh_exit_code == 255) return std::nullopt;
  if (ssh_exit_code > 128 && ssh_exit_code < 128 + 65) return ssh_exit_code - 128;  // a signal
  return (ssh_exit_code & 0xff) << 8;  // exited with this code
}

}  // namespace ipp::ctl
