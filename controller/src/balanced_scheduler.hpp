#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "balancer.hpp"
#include "engine_gate.hpp"
#include "relay.hpp"

namespace ipp::ctrl {

/// The load-balanced queue: the sockets' side of sched::Balancer, which decides which engine
/// runs which task (schemes, hwm, dependencies, retries, time-outs, aborts). Requests are
/// packed into one allocation when they arrive (they may wait here long), and the hub's copy
/// shares the packed bytes.
///
///     BalancedScheduler balanced(wiring, client_balanced, engine_balanced, options);
///     balanced.run(stopping);   // on its own thread, until stopping is set
///
/// Not thread-safe: everything runs on the thread that calls run() or turn().
class BalancedScheduler {
 public:
  /// `clients`, `workers`: bound ROUTER sockets for clients and for engines.
  BalancedScheduler(const RelayWiring& wiring, zmq::socket_t& clients, zmq::socket_t& workers,
                    sched::BalancerOptions options);

  /// Turns until `stopping` is set (checked at least every 100 ms).
  void run(const std::atomic<bool>& stopping);
  /// One turn: waits up to `wait` (less when a task's time-out falls sooner) for input, expires
  /// what timed out, handles what came, dispatches and sends.
  void turn(std::chrono::milliseconds wait);

 private:
  void on_event(const EngineEvent& event);
  void on_request(net::Envelope& env, const net::Header& h);
  void on_control(std::uint32_t client, const net::Header& h);
  void on_reply(net::Envelope& env, net::Header& h);
  void pump();
  void flush();

  zmq::socket_t& clients_;
  zmq::socket_t& workers_;
  Relay relay_;
  sched::Balancer balancer_;
  EngineGate gate_;
};

}  // namespace ipp::ctrl
