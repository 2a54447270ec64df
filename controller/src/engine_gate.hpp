#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace ipp::ctrl {

/// What a scheduler knows of each engine, and the one answer to "may engine N take a task
/// from this scheduler?". An engine is usable when the hub announced it ready (up), it said
/// hello on this scheduler's channel (so its route exists there), and it is not being removed.
///
///     if (gate.up(id, slots)) balancer.engine_up(id, gate.slots(id));   // and said hello
///     switch (gate.check(target)) { case EngineGate::Verdict::usable: ... }
///
/// Not thread-safe: each scheduler owns one.
class EngineGate {
 public:
  enum class Verdict {
    usable,         ///< registered, connected, not draining
    unknown,        ///< the hub has not announced it (never, or it went down)
    draining,       ///< being removed: no new tasks
    not_connected,  ///< announced, but its hello on this channel has not arrived yet
  };

  /// The hub announced `id` ready with `slots` task slots (at least 1); a drain is over.
  /// Returns reachable(id): whether it said hello here too.
  bool up(std::int64_t id, int slots);
  /// `id` said hello on this channel. Returns reachable(id): whether the hub announced it too.
  bool hello(std::int64_t id);
  /// `id` is being removed: it takes no new tasks.
  void drain(std::int64_t id);
  /// `id` is gone. Returns whether it was known here.
  bool down(std::int64_t id);

  /// May `id` take a new task here, and if not, why.
  [[nodiscard]] Verdict check(std::int64_t id) const;
  /// Registered and connected, draining or not: tasks accepted for it before a drain may go.
  [[nodiscard]] bool reachable(std::int64_t id) const;
  /// Its task slots as announced (1 when unknown).
  [[nodiscard]] int slots(std::int64_t id) const;
  /// The registered engines' ids, "0, 1, 3", for error messages.
  [[nodiscard]] std::string registered_ids() const;

 private:
  struct Engine {
    bool registered = false;  // the hub announced it
    bool connected = false;   // it said hello on this channel
    bool draining = false;
    int slots = 1;
  };
  std::map<std::int64_t, Engine> engines_;
};

}  // namespace ipp::ctrl
