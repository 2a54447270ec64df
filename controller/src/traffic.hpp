#pragma once

#include <cstdint>
#include <deque>
#include <iterator>
#include <mutex>
#include <vector>

#include <zmq.hpp>

#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"

namespace ipp::ctrl {

/// A copy of one task message for the hub: small, since the hub may fall far behind (a
/// million tasks queued in a few seconds take it longer than that to record).
struct Traffic {
  enum class Kind : std::uint8_t { submit, dispatch, reply };
  Kind kind = Kind::submit;
  bool balanced = false;       // submit: which queue
  bool late = false;           // reply: one its scheduler no longer expected (its engine was
                               // declared dead, or the task predates a controller restart)
  std::int32_t engine = -1;    // dispatch, reply: the engine
  net::TaskId msg_id;          // dispatch: the task
  net::PackedMessage message;  // submit, reply: header and payload (a balanced request is
                               // shared with the scheduler's own copy)
  // submit: when its scheduler received it (net::now_us), in the controller's clock. The
  // record's `submitted`: the client's own stamp is its host's clock, which may differ from
  // the controller's (and so from the engines' corrected start and end) by any amount.
  std::int64_t received_us = 0;

  static Traffic submit(bool balanced, net::PackedMessage message, std::int64_t received_us) {
    return {Kind::submit, balanced, false, -1, {}, std::move(message), received_us};
  }
  static Traffic dispatch(net::TaskId msg_id, std::int64_t engine) {
    return {Kind::dispatch, false, false, static_cast<std::int32_t>(engine), msg_id, {}, 0};
  }
  static Traffic reply(std::int64_t engine, net::PackedMessage message, bool late = false) {
    return {Kind::reply, false, late, static_cast<std::int32_t>(engine), {}, std::move(message), 0};
  }
};

/// How the schedulers hand the hub copies of their traffic: a queue both push to at the end
/// of each turn and the hub takes whole, plus a wake-up (one empty message on an inproc
/// socket) when the hub had taken everything. Never blocks a scheduler and never drops: a
/// slow hub costs memory, not throughput, and catches up. Copies share the messages' bytes.
///
/// Thread-safe: any number of pushing threads and one taking thread.
class TrafficFeed {
 public:
  /// From a scheduler's thread: appends `batch` (emptied) and wakes the hub through `wake`
  /// (that thread's PUSH socket) if it was waiting.
  void push(std::vector<Traffic>& batch, zmq::socket_t& wake) {
    if (batch.empty()) return;
    bool was_empty = false;
    {
      std::lock_guard lock(mutex_);
      was_empty = queue_.empty();
      queue_.insert(queue_.end(), std::make_move_iterator(batch.begin()),
                    std::make_move_iterator(batch.end()));
    }
    batch.clear();
    if (was_empty) (void)wake.send(zmq::message_t(), zmq::send_flags::dontwait);
  }
  /// From the hub's thread: everything queued so far, in order.
  std::deque<Traffic> take() {
    std::deque<Traffic> out;
    std::lock_guard lock(mutex_);
    out.swap(queue_);
    return out;
  }

 private:
  std::mutex mutex_;
  std::deque<Traffic> queue_;  // a deque: a long backlog grows without being copied
};

}  // namespace ipp::ctrl
