#include "events.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <utility>

namespace ipp::ctrl {

namespace {
// kind (1 byte), engine (8), slots (4), then the reason's bytes.
constexpr std::size_t kFixed = 1 + 8 + 4;
}  // namespace

zmq::message_t EngineEvent::encode() const {
  std::string text = reason;
  if (kind == Kind::tasks) {
    text.clear();
    for (const auto& n : names)
      text += (text.empty() ? "" : "\n") + n;
  }
  zmq::message_t frame(kFixed + text.size());
  auto* p = static_cast<char*>(frame.data());
  const auto k = static_cast<std::uint8_t>(kind);
  const auto s = static_cast<std::int32_t>(slots);
  std::memcpy(p, &k, 1);
  std::memcpy(p + 1, &engine, 8);
  std::memcpy(p + 9, &s, 4);
  if (!text.empty()) std::memcpy(p + kFixed, text.data(), text.size());
  return frame;
}

std::optional<EngineEvent> EngineEvent::decode(const zmq::message_t& frame) {
  if (frame.size() < kFixed) return std::nullopt;
  const auto* p = static_cast<const char*>(frame.data());
  std::uint8_t k = 0;
  std::int32_t s = 0;
  EngineEvent e;
  std::memcpy(&k, p, 1);
  if (k > static_cast<std::uint8_t>(Kind::tasks)) return std::nullopt;
  e.kind = static_cast<Kind>(k);
  std::memcpy(&e.engine, p + 1, 8);
  std::memcpy(&s, p + 9, 4);
  e.slots = s;
  e.reason.assign(p + kFixed, frame.size() - kFixed);
  if (e.kind == Kind::tasks) {
    const std::string all = std::exchange(e.reason, {});
    std::string_view text(all);
    while (!text.empty()) {
      const auto end = std::min(text.find('\n'), text.size());
      e.names.emplace_back(text.substr(0, end));
      text.remove_prefix(std::min(end + 1, text.size()));
    }
  }
  return e;
}

void EngineEvent::send(zmq::socket_t& socket) const {
  (void)socket.send(encode(), zmq::send_flags::none);
}

std::optional<EngineEvent> EngineEvent::receive(zmq::socket_t& socket) {
  zmq::message_t frame;
  while (socket.recv(frame, zmq::recv_flags::dontwait)) {
    if (auto e = decode(frame)) return e;
  }
  return std::nullopt;
}

const char* to_string(EngineEvent::Kind kind) noexcept {
  switch (kind) {
    case EngineEvent::Kind::known:
      return "known";
    case EngineEvent::Kind::up:
      return "up";
    case EngineEvent::Kind::drain:
      return "drain";
    case EngineEvent::Kind::down:
      return "down";
    case EngineEvent::Kind::silent:
      return "silent";
    case EngineEvent::Kind::tasks:
      return "tasks";
  }
  return "unknown";
}

}  // namespace ipp::ctrl
