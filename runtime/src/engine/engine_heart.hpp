#pragma once

// When an engine pings its controller, when it gives up on a silent one, and when it must
// register again: the decisions of the engine's heartbeat thread, apart from its socket.

#include <algorithm>
#include <chrono>

namespace ipp::engine {

/// The controller declares an engine dead after one silent period, so the engine pings four
/// times per period; it gives up on a controller silent for `controller_timeout` (at least two
/// periods). Two refused pings in a row (the controller restarted, or dropped the engine) mean
/// registering again: one alone may race the controller learning of the engine.
///
///     EngineHeart heart(period, timeout, Clock::now());
///     if (heart.ping_due(now)) send_ping();
///     if (heart.heard(now, refused)) need_register = true;
///     if (heart.given_up(now)) exit(...);
class EngineHeart {
 public:
  using Clock = std::chrono::steady_clock;

  EngineHeart(std::chrono::milliseconds period, std::chrono::milliseconds controller_timeout,
              Clock::time_point now)
      : ping_every_(period / 4),
        timeout_(std::max(controller_timeout, 2 * period)),
        last_heard_(now),
        next_ping_(now) {}

  /// Whether a ping is due at `now`; if so, the next one is due a quarter period later.
  bool ping_due(Clock::time_point now) {
    if (now < next_ping_) return false;
    next_ping_ = now + ping_every_;
    return true;
  }
  /// The controller answered a ping at `now` (`refused`: it does not know this engine).
  /// Returns true when the engine must register again.
  bool heard(Clock::time_point now, bool refused) {
    last_heard_ = now;
    refused_ = refused ? refused_ + 1 : 0;
    if (refused_ < 2) return false;
    refused_ = 0;
    return true;
  }
  /// Whether the controller has been silent too long at `now`.
  [[nodiscard]] bool given_up(Clock::time_point now) const { return now - last_heard_ > timeout_; }
  /// How long to wait at `now` before the next ping.
  [[nodiscard]] Clock::duration until_ping(Clock::time_point now) const { return next_ping_ - now; }
  [[nodiscard]] std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  std::chrono::milliseconds ping_every_;
  std::chrono::milliseconds timeout_;
  Clock::time_point last_heard_;
  Clock::time_point next_ping_;
  int refused_ = 0;
};

}  // namespace ipp::engine
