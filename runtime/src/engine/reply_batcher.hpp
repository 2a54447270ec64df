#pragma once

// How an engine sends the replies of finished tasks: by the pool threads that finish them, in
// batches, on send-only sockets; and what it keeps of them for a controller that restarts.

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "ipp/net/envelope.hpp"
#include "ipp/net/signer.hpp"

namespace ipp::engine {

/// Results finished on pool threads are sent by the pool threads themselves, on send-only
/// sockets of their own (one per task channel: 0 direct, 1 balanced): a reply does not wait
/// for the receiving loop. One thread at a time sends; results that finish meanwhile queue
/// here and go with its next batch.
///
/// While tasks wait in the pool's queue, a finished reply is held for the next ones to join
/// it: a burst of small tasks goes back as a few batches, one signature and one wake-up of the
/// scheduler each, instead of a message per task. Held replies go when the queue is empty,
/// when kMaxBatch are held, or at the receiving loop's next turn, which comes within
/// kHoldAtMost while any are held (it polls that briefly while tasks are queued). A reply is
/// never held while that loop sleeps longer.
///
/// Replies sent lately are kept for a controller that restarts: one killed before its hub
/// recorded them gets them again when the engine registers with its successor (the hub
/// records a reply only where it has no outcome). Bounded by age (kKeepSent) and bytes
/// (kKeepSentBytes). Replies with large parts are not kept: those parts may live in shared
/// memory, whose files go with their last user.
///
///     ReplyBatcher replies({&direct_out, &balanced_out}, signer, to_controller, id, queued);
///     replies.post(channel, reply, msg_id);            // a pool thread, a task done
///     wait = replies.before_wait(wait);                // the receiving loop, each turn
///     net::poll(items, n, wait);
///     replies.after_wait();
///
/// Thread-safe.
class ReplyBatcher {
 public:
  /// Replies per message to a scheduler.
  static constexpr std::size_t kMaxBatch = 256;
  /// The longest a finished reply waits for others to go with it.
  static constexpr std::chrono::milliseconds kHoldAtMost{1};
  static constexpr auto kKeepSent = std::chrono::seconds(15);
  static constexpr std::size_t kKeepSentBytes = std::size_t{64} << 20;

  /// `sockets`: the send-only sockets of the two channels, used only by the sending thread;
  /// `queued`: how many tasks wait in the pool's queue; `engine`: for log lines.
  ReplyBatcher(std::array<zmq::socket_t*, 2> sockets, const net::Signer& signer,
               net::SharedParts to_controller, std::int64_t engine,
               std::function<std::size_t()> queued);

  /// Task `finished` (its msg_id) is done; `reply` (if any) goes on `channel`, now or held
  /// for company (see above).
  void post(int channel, std::optional<net::Envelope> reply, std::string finished);
  /// The receiving loop is about to poll for `wait`: held replies go now, and the wait is cut
  /// to kHoldAtMost while tasks are queued (replies finishing meanwhile may be held). Returns
  /// the wait.
  std::chrono::milliseconds before_wait(std::chrono::milliseconds wait);
  /// The receiving loop is back from its poll.
  void after_wait();
  /// The msg_ids of the tasks finished since the last call.
  std::vector<std::string> take_finished();
  /// Sends again every reply kept (a restarted controller); returns how many.
  std::size_t resend_kept();
  /// Replies kept for a restarted controller, and their bytes.
  [[nodiscard]] std::pair<std::size_t, std::size_t> kept() const;
  /// Drops the kept replies older than kKeepSent at `now` (also while no reply is sent: an
  /// idle engine does not hold them for good); returns how many went.
  std::size_t expire_kept(std::chrono::steady_clock::time_point now);

 private:
  struct Outgoing {
    int channel;
    net::Envelope envelope;
  };
  struct Sent {
    std::chrono::steady_clock::time_point at;
    int channel;
    net::PackedMessage message;  // one allocation: tens of thousands may be kept
    std::size_t bytes;
  };
  /// Sends what is in `outgoing_` unless another thread is at it (that one takes it along).
  /// Called with `lock` held; returns with it held.
  void send_outgoing(std::unique_lock<std::mutex>& lock);
  /// Keeps `env` (a reply sent at `now`) and forgets what is too old or too much. Called with
  /// mutex_ held.
  void keep_sent(int channel, net::PackedMessage&& message, std::size_t bytes,
                 std::chrono::steady_clock::time_point now);
  /// Drops what is past kKeepSent or beyond kKeepSentBytes; mutex_ held. Returns how many.
  std::size_t drop_kept(std::chrono::steady_clock::time_point now);

  std::array<zmq::socket_t*, 2> sockets_;  // used only by the thread that set `sending_`
  const net::Signer& signer_;
  net::SharedParts to_controller_;
  std::int64_t engine_;
  std::function<std::size_t()> queued_;

  mutable std::mutex mutex_;
  std::deque<Outgoing> outgoing_;
  bool sending_ = false;               // a thread is sending `outgoing_`
  bool loop_sleeps_ = false;           // the receiving loop polls longer than kHoldAtMost
  std::vector<std::string> finished_;  // requests completed, for the receiving loop to forget
  std::deque<Sent> sent_;
  std::size_t sent_bytes_ = 0;
};

}  // namespace ipp::engine
