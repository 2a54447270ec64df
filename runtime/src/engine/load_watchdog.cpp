#include "load_watchdog.hpp"

#include <cstdlib>
#include <utility>

#include <spdlog/spdlog.h>

#include "ipp/net/engine_exit.hpp"

namespace ipp::engine {

LoadWatchdog::LoadWatchdog(std::int64_t engine, std::chrono::milliseconds limit, std::string what,
                           std::function<void()> on_expiry) {
  if (!on_expiry) {
    on_expiry = [engine, limit, what] {
      spdlog::error(
          "engine {}: loading plugin {} did not finish within {} ms (its initializer hangs); "
          "the engine exits (code {}) to be restarted without it",
          engine, what, limit.count(), net::kEnginePluginLoadHung);
      spdlog::default_logger()->flush();
      std::_Exit(net::kEnginePluginLoadHung);
    };
  }
  thread_ = std::thread([this, limit, expire = std::move(on_expiry)] {
    std::unique_lock lock(mutex_);
    if (!done_cv_.wait_for(lock, limit, [this] { return done_; })) expire();
  });
}

LoadWatchdog::~LoadWatchdog() {
  {
    std::lock_guard lock(mutex_);
    done_ = true;
  }
  done_cv_.notify_one();
  thread_.join();
}

std::chrono::milliseconds LoadWatchdog::limit_for(std::chrono::milliseconds controller_timeout) {
  return controller_timeout + controller_timeout / 2;
}

}  // namespace ipp::engine
