#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "clients.hpp"
#include "events.hpp"
#include "ipp/error.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"
#include "ipp/net/shm.hpp"
#include "ipp/net/signer.hpp"
#include "log_limiter.hpp"
#include "replies.hpp"
#include "traffic.hpp"

namespace ipp::ctrl {

using net::is_task_request;
/// The msg_ids a ControlRequest names (strings in its info list; anything else is skipped).
[[nodiscard]] std::vector<std::string> control_ids(const net::Header& h);

/// Runs `turn` until `stopping` is set. Nothing escapes the thread: what a turn throws is logged
/// (rate-limited) as `name`'s, and the next turn serves.
void run_turns(const std::atomic<bool>& stopping, const char* name,
               const std::function<void()>& turn);

/// What a scheduler's relay is wired to, the same for both schedulers.
struct RelayWiring {
  zmq::context_t& ctx;           ///< for the inproc sockets below
  TrafficFeed& traffic;          ///< copies of traffic for the hub
  const net::SharedMemory* shm;  ///< the cluster's shared memory, if any
  /// Sign and check every message, with the clients' key on the clients' socket and the
  /// engines' key on the engines': what crosses from one to the other is signed anew.
  const net::Signer& client_signer;
  const net::Signer& engine_signer;
  std::string events_endpoint;   ///< the hub's PUB of engine events
  std::string monitor_endpoint;  ///< the hub's PULL, woken when copies wait
  std::string instance;          ///< the controller's instance id, in replies to controls
};

/// The I/O half of a scheduler: its two ROUTER sockets (clients, engines), the copies of
/// traffic for the hub, replies of errors to clients, the engines' events, and what waits to go
/// out at the end of a turn. The routing policy lives in the scheduler that owns it.
///
/// Messages to one peer queued during a turn leave as one batch (net::send_batch): a busy
/// scheduler pays one signature and one message per peer and turn instead of one per task,
/// and the peer wakes once for all of them. Nothing waits beyond the turn that queued it.
///
/// Not thread-safe: used by its scheduler's thread only.
class Relay {
 public:
  /// Messages taken from one socket in a turn before what they produced is sent: a flood
  /// from one side neither starves the other nor piles up unsent work.
  static constexpr std::size_t kTurn = 1024;

  /// `clients`, `workers`: the scheduler's bound ROUTER sockets; `name` names it in logs.
  Relay(const RelayWiring& wiring, zmq::socket_t& clients, zmq::socket_t& workers,
        const char* name);

  Clients book;  ///< the clients heard from

  /// The SUB socket of engine events (to poll beside the two ROUTER sockets).
  [[nodiscard]] zmq::socket_t& events() noexcept { return events_; }

  /// Copies for the hub, handed over at the end of the turn (before what the turn sends, so
  /// a client that has its reply finds the task recorded).
  void feed_submit(bool balanced, net::PackedMessage message) {
    // Strictly increasing: the tasks of one turn come within a microsecond, and the
    // database orders by this time (history, queries) before anything else.
    last_submit_us_ = std::max(net::now_us(), last_submit_us_ + 1);
    copies_.push_back(Traffic::submit(balanced, std::move(message), last_submit_us_));
  }
  void feed_dispatch(net::TaskId msg_id, std::int64_t engine) {
    copies_.push_back(Traffic::dispatch(msg_id, engine));
  }
  /// `late`: a reply the scheduler no longer expected (see Traffic::late).
  void feed_reply(std::int64_t engine, const net::Envelope& reply, bool late = false) {
    copies_.push_back(Traffic::reply(engine, net::PackedMessage(reply), late));
  }

  /// Answers the request `parent` of `client` with a failed TaskReply.
  void reply_error(std::uint32_t client, const std::string& parent, ErrorRecord err);
  void reply_error(std::uint32_t client, net::TaskId parent, ErrorRecord err) {
    reply_error(client, parent.str(), std::move(err));
  }

  /// Queues `env` for `engine`; `msg_id` names the task it carries (none for control
  /// messages), so that flush() can say which tasks did not get there. The client's route
  /// stays here: engines answer by msg_id, and the scheduler knows where each task came from.
  void to_engine(std::int64_t engine, std::optional<net::TaskId> msg_id, net::Envelope env) {
    env.route.clear();
    auto& box = engine_box_[engine];
    box.msg_ids.push_back(msg_id);
    box.messages.push_back(std::move(env));
  }
  /// Queues `env` for `client`.
  void to_client(std::uint32_t client, net::Envelope env) {
    env.route.clear();
    client_box_[client].push_back(std::move(env));
  }
  /// Sends what this turn queued. Returns the tasks whose engine could not be reached (its
  /// route is gone: it died a moment ago and its down event is on the way).
  ///
  /// The boxes of peers sent to in this turn stay, with their storage, for the next one; a
  /// box that stayed empty for a whole turn goes.
  std::vector<std::pair<std::int64_t, net::TaskId>> flush();

  /// The id of a client's task request. Anything else on the channel is logged and dropped;
  /// a request without a well-formed msg_id, or with a part that could not be read, is
  /// answered with an error saying so. Both give nullopt.
  std::optional<net::TaskId> task_id(std::uint32_t client, const net::Header& h,
                                     const net::Envelope& env);
  /// What a scheduler does first with each client message: interns the client, hands a
  /// ControlRequest to `on_control(client, h)`, and checks a task request (task_id()). Gives
  /// the client's number and the task's id, or nullopt when there is no task to queue.
  template <typename OnControl>
  std::optional<std::pair<std::uint32_t, net::TaskId>> admit(net::Envelope& env,
                                                             const net::Header& h,
                                                             OnControl&& on_control) {
    const std::uint32_t client = book.intern(env.route, env.peer_maps);
    if (h.type == net::MsgType::ControlRequest) {
      on_control(client, h);
      return std::nullopt;
    }
    const auto id = task_id(client, h, env);
    if (!id) return std::nullopt;
    return std::pair{client, *id};
  }
  /// An engine's message: remembers whether the engine takes shared-memory parts, and turns a
  /// reply whose result could not be read into an error reply saying so.
  void from_engine(net::Envelope& env, net::Header& h);
  /// Tells `engine` to abort or cancel `ids` (those it holds). Queued behind what this turn
  /// already sends it, so it never overtakes the task it names.
  void control_engine(std::int64_t engine, const std::string& what,
                      const std::vector<std::string>& ids);
  /// Where a task named by a ControlRequest is: taken out of this scheduler's queue (the
  /// scheduler answered it), held by an engine, or unknown here (both empty).
  struct ControlTarget {
    bool removed = false;
    std::optional<std::int64_t> engine;
  };
  /// Handles a ControlRequest (abort, cancel) from `client`: `where(id)` places each task it
  /// names (ids that are not well formed are skipped); the engines that hold tasks are told,
  /// behind what this turn already sends them, and the client is answered with which tasks
  /// were removed here and which were passed on.
  template <typename Where>
  void control(std::uint32_t client, const net::Header& h, Where&& where) {
    std::vector<std::string> removed, signalled;
    std::map<std::int64_t, std::vector<std::string>> per_engine;
    for (const auto& text : control_ids(h)) {
      const auto id = net::TaskId::parse(text);
      if (!id) continue;
      const ControlTarget t = where(*id);
      if (t.removed) {
        removed.push_back(text);
      } else if (t.engine) {
        per_engine[*t.engine].push_back(text);
        signalled.push_back(text);
      }
    }
    for (const auto& [engine, ids] : per_engine)
      control_engine(engine, h.task, ids);
    control_reply(client, h, removed, signalled);
  }

  /// Answers a probe (ControlRequest `probe`) from `client`: which of the tasks it names this
  /// scheduler does not know (`known(id)` false). The answer leaves behind every reply queued
  /// for the client before it, on the connection the probe came by: a task it names as
  /// unknown was never received, or was received changed (its ids), and no reply will come.
  template <typename Known>
  void probe(std::uint32_t client, const net::Header& h, Known&& known) {
    Value::List unknown;
    for (const auto& text : control_ids(h)) {
      const auto id = net::TaskId::parse(text);
      if (!id || !known(*id)) unknown.emplace_back(text);
    }
    net::Header r = ctrl::reply_header(net::MsgType::ControlReply, h.msg_id);
    r.session = instance_;
    r.info = Value::map({{"unknown", Value(std::move(unknown))}});
    to_client(client, net::make_message(r));
  }

  /// One turn's input, after a poll of {clients, workers, events}: engine events, then at
  /// most kTurn messages from clients and from engines, each with its decoded header.
  template <typename OnEvent, typename OnRequest, typename OnReply>
  void take(const zmq::pollitem_t* items, OnEvent&& on_event, OnRequest&& on_request,
            OnReply&& on_reply) {
    if (items[2].revents & ZMQ_POLLIN) {
      while (auto event = EngineEvent::receive(events_))
        on_event(*event);
    }
    if (items[0].revents & ZMQ_POLLIN) {
      for (std::size_t n = 0; n < kTurn && receive(clients_, in_); n += in_.size()) {
        for (auto& [env, h] : in_)
          on_request(env, h);
      }
    }
    if (items[1].revents & ZMQ_POLLIN) {
      for (std::size_t n = 0; n < kTurn && receive(workers_, in_); n += in_.size()) {
        for (auto& [env, h] : in_)
          on_reply(env, h);
      }
    }
  }

 private:
  static constexpr std::size_t kMaxBatch = 256;
  struct EngineBox {
    std::vector<zmq::message_t> route;  // made at its first flush
    std::vector<std::optional<net::TaskId>> msg_ids;
    std::vector<net::Envelope> messages;
  };

  void control_reply(std::uint32_t client, const net::Header& h,
                     const std::vector<std::string>& removed,
                     const std::vector<std::string>& signalled);

  /// Receives what is waiting on `sock` (a message or a batch); malformed ones are logged and
  /// skipped. Fills `out` with each message and its decoded header; false when none waits.
  bool receive(zmq::socket_t& sock, std::vector<std::pair<net::Envelope, net::Header>>& out);

  TrafficFeed& traffic_;
  const net::SharedMemory* shm_;
  const net::Signer& client_signer_;
  const net::Signer& engine_signer_;
  zmq::socket_t& clients_;
  zmq::socket_t& workers_;
  zmq::socket_t events_;
  zmq::socket_t monitor_;
  const char* name_;
  std::string instance_;  // the controller's, in replies to controls
  LogLimiter dropped_;    // warnings of dropped messages: a flood is a few lines
  LogLimiter answered_;   // and of those answered that did not verify
  /// Answers to messages whose signature does not verify: a few per second (a message changed
  /// on the way is rare), so that a stranger's flood costs no memory for answers it never reads.
  struct AnswerBudget {
    static constexpr double kPerSecond = 20;
    static constexpr double kBurst = 100;
    double tokens = kBurst;
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    bool take();
  } unverified_answers_;
  std::vector<Traffic> copies_;               // this turn's, for the hub
  std::int64_t last_submit_us_ = 0;           // the latest submission's time (feed_submit)
  std::map<std::int64_t, bool> engine_maps_;  // engines that take shared-memory parts
  std::map<std::int64_t, EngineBox> engine_box_;
  std::map<std::uint32_t, std::vector<net::Envelope>> client_box_;
  std::vector<std::pair<net::Envelope, net::Header>> in_;  // what take() received
  std::vector<net::Envelope> received_;                    // receive()'s, reused
};

}  // namespace ipp::ctrl
