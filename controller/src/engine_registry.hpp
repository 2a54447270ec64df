#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include <zmq.hpp>

#include "events.hpp"
#include "hub_recorder.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"

namespace ipp::ctrl {

/// The hub's engines: ids, routes on the registration socket, pids, readiness (every plugin
/// acknowledged), removals in progress, and each engine's task counts. Fed messages and
/// decisions, it queues what to send (messages with routes, engine events to publish) for the
/// hub to take after each call, as sched::Balancer queues its dispatches.
///
///     registry.register_engine(env, h);    // queues the RegisterReply and events
///     for (auto& m : registry.take_messages()) send(m);
///     for (auto& e : registry.take_events()) e.send(events);
///
/// Not thread-safe: the hub's thread owns it.
class EngineRegistry {
 public:
  using Clock = std::chrono::steady_clock;
  /// How long a draining engine is given before it may be stopped: the schedulers learn of a
  /// drain asynchronously, and a task they dispatched just before is awaited too.
  static constexpr auto kDrainGrace = std::chrono::milliseconds(250);

  struct Engine {
    std::int64_t id = -1;
    std::vector<zmq::message_t> route;  // on the registration socket
    int threads = 1;
    bool ready = false;
    std::set<std::string> awaiting;  // plugin pushes not yet acknowledged (before ready)
    std::int64_t pid = 0;
    std::string host;  // as the engine names its host (pids are per host)
    std::uint64_t submitted = 0, completed = 0;
    std::unordered_set<net::TaskId, net::TaskIdHash> running;  // given to it, not answered yet
    bool draining = false;  // being removed: stopped once `running` is empty
    Clock::time_point drain_since;
  };

  /// `session`: the controller's instance id, which query replies carry; `heartbeat`: the
  /// period engines are told to ping by.
  EngineRegistry(std::string session, std::chrono::milliseconds heartbeat)
      : session_(std::move(session)), heartbeat_(heartbeat) {}

  /// Ids below `first` are never given to a new engine (a restored controller's engines had
  /// them: they register again and ask for them back).
  void reserve_ids_below(std::int64_t first) { next_id_ = std::max(next_id_, first); }
  /// The id the next new engine gets.
  [[nodiscard]] std::int64_t next_id() const noexcept { return next_id_; }

  /// An engine's RegisterRequest. Queues the reply (its id, or an error for an id that belongs
  /// to another process, or a Stop for a removed engine that missed its own) and the events.
  /// Returns the engine when it is new here: the caller replays the plugins to it, then calls
  /// mark_ready(). An engine that registers again under its id keeps its state.
  Engine* register_engine(const net::Envelope& env, const net::Header& h);
  /// `push_id` to engine `id` was answered: it is ready once every push was.
  void acknowledged(std::int64_t id, const std::string& push_id,
                    const std::optional<ErrorRecord>& error);
  /// Announces `e` ready (up) when it has acknowledged every push it was sent.
  void mark_ready(Engine& e);
  /// Unregisters `id` at once; `why` completes "engine 3 ...": "was removed", "stopped
  /// answering heartbeats", "was killed by signal 11 (SIGSEGV)". Returns false when unknown.
  bool drop(std::int64_t id, const std::string& why);
  /// A task given to or answered by an engine (from the hub's traffic copies).
  void apply(const EngineLoadChange& change);

  /// A `remove_engines` query from `client`: the engines drain (no new tasks) and are stopped
  /// once their tasks are answered; the query is answered when all are gone. Throws UsageError
  /// for no ids or ids not registered (naming the registered ones).
  void start_removal(std::vector<zmq::message_t> client, const std::string& request_id,
                     const std::vector<std::int64_t>& ids, Clock::time_point now);
  /// Whether an engine has drained past the grace period (then the caller records the traffic
  /// copies so far, and calls stop_drained()).
  [[nodiscard]] bool removal_due(Clock::time_point now) const;
  /// Stops and unregisters the draining engines, past the grace period, with no task left.
  /// Returns their ids (the caller tells the plugin distributor).
  std::vector<std::int64_t> stop_drained(Clock::time_point now);
  /// Stop messages for every engine (the controller shuts down).
  std::vector<net::Envelope> stop_all() const;

  [[nodiscard]] const Engine* find(std::int64_t id) const;
  /// The engine of process `pid` on `host` (any host when empty; -1: none).
  [[nodiscard]] std::int64_t by_pid(std::int64_t pid, const std::string& host = {}) const;
  [[nodiscard]] const std::map<std::int64_t, Engine>& engines() const noexcept { return engines_; }
  /// The ids of the ready engines (the `ids` query).
  [[nodiscard]] Value ready_ids() const;
  /// Each engine's id, threads, pid, host and readiness (the `engines` query).
  [[nodiscard]] Value describe() const;
  /// Each engine's outstanding and completed tasks (the `queue_status` query).
  [[nodiscard]] Value queue_status() const;

  /// What to send on the registration socket since the last call, in order.
  [[nodiscard]] std::vector<net::Envelope> take_messages() { return std::exchange(messages_, {}); }
  /// Engine events to publish since the last call, in order.
  [[nodiscard]] std::vector<EngineEvent> take_events() { return std::exchange(events_, {}); }

 private:
  struct Removal {  // a remove_engines query, answered when every engine it names is gone
    std::vector<zmq::message_t> client;
    std::string request_id;
    std::set<std::int64_t> waiting;
    Value::List removed;
  };
  void finish_removals();
  void reply(net::Header r, std::vector<zmq::message_t> route);

  std::string session_;
  std::chrono::milliseconds heartbeat_;
  std::map<std::int64_t, Engine> engines_;
  std::int64_t next_id_ = 0;
  std::vector<Removal> removals_;
  // Processes told to stop, by host and pid: never registered again.
  std::set<std::pair<std::string, std::int64_t>> removed_;
  std::vector<net::Envelope> messages_;
  std::vector<EngineEvent> events_;
};

}  // namespace ipp::ctrl
