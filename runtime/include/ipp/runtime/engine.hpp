#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace ipp {

struct EngineOptions {
  std::filesystem::path connection_file;  ///< the controller's engine connection file
  int threads = 0;                        ///< pool threads; <= 0: the number of cores
  std::filesystem::path store_dir;        ///< plugin store (default: a temporary directory)
  std::vector<std::filesystem::path> builtin_plugins;  ///< loaded at start (sysinfo, ...)
  /// Loaded when first used (Runtime::load_on_demand), each named by its file's stem: python.
  std::vector<std::filesystem::path> on_demand_plugins;
  /// The heartbeat period when the controller does not say (it does when the engine
  /// registers); the engine pings four times per period.
  std::chrono::milliseconds heartbeat{1000};
  /// Give up after this much silence from the controller (at least two heartbeat periods).
  std::chrono::milliseconds controller_timeout{10000};
  std::chrono::milliseconds register_timeout{10000};  ///< wait this long to be registered
  /// Register under this id (a supervisor restarting a crashed engine); the controller
  /// grants it when no other engine holds it. -1: the controller picks one.
  std::int64_t engine_id = -1;
  /// Large arrays go through shared memory when the controller is on this host and offers it;
  /// false: always through the socket (as for an engine on another host).
  bool shared_memory = true;
  /// The most bytes a map's output may take (0: as much as the memory available allows).
  std::uint64_t max_map_output = 0;
  /// A task past its time limit is cancelled and its client told; if it still runs this much
  /// later (it ignores cancellation), the engine exits with net::kEngineTaskPastTimeLimit so
  /// that its supervisor starts a fresh one: an endless loop cannot wedge an engine for good.
  std::chrono::milliseconds time_limit_grace{10000};
};

/// One engine: registers with the controller, heartbeats, loads pushed plugins, and runs the
/// tasks the schedulers send on its oneTBB pool. run() returns when the controller says stop,
/// the controller has been silent for controller_timeout, or stop() is called.
class Engine {
 public:
  explicit Engine(EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  /// Runs until told to stop. Returns the process exit code (0 clean). Throws
  /// ConnectionError when registration fails.
  int run();
  /// Asks run() to return soon; thread- and signal-safe.
  void stop() noexcept { stop_.store(true); }
  /// The id the controller gave this engine (-1 before registration).
  [[nodiscard]] std::int64_t id() const noexcept { return id_.load(); }

 private:
  struct Impl;
  EngineOptions options_;
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> id_{-1};
};

}  // namespace ipp
