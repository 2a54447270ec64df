#pragma once

// The engine's guard against a plugin whose loading never ends (a static initializer that
// hangs): past a limit it ends the engine, saying why, for its supervisor to start a fresh one.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace ipp::engine {

/// Armed from construction to destruction: when it lives longer than `limit`, `on_expiry`
/// runs on its own thread (by default: log why and exit with net::kEnginePluginLoadHung; the
/// loading thread cannot be taken back). Destruction disarms it and joins its thread.
///
///     {
///       LoadWatchdog guard(engine_id, limit, "a.so");
///       runtime.load_bytes(bytes);
///     }
class LoadWatchdog {
 public:
  LoadWatchdog(std::int64_t engine, std::chrono::milliseconds limit, std::string what,
               std::function<void()> on_expiry = {});
  ~LoadWatchdog();
  LoadWatchdog(const LoadWatchdog&) = delete;
  LoadWatchdog& operator=(const LoadWatchdog&) = delete;

  /// The limit an engine gives a load the controller gives `controller_timeout`: half as long
  /// again, so that the controller answers the push (naming the engine) first.
  static std::chrono::milliseconds limit_for(std::chrono::milliseconds controller_timeout);

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace ipp::engine
