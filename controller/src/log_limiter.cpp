#include "log_limiter.hpp"

#include <fmt/format.h>

namespace ipp::ctrl {

bool LogLimiter::allow(Clock::time_point now, std::uint64_t& held_back) {
  held_back = 0;
  if (!started_ || now - window_start_ >= window_) {
    started_ = true;
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= burst_) {
    ++held_back_;
    return false;
  }
  ++in_window_;
  held_back = held_back_;
  held_back_ = 0;
  return true;
}

std::string LogLimiter::more(std::uint64_t held_back) {
  if (held_back == 0) return {};
  return fmt::format(" (and {} more like it held back)", held_back);
}

}  // namespace ipp::ctrl
