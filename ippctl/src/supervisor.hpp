#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "ipp/ctl/remote.hpp"

namespace ipp::ctl {

struct SupervisorOptions {
  std::filesystem::path profile;        ///< the cluster's profile directory
  std::filesystem::path bin_dir;        ///< where ippengine is
  int engines = 0;                      ///< engines to start at once on this host
  std::vector<RemoteHost> hosts;        ///< engines to start at once on other hosts, over ssh
  std::vector<std::string> ssh{"ssh"};  ///< the ssh command and its options
  std::string remote_engine;            ///< ippengine's path on other hosts
  int threads = 0;                      ///< pool threads per engine (0: the engine's default)
  bool restart = true;                  ///< restart engines that crash
  int time_limit_grace_ms = -1;         ///< ippengine --time-limit-grace-ms (-1: its default)
  std::chrono::milliseconds first_backoff{250};  ///< wait before the first restart
  std::chrono::milliseconds max_backoff{30000};  ///< back-off doubles up to this
  int crash_limit = 5;                           ///< this many crashes within crash_window...
  std::chrono::seconds crash_window{60};         ///< ...and the engine is not restarted again
  std::chrono::seconds stable_after{60};         ///< an engine up this long starts back-off afresh
};

/// The supervising launcher behind `ippctl cluster start` (run as the hidden command
/// `ippctl cluster supervise`): starts engines as its children and waits for them. An engine
/// that dies of a signal or exits with a code other than 0 (stopped) or 3 (lost its
/// controller) is reported to the hub at once (query `engine_exited`, info {pid, reason,
/// restart, note, crash: whether the engine's own code ended it}), so its tasks fail now rather
/// than after a heartbeat period, and is restarted under the same engine id after an exponential
/// back-off, unless it crashed crash_limit times within crash_window. Engines can be added through
/// a signed control socket (query `add`, info {n}; `status`) whose endpoint is in cluster.json,
/// where the supervisor also keeps every engine's pid and state. Returns (exit code 0) when no
/// engine is left to look after, or on SIGTERM/SIGINT after stopping its engines.
int supervise(const SupervisorOptions& options);

/// "was killed by signal 11 (SIGSEGV)" or "exited with code 3", from a waitpid status.
std::string exit_reason(int status);

}  // namespace ipp::ctl
