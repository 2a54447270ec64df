#pragma once

// What the end-to-end benchmarks share: timing helpers, real local clusters (started by
// `ippctl cluster start`, or a controller and engines started by hand), and the trivial-task
// throughput they all measure the same way.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ipp/client.hpp"

namespace ipp::bench {

using Clock = std::chrono::steady_clock;

/// Seconds since `t`.
double since(Clock::time_point t);
/// The `p` quantile of `v` (0.5: the median).
double percentile(std::vector<double> v, double p);
/// Resident memory of a process in MB (VmRSS).
double rss_mb(std::int64_t pid);
/// The arith plugin the benchmarks run (`add`, `mul`, `wait_here`).
std::filesystem::path arith();

/// A cluster started with `ippctl cluster start` in a fresh profile, stopped and removed at
/// the end of its life.
class Cluster {
 public:
  /// `engines` of `threads` threads each (0: as many as the cores); `extra`: more `cluster
  /// start` options.
  Cluster(const std::string& name, int engines, int threads,
          const std::vector<std::string>& extra = {});
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  /// A client with a patient timeout (10 min).
  [[nodiscard]] Client client() const;
  [[nodiscard]] const std::filesystem::path& profile() const noexcept { return profile_; }
  /// How long `cluster start` took, until every engine had registered, in s.
  [[nodiscard]] double start_s() const noexcept { return start_s_; }
  /// The ippctl next to this program.
  static std::string ctl();

 private:
  std::filesystem::path profile_;
  std::filesystem::path log_;
  double start_s_ = 0;
};

/// A controller started by hand (`ippcontroller` with options no `cluster start` passes,
/// such as --hub-delay-us) in a fresh profile, and engines added to it. Everything it started
/// is shut down and waited for, and the profile removed, at the end of its life.
class HandCluster {
 public:
  /// Starts the controller with `controller_args` and waits for its connection files.
  HandCluster(const std::string& name, const std::vector<std::string>& controller_args);
  ~HandCluster();
  HandCluster(const HandCluster&) = delete;
  HandCluster& operator=(const HandCluster&) = delete;

  /// Starts `n` engines of `threads` threads and waits until all are registered.
  void add_engines(int n, int threads);
  [[nodiscard]] Client client() const;
  [[nodiscard]] pid_t controller_pid() const noexcept { return pids_.front(); }
  /// Tells the controller to shut down (its engines with it) and waits for every process.
  void shutdown();

 private:
  std::filesystem::path profile_;
  std::vector<pid_t> pids_;  // the controller first
};

/// Tasks per second for `tasks` trivial tasks (`add`) submitted one by one through `lb`, all
/// results checked.
double throughput(LoadBalancedView& lb, int tasks);

}  // namespace ipp::bench
