#include "engine_gate.hpp"

#include <algorithm>

namespace ipp::ctrl {

bool EngineGate::up(std::int64_t id, int slots) {
  Engine& e = engines_[id];
  e.registered = true;
  e.draining = false;
  e.slots = std::max(1, slots);
  return e.connected;
}

bool EngineGate::hello(std::int64_t id) {
  Engine& e = engines_[id];
  e.connected = true;
  return e.registered;
}

void EngineGate::drain(std::int64_t id) {
  if (auto it = engines_.find(id); it != engines_.end()) it->second.draining = true;
}

bool EngineGate::down(std::int64_t id) {
  return engines_.erase(id) != 0;
}

EngineGate::Verdict EngineGate::check(std::int64_t id) const {
  auto it = engines_.find(id);
  if (it == engines_.end() || !it->second.registered) return Verdict::unknown;
  if (it->second.draining) return Verdict::draining;
  if (!it->second.connected) return Verdict::not_connected;
  return Verdict::usable;
}

bool EngineGate::reachable(std::int64_t id) const {
  auto it = engines_.find(id);
  return it != engines_.end() && it->second.registered && it->second.connected;
}

int EngineGate::slots(std::int64_t id) const {
  auto it = engines_.find(id);
  return it == engines_.end() ? 1 : it->second.slots;
}

std::string EngineGate::registered_ids() const {
  std::string ids;
  for (const auto& [id, e] : engines_) {
    if (e.registered) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
  }
  return ids;
}

}  // namespace ipp::ctrl
