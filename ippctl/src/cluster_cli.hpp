#pragma once

// ippctl's `cluster` commands: start, stop, status, add, remove, and the hidden supervise.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ipp/ctl/remote.hpp"

namespace ipp::ctl {

struct ClusterCli {
  std::filesystem::path profile;  ///< the profile directory
  bool json = false;              ///< print one JSON document
  int timeout_ms = 10000;         ///< how long to wait for the controller
  /// A client connection file (--file): a controller this profile's ippctl did not start.
  std::optional<std::filesystem::path> file;
};

/// How a cluster's supervised engines are started (kept in cluster.json for `cluster add`).
struct EngineSettings {
  int threads = 0;                      ///< pool threads per engine (0: the number of cores)
  bool restart = true;                  ///< restart engines that crash
  int time_limit_grace_ms = -1;         ///< ippengine --time-limit-grace-ms (-1: its default)
  std::vector<std::string> ssh{"ssh"};  ///< the ssh command and options for other hosts
  std::string remote_engine;            ///< ippengine's path on other hosts (default: this one's)
};

/// Starts a controller and a supervisor that starts `n` engines here and those `hosts` ask for
/// over ssh; restores a profile whose controller died (survivors come back, only the missing
/// engines are started). Returns when every engine registered. `controller_args` go to
/// ippcontroller as they are (--scheme, --hwm). Exit codes as ippctl's.
int cluster_start(const ClusterCli& c, int n, const std::vector<RemoteHost>& hosts,
                  const EngineSettings& engines, int heartbeat_ms,
                  const std::vector<std::string>& controller_args);
/// Stops the controller, its engines and the supervisor.
int cluster_stop(const ClusterCli& c);
/// The controller, the supervisor, registered engines and what became of supervised ones.
int cluster_status(const ClusterCli& c);
/// Starts `n` more supervised engines here and those `hosts` ask for; returns when they
/// registered.
int cluster_add(const ClusterCli& c, int n, const std::vector<RemoteHost>& hosts);
/// Drains the engines `ids` (running tasks finish, no new ones start), then stops them.
int cluster_remove(const ClusterCli& c, const std::vector<std::int64_t>& ids);
/// The supervisor itself (run as a daemon by cluster start and add).
int cluster_supervise(const ClusterCli& c, int n, const std::vector<RemoteHost>& hosts,
                      const EngineSettings& engines);

}  // namespace ipp::ctl
