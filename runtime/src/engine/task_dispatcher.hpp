#pragma once

// What an engine does with a message on a task channel: a task given to its runtime, a
// namespace operation, an abort or cancel; and how each outcome becomes the one reply.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "ipp/net/clock_offset.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/signer.hpp"
#include "ipp/runtime/runtime.hpp"
#include "job_table.hpp"
#include "reply_batcher.hpp"

namespace ipp::engine {

/// Takes the requests of the engine's two task channels (0 direct, 1 balanced) to its
/// runtime: applies and maps run on the pool (in order with the namespace when they bind a
/// name or read one), `execute` and namespace operations in order; abort and cancel go to the
/// JobTable. Each outcome becomes one reply, sent by the pool thread that finished it through
/// the ReplyBatcher: the job's verdict (aborted before it ran, cancelled while it ran) decides
/// its error; a job answered already (past its time limit) sends `SlotFreed` instead on the
/// balanced channel, so the scheduler counts the slot free only when its thread is.
///
///     TaskDispatcher tasks({.runtime = runtime, .jobs = jobs, .replies = replies, ...});
///     tasks.on_message(channel, std::move(envelope));   // the receiving loop
///     if (jobs.timed()) tasks.enforce_limits();         // each turn
///
/// Used by the receiving loop alone; the replies it makes are sent from pool threads.
class TaskDispatcher {
 public:
  struct Deps {
    Runtime& runtime;
    JobTable& jobs;
    ReplyBatcher& replies;
    /// The task channels' sockets, the receiving loop's: replies it sends itself (a request
    /// it could not read, a time-out) go on them.
    std::array<zmq::socket_t*, 2> channels;
    const net::Signer& signer;
    net::SharedParts to_controller;
    std::int64_t engine = -1;
    /// How long a task may run past its time limit after being cancelled.
    std::chrono::milliseconds time_limit_grace{10000};
    /// The controller's clock against this engine's: replies stamp a task's start and end in
    /// the controller's time. Null: the engine's own.
    const net::ClockOffset* clock = nullptr;
  };

  explicit TaskDispatcher(Deps deps) : d_(std::move(deps)) {}

  /// A message that arrived on task channel `channel`. Never throws for what a peer sent.
  void on_message(int channel, net::Envelope env);
  /// Tasks past their time limit: each is answered TaskTimeout at once and cancelled. One
  /// still running the grace period later cannot be taken back: the process exits with
  /// net::kEngineTaskPastTimeLimit, saying why, for its supervisor to start a fresh one.
  void enforce_limits();

 private:
  /// The header of the reply to `job`.
  [[nodiscard]] net::Header reply_to(const Job& job) const;
  /// Sends `reply` now on `channel` (the receiving loop's thread).
  void send_now(int channel, net::Header reply);
  /// Runs the request `h` with `payload` for `job`.
  void submit(const net::Header& h, Payload payload, const std::shared_ptr<Job>& job);
  /// What a pool thread calls with the outcome of `job`.
  [[nodiscard]] std::function<void(TaskOutcome)> on_done(std::shared_ptr<Job> job) const;

  Deps d_;
};

/// A client's namespace request on `runtime`: "push" (a map of name -> value), "pull" (a list
/// of names; replies with the list of values) or "clear".
TaskOutcome namespace_op(Runtime& runtime, const std::string& op, const Payload& payload,
                         std::int64_t engine);

}  // namespace ipp::engine
