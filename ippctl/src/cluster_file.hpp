#pragma once

// PROFILE/cluster.json: the processes of a cluster started by `ippctl cluster start`, shared by
// ippctl and the supervising launcher.

#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

namespace ipp::ctl {

/// What cluster.json says. `doc` is the whole document: `controller`, `supervisor`,
/// `supervisor_endpoint`, `engines` (every engine process), `supervised` (one entry per
/// engine the supervisor looks after: slot, engine id, pid, state, restarts, back-offs), and
/// the settings engines are started with (`engine_threads`, `restart_engines`).
struct ClusterFile {
  pid_t controller = -1;
  pid_t supervisor = -1;
  std::vector<pid_t> engines;
  nlohmann::ordered_json doc;
};

/// Reads PROFILE/cluster.json; nullopt when it is missing or malformed.
std::optional<ClusterFile> read_cluster(const std::filesystem::path& profile);

/// Reads, changes and rewrites PROFILE/cluster.json under an exclusive lock
/// (PROFILE/cluster.lock), replacing the file atomically: ippctl and the supervisor both
/// update it. `change` gets an empty object when there is no file yet. Returns what was
/// written (nullopt when it has no controller yet), so a caller need not read it again.
std::optional<ClusterFile> update_cluster(
    const std::filesystem::path& profile,
    const std::function<void(nlohmann::ordered_json&)>& change);

}  // namespace ipp::ctl
