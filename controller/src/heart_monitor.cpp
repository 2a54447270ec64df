#include "heart_monitor.hpp"

#include <algorithm>

namespace ipp::ctrl {

void HeartMonitor::on_event(const EngineEvent& event, Clock::time_point now) {
  switch (event.kind) {
    case EngineEvent::Kind::down:
      last_seen_.erase(event.engine);
      break;
    case EngineEvent::Kind::known:
      last_seen_[event.engine] = now + limit_;  // a period to start pinging
      break;
    case EngineEvent::Kind::up: {
      auto [it, fresh] = last_seen_.emplace(event.engine, now);
      if (!fresh) it->second = std::max(it->second, now);
      break;
    }
    case EngineEvent::Kind::drain:
    case EngineEvent::Kind::silent:
    case EngineEvent::Kind::tasks:
      break;
  }
}

bool HeartMonitor::ping(std::int64_t engine, Clock::time_point now) {
  auto it = last_seen_.find(engine);
  if (it == last_seen_.end()) return false;
  it->second = now;  // ends a registering engine's grace period too
  return true;
}

std::vector<std::int64_t> HeartMonitor::tick(Clock::time_point now) {
  last_stall_ = {};
  if (last_tick_ && now - *last_tick_ > limit_ / 2) {
    last_stall_ = now - *last_tick_;
    for (auto& [id, seen] : last_seen_)
      seen = std::max(seen, now - limit_ / 2);
  }
  last_tick_ = now;
  std::vector<std::int64_t> silent;
  for (auto it = last_seen_.begin(); it != last_seen_.end();) {
    if (now - it->second > limit_) {
      silent.push_back(it->first);
      it = last_seen_.erase(it);
    } else {
      ++it;
    }
  }
  return silent;
}

}  // namespace ipp::ctrl
