#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "engine_gate.hpp"
#include "relay.hpp"

namespace ipp::ctrl {

/// The direct queue: each task names its engine (`target`), and goes there at once, or waits
/// for the engine's hello when the hub announced it before it connected here. Tasks of an
/// engine that dies fail with an EngineError naming the reason; abort removes held tasks and
/// passes the rest on to their engine.
///
///     DirectScheduler direct(wiring, client_direct, engine_direct);
///     direct.run(stopping);   // on its own thread, until stopping is set
///
/// Not thread-safe: everything runs on the thread that calls run() or turn().
class DirectScheduler {
 public:
  /// `clients`, `workers`: bound ROUTER sockets for clients and for engines.
  DirectScheduler(const RelayWiring& wiring, zmq::socket_t& clients, zmq::socket_t& workers);

  /// Turns until `stopping` is set (checked at least every 100 ms).
  void run(const std::atomic<bool>& stopping);
  /// One turn: waits up to `wait` for input, handles what came, sends what it produced.
  void turn(std::chrono::milliseconds wait);

  /// Tasks sent to an engine and not answered yet.
  [[nodiscard]] std::size_t running() const noexcept { return running_.size(); }

 private:
  struct Running {
    std::string task;
    std::int64_t engine = -1;
    std::uint32_t client = 0;
  };
  struct Held {  // a task for an engine whose hello has not arrived
    net::TaskId msg_id;
    Running running;
    net::Envelope request;
  };
  struct EngineLoad {
    std::unordered_set<net::TaskId, net::TaskIdHash> outstanding;
    std::deque<Held> held;
  };

  void on_event(const EngineEvent& event);
  void on_request(net::Envelope& env, const net::Header& h);
  void on_control(std::uint32_t client, const net::Header& h);
  void on_reply(net::Envelope& env, net::Header& h);
  void engine_down(std::int64_t id, const std::string& reason);
  void dispatch(net::TaskId msg_id, Running task, net::Envelope request, std::int64_t engine);
  void flush_held(std::int64_t id);
  void flush();

  zmq::socket_t& clients_;
  zmq::socket_t& workers_;
  Relay relay_;
  EngineGate gate_;
  std::map<std::int64_t, EngineLoad> engines_;
  std::unordered_map<net::TaskId, Running, net::TaskIdHash> running_;  // where each task is
};

}  // namespace ipp::ctrl
