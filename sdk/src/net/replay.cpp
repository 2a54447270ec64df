#include "ipp/net/replay.hpp"

namespace ipp::net {

bool ReplayWindow::accept(std::uint64_t stream, std::uint64_t sequence, Clock::time_point now,
                          std::uint64_t& last) {
  if (now >= next_sweep_ || last_.size() >= kMaxStreams) forget(now);
  auto [it, fresh] = last_.try_emplace(stream, Last{0, now});
  last = it->second.sequence;
  if (!fresh && sequence <= it->second.sequence) return false;
  it->second = {sequence, now};
  return true;
}

void ReplayWindow::forget(Clock::time_point now) {
  next_sweep_ = now + kForgetAfter / 10;
  std::erase_if(last_, [&](const auto& entry) { return now - entry.second.seen > kForgetAfter; });
  // Still full (many senders within the time): the older half goes.
  if (last_.size() >= kMaxStreams) {
    const auto half = now - kForgetAfter / 2;
    std::erase_if(last_, [&](const auto& entry) { return entry.second.seen < half; });
  }
  while (last_.size() >= kMaxStreams)
    last_.erase(last_.begin());
}

}  // namespace ipp::net
