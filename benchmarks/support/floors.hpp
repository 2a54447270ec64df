#pragma once

// The floors the benchmarks' figures are read against, measured in the same run: raw ZeroMQ
// between two (or three) processes on this host, with no ipp code on the path.

#include <sys/types.h>

#include <cstddef>
#include <utility>
#include <vector>

#include <zmq.hpp>

namespace ipp::bench {

/// A raw DEALER -> ROUTER -> DEALER round trip of 64 B between two processes, the ROUTER an
/// echo kept up in a second process, over TCP on loopback or a Unix socket (`ipc`). Its
/// blocks can be timed between blocks of another measurement: both then see the same machine
/// (on this VM the floor moves by half from minute to minute).
class RawEcho {
 public:
  explicit RawEcho(bool ipc = false);
  ~RawEcho();
  RawEcho(const RawEcho&) = delete;
  RawEcho& operator=(const RawEcho&) = delete;
  /// `n` round trips of 64 B, each in us, appended to `out`.
  void time(int n, std::vector<double>& out);

 private:
  pid_t pid_ = -1;
  zmq::context_t ctx_;
  zmq::socket_t dealer_{ctx_, zmq::socket_type::dealer};
};

/// RawEcho's round trip, `rounds` times: p50, p99 in us.
std::pair<double, double> raw_rtt_us(int rounds, bool ipc = false);

/// The same round trip through a relay in a third process, as a scheduler relays a task: a
/// DEALER, a ROUTER/ROUTER relay that polls both sides, and a DEALER worker that echoes.
/// No application code at all: what two hops each way cost by themselves. p50 in us. Over
/// TCP on loopback, or over Unix sockets (`ipc`).
double raw_relay_rtt_us(int rounds, bool ipc = false);

/// A raw stream of 1 MiB messages (PUSH -> PULL, zero-copy sends) between two processes, MB/s.
double raw_stream_mbps(int messages);

/// One raw message of `bytes` (PUSH -> PULL over loopback TCP, zero-copy from the same
/// buffer, as ipp sends arrays) between two processes, `rounds` times: the best MB/s of the
/// rounds after the first (which includes the connection's set-up).
double raw_message_mbps(std::size_t bytes, int rounds);

}  // namespace ipp::bench
