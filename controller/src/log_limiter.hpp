#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ipp::ctrl {

/// Keeps one kind of warning from flooding the log: at most `burst` lines per `window`; what it
/// holds back is counted and said by the next line that goes out. A flood of 45,000 bad
/// messages is then a handful of lines, each naming how many more there were.
///
///     if (std::uint64_t more = 0; dropped_.allow(now, more))
///       spdlog::warn("dropped a message from {}: {}{}", peer, why, LogLimiter::more(more));
///
/// Not thread-safe: one per thread and kind of warning.
class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  explicit LogLimiter(std::uint32_t burst = 5, Clock::duration window = std::chrono::seconds(10))
      : burst_(burst), window_(window) {}

  /// Whether to log a line at `now`; `held_back` gets the number of lines held back since the
  /// last one allowed.
  [[nodiscard]] bool allow(Clock::time_point now, std::uint64_t& held_back);
  /// allow() at the current time.
  [[nodiscard]] bool allow(std::uint64_t& held_back) { return allow(Clock::now(), held_back); }

  /// " (and N more like it)" for N > 0, else "": the tail of a line that follows held-back ones.
  [[nodiscard]] static std::string more(std::uint64_t held_back);

 private:
  std::uint32_t burst_;
  Clock::duration window_;
  Clock::time_point window_start_{};
  std::uint32_t in_window_ = 0;
  std::uint64_t held_back_ = 0;
  bool started_ = false;
};

}  // namespace ipp::ctrl
