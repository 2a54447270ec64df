#pragma once

// The client's core, shared by its parts (client.cpp, views.cpp, async_result.cpp, hub_db.cpp):
// the connection to the controller (the sockets and the I/O thread that alone touches them,
// the synchronous path, the controller's liveness) and how a request is sent and its result
// state made. The requests waiting for replies are in pending_requests.hpp. Private to
// ipp::client.

#include <pthread.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <zmq.hpp>

#include "ipp/client.hpp"
#include "ipp/codec.hpp"
#include "ipp/literal.hpp"
#include "ipp/net/clock_offset.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"
#include "ipp/net/poll.hpp"
#include "ipp/net/shm.hpp"
#include "pending_requests.hpp"

namespace ipp::detail {

using net::TaskId;

enum Channel { kRegistration = 0, kDirect = 1, kBalanced = 2 };

/// Owns the sockets and the thread that alone touches them. Callers hand it envelopes
/// through a queue (a byte on an inproc socket wakes it); replies complete their slots.
struct ClientCore {
  explicit ClientCore(const ClientOptions& options);
  ~ClientCore();
  ClientCore(const ClientCore&) = delete;
  ClientCore& operator=(const ClientCore&) = delete;

  /// Queues a request for the I/O thread; `slot` (one of `owner`'s) waits for its reply.
  void submit(Channel channel, net::Envelope env, std::shared_ptr<Slot> slot,
              std::shared_ptr<ResultState> owner);
  /// Sends a task whose caller waits for it at once (apply_sync), on a connection of the
  /// calling thread's own, and waits there for the reply: neither goes through the I/O
  /// thread, two thread hand-offs fewer per round trip. Only when nothing else from this
  /// client is on its way, which a request on another connection could overtake; otherwise it
  /// goes the usual way. Returns when `slot` is done: replied, or failed by the I/O thread
  /// (the controller stopped answering, or restarted), which watches it as any pending request.
  void submit_sync(Channel channel, net::Envelope env, const std::shared_ptr<Slot>& slot,
                   const std::shared_ptr<ResultState>& owner);
  /// Sends a request and waits for its reply (queries and pushes) at most `wait_for`.
  std::pair<Reply, Payload> request(Channel channel, net::Header h, Payload payload,
                                    Duration wait_for);
  /// A hub query's answer: in the reply's payload where it grows with the tasks recorded
  /// (history, db_query, result_status), else in its header.
  Value query(const std::string& what, Value extra = {});
  /// A hub query whose reply the caller inspects itself.
  std::pair<Reply, Payload> ask(const std::string& what, Value extra = {});
  /// Waits until no request is pending, at most `limit`.
  bool wait_all(std::optional<Duration> limit) { return pending.wait_all(limit); }

  net::ConnectionInfo info;
  net::Signer signer;
  Duration timeout;
  const net::SharedMemory* shm = nullptr;     // the cluster's, when this host sees it
  bool local = false;                         // on the controller's host
  const std::string session = net::new_id();  // names this client in the hub's records
  /// The controller's clock against this host's, from the hub's answers to the client's
  /// probes: tasks' metadata give this client's own times (submitted, received) in the
  /// controller's clock, as their start and end are.
  net::ClockOffset clock;
  std::weak_ptr<ClientCore> self;  // set by Client: results reach their core through it

 private:
  struct Outgoing {
    Channel channel;
    net::Envelope envelope;
    std::shared_ptr<Slot> slot;
    std::shared_ptr<ResultState> owner;
  };
  using Steady = std::chrono::steady_clock;

  std::string wake_endpoint() const;
  /// The calling thread's own connection to a scheduler, made on its first synchronous call.
  zmq::socket_t& own_socket(Channel channel);
  /// The I/O thread: sends what callers queued, takes in replies, watches the controller.
  void loop();
  /// Takes the queue callers filled and sends it.
  void send_queued();
  /// Takes in the replies on the I/O thread's sockets.
  void receive(zmq::pollitem_t (&items)[4]);
  /// Sends what callers queued, in order per channel. Requests queued together on a task
  /// channel go as batches: one signature and one message for the scheduler to take in.
  void send_all(std::deque<Outgoing>& batch);
  /// Why a request could not be sent: the controller closed the connection at the handshake.
  [[nodiscard]] std::string refused() const;
  /// Reads the handshake monitors; after a failed handshake fails every pending request.
  void check_handshakes();
  /// Tasks may run for long without a word from the controller. While any request is pending,
  /// the controller is asked a cheap question every timeout / 2; if that goes unanswered for
  /// `timeout`, every pending request fails with ConnectionError instead of waiting forever,
  /// and an answer from a restarted controller fails the requests it cannot know of.
  void check_controller();
  /// Asks each scheduler, on the connection its tasks went by, about the tasks it has not
  /// answered for kProbeAfter: one it does not have was lost or changed on the way (only
  /// possible without encryption: CURVE closes a connection that delivers a changed frame),
  /// and would otherwise be waited for forever.
  void probe_tasks();
  /// A scheduler's answer to a probe: fails each task it names as unknown and still pending.
  /// False for any other message.
  bool probe_answered(const net::Header& h);
  /// The controller that had the pending requests restarted, so no reply will come (an engine
  /// that finishes a task still gets its result into the task database). `except`: the
  /// request whose answer showed it, which is answered.
  void controller_restarted(std::string_view except);
  /// Tells the restored controller's hub which tasks this client had in flight, so that
  /// those the dead controller never recorded get a row (failed by the restart) too. Its
  /// answer is not waited for.
  void report_lost();
  /// Whether a received message is to be handled: verified, or a task reply to fail.
  static bool answerable(const net::Envelope& env);
  /// A reply's header; a reply whose result was lost on the way fails its request saying so.
  static net::Header reply_header(net::Envelope& env);
  /// A reply on the I/O thread's sockets.
  void complete(net::Envelope env);
  bool slot_done(const std::shared_ptr<Slot>& slot, const std::shared_ptr<ResultState>& owner);

  zmq::context_t ctx;
  zmq::socket_t sockets[3] = {{ctx, zmq::socket_type::dealer},
                              {ctx, zmq::socket_type::dealer},
                              {ctx, zmq::socket_type::dealer}};
  /// Each socket's failed handshakes (ZeroMQ socket monitors), made only when encrypting: a
  /// controller that refuses this client's keys closes the connection at the handshake, and
  /// what was queued on it is lost.
  zmq::socket_t handshakes[3] = {
      {ctx, zmq::socket_type::pair}, {ctx, zmq::socket_type::pair}, {ctx, zmq::socket_type::pair}};
  /// Set once a handshake failed: every request then fails at once (see refused()).
  std::atomic<bool> handshake_failed{false};
  zmq::socket_t wake_pull{ctx, zmq::socket_type::pull};
  zmq::socket_t wake_push{ctx, zmq::socket_type::push};  // guarded by out_mutex
  std::mutex out_mutex;
  std::deque<Outgoing> outgoing;
  PendingRequests pending;
  std::atomic<bool> stopping{false};
  // Connections of threads that made synchronous calls, each used by its thread alone.
  std::mutex own_mutex;
  std::map<std::pair<std::thread::id, int>, std::unique_ptr<zmq::socket_t>> own;
  // I/O thread only: liveness of the controller.
  Steady::time_point probe_sent;
  std::int64_t probe_sent_us = 0;  // the same, in this host's clock (net::now_us)
  std::string clock_probe_id;      // the first query, sent at once: a first clock sample
  std::int64_t clock_probe_sent_us = 0;
  Steady::time_point last_trim;
  Steady::time_point last_task_probe;
  std::string probe_id;
  std::string controller_instance;
  std::thread io;
};

/// Sends one task request (its slot joins `state`); `sync`: on the calling thread's own
/// connection (apply_sync).
std::shared_ptr<Slot> send_task(ClientCore& core, const std::shared_ptr<ResultState>& state,
                                Channel channel, net::MsgType type, std::int64_t target,
                                const std::string& task, Payload payload,
                                const std::string& bind = {}, Value info = {},
                                const TaskFlags& flags = {}, bool sync = false);

/// Sends an abort or cancel to both schedulers, which pass it on to the engines.
ControlSummary control(ClientCore& core, const std::string& what,
                       const std::vector<std::string>& msg_ids);

/// A result state for `n` requests, combined as `combine` says.
std::shared_ptr<ResultState> new_state(Combine combine, std::size_t n);

}  // namespace ipp::detail
