#pragma once

// The controller's descriptors, kept from running out.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_set>
#include <vector>

#include <zmq.hpp>

#include "log_limiter.hpp"

namespace ipp::ctrl {

/// Counts the connections the controller's listening sockets accept (ZeroMQ's socket monitor)
/// and refuses those over a limit by shutting them down, so that libzmq closes them as if the
/// peer had left. A flood of held connections is then refused, with a few log lines naming
/// the peers, instead of taking the last descriptors: libzmq aborts the process when it cannot
/// accept on a Unix socket or make a signalling descriptor. Connections that never finish
/// ZeroMQ's handshake are closed by libzmq after Endpoints::kHandshakeTimeout, so a held flood
/// drains by itself.
///
/// Made before the watched sockets' threads start (it attaches monitors to them), then used
/// by one thread: run() or turn().
class ConnectionGuard {
 public:
  /// A socket to watch and the context it was made in (its monitor lives there too).
  struct Watched {
    zmq::context_t* ctx;
    zmq::socket_t* socket;
  };

  ConnectionGuard(const std::vector<Watched>& sockets, std::size_t limit);
  ~ConnectionGuard();
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

  /// Reads the monitors' events, waiting up to `wait` for the first.
  void turn(std::chrono::milliseconds wait);
  /// Turns until `stopping`.
  void run(const std::atomic<bool>& stopping);

  [[nodiscard]] std::size_t open() const;  ///< accepted connections not yet closed
  [[nodiscard]] std::uint64_t refused() const { return refused_; }
  [[nodiscard]] std::size_t limit() const { return limit_; }

  /// How many connections a process may hold open whose descriptor limit is `soft_limit`
  /// and which uses `in_use` descriptors now: the rest, less a reserve for its own files and
  /// sockets, and at most `cap` (0: no cap).
  static std::size_t limit_for(std::uint64_t soft_limit, std::uint64_t in_use, std::size_t cap);

 private:
  struct Monitor {
    zmq::socket_t* watched;
    zmq::socket_t pair;
    std::unordered_set<int> open;  // accepted descriptors, per socket: events keep their order
  };
  /// Handles one event of `m`; false when there was none.
  bool on_event(Monitor& m);

  std::vector<std::unique_ptr<Monitor>> monitors_;
  std::size_t limit_;
  std::uint64_t refused_ = 0;
  LogLimiter refusals_;
};

/// The number of descriptors this process has open (entries of /proc/self/fd).
std::uint64_t open_descriptors();

}  // namespace ipp::ctrl
