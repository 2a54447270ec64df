#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

namespace ipp::ctrl {

/// What the controller's threads tell each other about an engine, on inproc sockets: the hub
/// publishes known/up/drain/down to the schedulers and the heartbeat monitor; the monitor
/// tells the hub an engine went silent.
///
///     EngineEvent::down(3, "was killed by signal 9 (SIGKILL)").send(events);
///     while (auto e = EngineEvent::receive(events)) on_event(*e);
struct EngineEvent {
  enum class Kind : std::uint8_t {
    known,   ///< registering: the heartbeat monitor gives it a period to start pinging
    up,      ///< ready for tasks, with `slots` task slots (its threads)
    drain,   ///< being removed: no new tasks
    down,    ///< gone; `reason` completes "engine 3 ..." (may be empty)
    silent,  ///< monitor -> hub: it stopped answering heartbeats
    tasks,   ///< hub -> schedulers: it has the tasks `names` now (`slots` 1), or no more (0)
  };
  Kind kind = Kind::known;
  std::int64_t engine = -1;
  int slots = 0;                   ///< up: task slots (at least 1)
  std::string reason;              ///< down: why, e.g. "was killed by signal 11 (SIGSEGV)"
  std::vector<std::string> names;  ///< tasks: the task names (a plugin's, bare and qualified)

  static EngineEvent known(std::int64_t id) { return {Kind::known, id, 0, {}, {}}; }
  static EngineEvent up(std::int64_t id, int slots) { return {Kind::up, id, slots, {}, {}}; }
  static EngineEvent drain(std::int64_t id) { return {Kind::drain, id, 0, {}, {}}; }
  static EngineEvent down(std::int64_t id, std::string why) {
    return {Kind::down, id, 0, std::move(why), {}};
  }
  static EngineEvent silent(std::int64_t id) { return {Kind::silent, id, 0, {}, {}}; }
  static EngineEvent tasks(std::int64_t id, std::vector<std::string> names, bool has) {
    return {Kind::tasks, id, has ? 1 : 0, {}, std::move(names)};
  }

  /// The event as one frame: kind, engine and slots at fixed places, then the reason (or the
  /// names, one per line).
  [[nodiscard]] zmq::message_t encode() const;
  /// The event in `frame`, or nullopt when it is not one encode() made.
  [[nodiscard]] static std::optional<EngineEvent> decode(const zmq::message_t& frame);

  /// Sends the event on `socket` (a PUB or PUSH socket; PUB drops it when nobody listens).
  void send(zmq::socket_t& socket) const;
  /// The next event waiting on `socket`, without blocking; nullopt when none waits. A frame
  /// that is not an event is skipped.
  [[nodiscard]] static std::optional<EngineEvent> receive(zmq::socket_t& socket);

  friend bool operator==(const EngineEvent&, const EngineEvent&) = default;
};

/// The kind's name, for logs ("up", "down", ...).
[[nodiscard]] const char* to_string(EngineEvent::Kind kind) noexcept;

}  // namespace ipp::ctrl
