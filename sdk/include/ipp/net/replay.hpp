#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <unordered_map>

namespace ipp::net {

/// A receiver's memory of its senders, to refuse a message sent again (a replay).
///
/// Every message's signature nonce is its sender's stream (64 random bits for each socket a
/// thread sends on) and a sequence number that grows by one with each message of the stream
/// (net::send). One connection delivers a stream in order, so a message whose sequence is not
/// above the last one seen of its stream is a copy. A stream is remembered for kForgetAfter
/// after its last message, and at most kMaxStreams are: what is not remembered (a stream
/// silent for longer, or one from before the receiver started) is taken as new once.
///
/// Not thread-safe: one per receiving socket.
class ReplayWindow {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxStreams = 65536;
  static constexpr Clock::duration kForgetAfter = std::chrono::minutes(10);

  /// Whether message `sequence` of `stream` is new; if so it becomes the stream's last.
  /// `last` is set to the last sequence seen of the stream (0: none).
  bool accept(std::uint64_t stream, std::uint64_t sequence, Clock::time_point now,
              std::uint64_t& last);

  [[nodiscard]] std::size_t streams() const noexcept { return last_.size(); }

 private:
  struct Last {
    std::uint64_t sequence;
    Clock::time_point seen;
  };
  /// Forgets streams silent for kForgetAfter, and more (any) while there are too many.
  void forget(Clock::time_point now);

  std::unordered_map<std::uint64_t, Last> last_;
  Clock::time_point next_sweep_{};
};

}  // namespace ipp::net
