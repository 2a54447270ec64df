#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include <zmq.hpp>

#include "heart_monitor.hpp"
#include "ipp/net/signer.hpp"
#include "log_limiter.hpp"

namespace ipp::ctrl {

/// The heartbeat monitor's thread: echoes every registered engine's ping (so the engine knows
/// its controller is alive), tells an engine it is not registered (it registers again under
/// its id), and tells the hub of engines silent for a whole period (HeartMonitor decides).
///
///     Heartbeat heart(ctx, heartbeat_socket, signer, period, events, hub_in);
///     heart.run(stopping);
///
/// Not thread-safe: made and run on one thread.
class Heartbeat {
 public:
  /// `socket`: the bound heartbeat ROUTER (its context has an I/O thread of its own, so a large
  /// message on the task channels does not delay pings); `ctx`: the hub's context, for the
  /// inproc sockets to `events_endpoint` (engine events) and `hub_in_endpoint` (news to the hub).
  Heartbeat(zmq::context_t& ctx, zmq::socket_t& socket, const net::Signer& signer,
            std::chrono::milliseconds period, const std::string& events_endpoint,
            const std::string& hub_in_endpoint);

  /// Serves until `stopping` is set.
  void run(const std::atomic<bool>& stopping);

 private:
  void on_pings(HeartMonitor::Clock::time_point now);

  zmq::socket_t& socket_;
  const net::Signer& signer_;
  zmq::socket_t events_;
  zmq::socket_t hub_in_;
  HeartMonitor monitor_;
  std::chrono::milliseconds tick_;
  LogLimiter dropped_;  // warnings of dropped messages: a flood is a few lines
};

}  // namespace ipp::ctrl
