#pragma once

// How far the controller's clock is from this host's: engines on other hosts stamp their
// tasks' start and end in the controller's time, and clients give their own times in it, so
// that a task's times compare with each other and durations are never negative.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>

namespace ipp::net {

/// Estimated from round trips to the controller (an engine's registration and heartbeats, a
/// client's queries): each sample is the controller's time `t1` read between this host's `t0`
/// (sent) and `t2` (answer received), all in microseconds since the epoch. The estimate is the
/// sample with the shortest round trip among the last kWindow, as NTP does: its error is at most
/// half that round trip. Thread-safe; reading is one atomic load.
///
///     clock.sample(sent, controller_time, now);
///     reply.started = local_start + clock.offset_us();
class ClockOffset {
 public:
  static constexpr std::size_t kWindow = 16;

  void sample(std::int64_t t0, std::int64_t t1, std::int64_t t2) {
    if (t1 <= 0 || t2 < t0) return;  // no time said, or a clock that went back meanwhile
    std::lock_guard lock(mutex_);
    samples_[next_++ % kWindow] = {t2 - t0, t1 - (t0 + (t2 - t0) / 2)};
    Sample best{std::numeric_limits<std::int64_t>::max(), 0};
    for (const auto& s : samples_)
      if (s.rtt >= 0 && s.rtt < best.rtt) best = s;
    offset_.store(best.offset, std::memory_order_relaxed);
    rtt_.store(best.rtt, std::memory_order_relaxed);
  }
  /// What to add to this host's time for the controller's (0 before any sample).
  [[nodiscard]] std::int64_t offset_us() const { return offset_.load(std::memory_order_relaxed); }
  /// offset_us(), or 0 where it is within its own error (half the round trip it comes from):
  /// on the controller's own host, times are then left exactly as they are.
  [[nodiscard]] std::int64_t significant_offset_us() const {
    const std::int64_t offset = offset_us(), rtt = rtt_us();
    return rtt < 0 || (offset >= -rtt / 2 && offset <= rtt / 2) ? 0 : offset;
  }
  /// The round trip of the sample the estimate comes from (its error is at most half); -1
  /// before any sample.
  [[nodiscard]] std::int64_t rtt_us() const { return rtt_.load(std::memory_order_relaxed); }

 private:
  struct Sample {
    std::int64_t rtt = -1;
    std::int64_t offset = 0;
  };
  std::mutex mutex_;
  std::array<Sample, kWindow> samples_{};
  std::size_t next_ = 0;
  std::atomic<std::int64_t> offset_{0};
  std::atomic<std::int64_t> rtt_{-1};
};

}  // namespace ipp::net
