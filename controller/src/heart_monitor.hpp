#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "events.hpp"

namespace ipp::ctrl {

/// The heartbeat monitor's table: when each registered engine last pinged, and which have been
/// silent for longer than the limit. No sockets and no clock of its own: time comes in as an
/// argument, so every decision is tested with a fake clock.
///
/// Engines ping four times per period, so one whole period of silence is four lost pings in a
/// row: a dead engine, not a late packet.
///
///     HeartMonitor monitor(std::chrono::seconds(3));
///     monitor.on_event(event, now);           // known / up / down from the hub
///     if (!monitor.ping(engine, now)) ...     // not registered: tell it so
///     for (auto id : monitor.tick(now)) ...   // silent: unregister
///
/// Not thread-safe: one thread (the monitor's) owns it.
class HeartMonitor {
 public:
  using Clock = std::chrono::steady_clock;

  /// `limit`: how long an engine may stay silent.
  explicit HeartMonitor(Clock::duration limit) : limit_(limit) {}

  /// An engine event from the hub: a registering engine (known) gets a whole period to start
  /// pinging, an engine up counts as seen now, an engine down is forgotten.
  void on_event(const EngineEvent& event, Clock::time_point now);
  /// A ping from `engine`: true when it is registered here (the ping is echoed), false when not
  /// (it was dropped, or this controller restarted: it should register again).
  [[nodiscard]] bool ping(std::int64_t engine, Clock::time_point now);
  /// The engines silent for longer than the limit at `now`, forgotten here as they are
  /// returned. When the caller itself was not scheduled for more than half the limit since its
  /// last tick (a loaded machine), that silence was the monitor's, not the engines': nobody is
  /// blamed for it.
  [[nodiscard]] std::vector<std::int64_t> tick(Clock::time_point now);
  /// How long the caller had not ticked when the last tick() forgave a stall (zero when the
  /// last tick found none), for logs.
  [[nodiscard]] Clock::duration last_stall() const noexcept { return last_stall_; }
  /// How many engines are watched.
  [[nodiscard]] std::size_t size() const noexcept { return last_seen_.size(); }

 private:
  Clock::duration limit_;
  std::map<std::int64_t, Clock::time_point> last_seen_;
  std::optional<Clock::time_point> last_tick_;
  Clock::duration last_stall_{};
};

}  // namespace ipp::ctrl
