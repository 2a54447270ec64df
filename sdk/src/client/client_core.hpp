#pragma once

// The client's core, shared by its parts (client.cpp, views.cpp, async_result.cpp, hub_db.cpp):
// the sockets and the I/O thread that alone touches them, the table of pending requests, and
// how a request is sent and its result state made. Private to ipp::client.

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
#include "ipp/net/connection_file.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"
#include "ipp/net/poll.hpp"
#include "ipp/net/shm.hpp"

namespace ipp::detail {

using net::TaskId;

/// What a request keeps of its reply's header: the fields results and their metadata read.
/// (A whole header is several times larger, and 100 000 results held keep 100 000 of them.)
struct Reply {
  std::int64_t engine = -1;
  std::int64_t started = 0;
  std::int64_t completed = 0;
  std::optional<ErrorRecord> error;
  Value info;

  static Reply of(net::Header&& h) {
    return {h.engine, h.started, h.completed, std::move(h.error), std::move(h.info)};
  }
};

/// One request waiting for its reply.
struct Slot {
  std::string msg_id;
  std::string task;
  /// What was sent: a task to a scheduler (which the hub records), or a hub request (a query
  /// or a push).
  net::MsgType type = net::MsgType::QueryRequest;
  std::int64_t target = -1;
  std::int64_t submitted = 0;
  bool done = false;
  Reply reply;
  Payload payload;
  std::int64_t received = 0;
};

enum class Combine { single, per_engine, gather };

struct ResultState {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::shared_ptr<Slot>> slots;
  std::size_t remaining = 0;
  Combine combine = Combine::single;
  bool unwrap = false;                    // each reply is a one-element list (a pull of one name)
  std::weak_ptr<struct ClientCore> core;  // for abort and cancel
};

enum Channel { kRegistration = 0, kDirect = 1, kBalanced = 2 };

/// Owns the sockets and the thread that alone touches them. Callers hand it envelopes
/// through a queue (a byte on an inproc socket wakes it); replies complete their slots.
struct ClientCore {
  struct Outgoing;
  explicit ClientCore(const ClientOptions& options)
      : info(net::read_connection_file(
            options.connection_file ? *options.connection_file
                                    : net::profile_dir(options.profile_dir) / net::kClientFile)),
        signer(info.key),
        timeout(options.timeout) {
    for (auto* s : {&sockets[0], &sockets[1], &sockets[2]})
      s->set(zmq::sockopt::linger, 0);
    // No ZeroMQ limit on the task channels: the controller never drops what a client is owed.
    for (auto* s : {&sockets[kDirect], &sockets[kBalanced]}) {
      s->set(zmq::sockopt::sndhwm, 0);
      s->set(zmq::sockopt::rcvhwm, 0);
    }
    // Large arrays go through shared memory when this host sees the controller's directory.
    if (options.shared_memory && !info.shm_dir.empty())
      shm = net::SharedMemory::open(info.shm_dir, info.shm_token);
    sockets[kRegistration].connect(info.endpoint("registration"));
    // On the controller's host the task channels go through its Unix sockets, if it offers
    // them.
    local = net::SharedMemory::sees(info.shm_dir, info.shm_token);
    sockets[kDirect].connect(info.endpoint("direct", local));
    sockets[kBalanced].connect(info.endpoint("balanced", local));
    wake_pull.bind(wake_endpoint());
    wake_push.connect(wake_endpoint());
    io = std::thread([this] {
      pthread_setname_np(pthread_self(), "ipp-client-io");
      loop();
    });
  }
  ~ClientCore() {
    stopping.store(true);
    {
      std::lock_guard lock(out_mutex);
      wake_push.send(zmq::message_t(1), zmq::send_flags::dontwait);
    }
    io.join();
    net::SharedMemory::release(shm);
  }

  std::string wake_endpoint() const {
    return fmt::format("inproc://ipp-client-{}", static_cast<const void*>(this));
  }

  void submit(Channel channel, net::Envelope env, std::shared_ptr<Slot> slot,
              std::shared_ptr<ResultState> owner) {
    std::lock_guard lock(out_mutex);
    // One wake-up per batch: the I/O thread takes the whole queue when woken, so only the
    // request that finds it empty needs to wake it.
    const bool was_empty = outgoing.empty();
    outgoing.push_back({channel, std::move(env), std::move(slot), std::move(owner)});
    if (was_empty) wake_push.send(zmq::message_t(1), zmq::send_flags::dontwait);
  }

  /// Sends a task whose caller waits for it at once (apply_sync), on a connection of the
  /// calling thread's own, and waits there for the reply: neither goes through the I/O
  /// thread, two thread hand-offs fewer per round trip. Only when nothing else from this
  /// client is on its way, which a request on another connection could overtake; otherwise it
  /// goes the usual way. Returns when `slot` is done: replied, or failed by the I/O thread
  /// (the controller stopped answering, or restarted), which watches it as any pending request.
  void submit_sync(Channel channel, net::Envelope env, const std::shared_ptr<Slot>& slot,
                   const std::shared_ptr<ResultState>& owner) {
    {
      std::scoped_lock lock(out_mutex, pending_mutex);
      if (!outgoing.empty() || !pending.empty()) {
        const bool was_empty = outgoing.empty();
        outgoing.push_back({channel, std::move(env), slot, owner});
        if (was_empty) wake_push.send(zmq::message_t(1), zmq::send_flags::dontwait);
        return;
      }
      pending.emplace(key(slot->msg_id), Pending{slot, owner});
    }
    zmq::socket_t& sock = own_socket(channel);
    try {
      net::send(sock, signer, env, false, {shm, shm != nullptr});
    } catch (const std::exception& e) {
      fail(slot->msg_id, fmt::format("the request could not be sent: {}", e.what()));
      return;
    }
    const auto tick = std::clamp(timeout / 4, Duration(10), Duration(1000));
    zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
    std::vector<net::Envelope> in;
    while (true) {
      {
        std::lock_guard lock(owner->mutex);
        if (slot->done) return;
      }
      if (net::poll(&item, 1, tick) <= 0 || !(item.revents & ZMQ_POLLIN)) continue;
      while (true) {
        in.clear();
        try {
          if (!net::recv_all(sock, signer, in, zmq::recv_flags::dontwait, shm)) break;
        } catch (const ProtocolError&) {
          continue;  // not from our controller: drop it
        }
        for (auto& e : in) {
          try {
            // A late reply to an earlier call on this connection, failed meanwhile, finds
            // nothing pending under its id and is dropped.
            net::Header h = reply_header(e);
            if (finish(std::move(h), e) && slot_done(slot, owner)) return;
          } catch (const Error&) {
            // A malformed reply cannot be matched to a request; drop it.
          }
        }
      }
    }
  }

  bool slot_done(const std::shared_ptr<Slot>& slot, const std::shared_ptr<ResultState>& owner) {
    std::lock_guard lock(owner->mutex);
    return slot->done;
  }

  /// The calling thread's own connection to a scheduler, made on its first synchronous call.
  zmq::socket_t& own_socket(Channel channel) {
    std::lock_guard lock(own_mutex);
    auto& s = own[{std::this_thread::get_id(), channel}];
    if (!s) {
      s = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
      s->set(zmq::sockopt::linger, 0);
      s->set(zmq::sockopt::sndhwm, 0);
      s->set(zmq::sockopt::rcvhwm, 0);
      s->connect(info.endpoint(channel == kDirect ? "direct" : "balanced", local));
    }
    return *s;
  }

  /// Fails the pending request `msg_id` with a ConnectionError saying `why`.
  void fail(const std::string& msg_id, const std::string& why) {
    Pending p;
    {
      std::lock_guard lock(pending_mutex);
      auto it = find_pending(msg_id);
      if (it == pending.end()) return;
      p = std::move(it->second);
      pending.erase(it);
      if (pending.empty()) pending_cv.notify_all();
    }
    std::lock_guard lock(p.owner->mutex);
    p.slot->reply.error = make_error_record(ErrorCode::connection, why, p.slot->task);
    p.slot->done = true;
    if (--p.owner->remaining == 0) p.owner->cv.notify_all();
  }

  /// Sends a request and waits for its reply (queries and pushes).
  std::pair<Reply, Payload> request(Channel channel, net::Header h, Payload payload,
                                    Duration wait_for) {
    auto state = std::make_shared<ResultState>();
    auto slot = std::make_shared<Slot>();
    slot->msg_id = h.msg_id;
    state->slots.push_back(slot);
    state->remaining = 1;
    submit(channel, net::make_message(h, std::move(payload)), slot, state);
    std::unique_lock lock(state->mutex);
    if (!state->cv.wait_for(lock, wait_for, [&] { return state->remaining == 0; })) {
      forget(h.msg_id);
      throw ConnectionError(fmt::format("the controller at {} did not answer within {} ms",
                                        info.endpoint("registration"), wait_for.count()));
    }
    return {slot->reply, slot->payload};
  }

  /// A hub query's answer: in the reply's payload where it grows with the tasks recorded
  /// (history, db_query, result_status), else in its header.
  Value query(const std::string& what, Value extra = {}) {
    auto [reply, payload] = ask(what, std::move(extra));
    if (reply.error) rethrow(*reply.error);
    if (reply.info.is_null() && !payload.root.empty()) return decode(payload);
    return reply.info;
  }

  /// A hub query whose reply the caller inspects itself.
  std::pair<Reply, Payload> ask(const std::string& what, Value extra = {}) {
    net::Header h;
    h.type = net::MsgType::QueryRequest;
    h.msg_id = net::new_id();
    h.task = what;
    h.session = session;
    h.info = std::move(extra);
    return request(kRegistration, h, {}, timeout);
  }

  void forget(const std::string& msg_id) {
    std::lock_guard lock(pending_mutex);
    if (auto it = find_pending(msg_id); it != pending.end()) pending.erase(it);
  }

  bool wait_all(std::optional<Duration> limit) {
    std::unique_lock lock(pending_mutex);
    auto idle = [&] { return pending.empty(); };
    if (!limit) {
      pending_cv.wait(lock, idle);
      return true;
    }
    return pending_cv.wait_for(lock, *limit, idle);
  }

  void loop() {
    zmq::pollitem_t items[] = {{sockets[0].handle(), 0, ZMQ_POLLIN, 0},
                               {sockets[1].handle(), 0, ZMQ_POLLIN, 0},
                               {sockets[2].handle(), 0, ZMQ_POLLIN, 0},
                               {wake_pull.handle(), 0, ZMQ_POLLIN, 0}};
    const auto tick = std::clamp(timeout / 4, Duration(10), Duration(1000));
    {
      // Learn the controller's instance id at once, to notice later if it restarts.
      net::Header h;
      h.type = net::MsgType::QueryRequest;
      h.msg_id = net::new_id();
      h.task = "ids";
      net::send(sockets[kRegistration], signer, net::make_message(h), true);
    }
    while (!stopping.load()) {
      check_controller();
      // Mappings kept for large arrays sent again: not past the pool's own time (looked
      // through once a second, not at every turn of a busy loop).
      if (shm != nullptr && Steady::now() - last_trim > std::chrono::seconds(1)) {
        last_trim = Steady::now();
        net::SharedMemory::trim(std::chrono::seconds(30));
      }
      if (net::poll(items, 4, tick) < 0) continue;
      if (items[3].revents & ZMQ_POLLIN) {
        zmq::message_t drain;
        while (wake_pull.recv(drain, zmq::recv_flags::dontwait)) {
        }
        std::deque<Outgoing> batch;
        {
          std::lock_guard lock(out_mutex);
          batch.swap(outgoing);
        }
        {
          std::lock_guard lock(pending_mutex);
          for (auto& o : batch)
            pending.emplace(key(o.slot->msg_id), Pending{o.slot, o.owner});
        }
        send_all(batch);
      }
      std::vector<net::Envelope> in;
      for (int c = 0; c < 3; ++c) {
        if (!(items[c].revents & ZMQ_POLLIN)) continue;
        while (true) {
          in.clear();
          try {
            if (!net::recv_all(sockets[c], signer, in, zmq::recv_flags::dontwait, shm)) break;
          } catch (const ProtocolError&) {
            continue;  // not from our controller: drop it
          }
          for (auto& env : in) {
            try {
              complete(std::move(env));
            } catch (const Error&) {
              // A malformed reply cannot be matched to a request; drop it.
            }
          }
        }
      }
    }
  }

  /// Sends what callers queued, in order per channel. Requests queued together on a task
  /// channel go as batches: one signature and one message for the scheduler to take in.
  void send_all(std::deque<Outgoing>& batch) {
    constexpr std::size_t kMaxBatch = 256;
    std::vector<net::Envelope> group[3];
    auto flush = [&](int c) {
      if (!group[c].empty())
        net::send_batch(sockets[c], signer, {}, group[c], false, {shm, shm != nullptr});
      group[c].clear();
    };
    for (auto& o : batch) {
      if (o.channel == kRegistration) {
        net::send(sockets[kRegistration], signer, o.envelope);
        continue;
      }
      group[o.channel].push_back(std::move(o.envelope));
      if (group[o.channel].size() == kMaxBatch) flush(o.channel);
    }
    flush(kDirect);
    flush(kBalanced);
  }

  /// Tasks may run for long without a word from the controller. While any request is pending,
  /// the controller is asked a cheap question every timeout / 2; if that goes unanswered for
  /// `timeout`, every pending request fails with ConnectionError instead of waiting forever,
  /// and an answer from a restarted controller fails the requests it cannot know of.
  void check_controller() {
    {
      std::lock_guard lock(pending_mutex);
      if (pending.empty()) {
        probe_id.clear();
        return;
      }
    }
    const auto now = Steady::now();
    if (probe_id.empty()) {
      // While requests are pending, ask a cheap question every timeout / 2 even when other
      // replies arrive: its answer also shows whether the controller restarted meanwhile.
      if (now - probe_sent < timeout / 2) return;
      net::Header h;
      h.type = net::MsgType::QueryRequest;
      h.msg_id = probe_id = net::new_id();
      h.task = "ids";
      probe_sent = now;
      net::send(sockets[kRegistration], signer, net::make_message(h));
      return;
    }
    if (now - probe_sent < timeout) return;
    const std::string why =
        fmt::format("the controller at {} stopped answering (nothing for {} ms)",
                    info.endpoint("registration"), timeout.count());
    fail_all([&](const std::string&) { return why; });
    probe_id.clear();
  }

  /// Fails every pending request with a ConnectionError; `why(msg_id)` gives its message.
  template <class Why>
  void fail_all(Why why) {
    PendingTable failed;
    {
      std::lock_guard lock(pending_mutex);
      failed.swap(pending);
      pending_cv.notify_all();
    }
    for (auto& entry : failed) {
      Pending& p = entry.second;
      std::lock_guard lock(p.owner->mutex);
      p.slot->reply.error =
          make_error_record(ErrorCode::connection, why(p.slot->msg_id), p.slot->task);
      p.slot->done = true;
      if (--p.owner->remaining == 0) p.owner->cv.notify_all();
    }
  }

  /// The controller that had the pending requests restarted, so no reply will come (an engine
  /// that finishes a task still gets its result into the task database).
  void controller_restarted() {
    report_lost();
    fail_all([](const std::string& id) {
      return fmt::format(
          "the controller restarted while this request was in flight; if its engine finishes "
          "it, the result will be in the task database: get_result(\"{}\")",
          id);
    });
  }

  /// Tells the restored controller's hub which tasks this client had in flight, so that
  /// those the dead controller never recorded get a row (failed by the restart) too. Its
  /// answer is not waited for.
  void report_lost() {
    Value::List tasks;
    {
      std::lock_guard lock(pending_mutex);
      for (const auto& [id, p] : pending) {
        const net::MsgType type = p.slot->type;
        if (type != net::MsgType::ApplyRequest && type != net::MsgType::MapRequest &&
            type != net::MsgType::ExecuteRequest && type != net::MsgType::NamespaceRequest)
          continue;
        const char* kind = type == net::MsgType::ApplyRequest ? "apply"
                           : type == net::MsgType::MapRequest ? "map"
                           : type == net::MsgType::ExecuteRequest
                               ? "execute"
                               : p.slot->task.c_str();  // push, pull, clear
        tasks.push_back(Value::list({p.slot->msg_id, kind, p.slot->task, p.slot->submitted}));
      }
    }
    if (tasks.empty()) return;
    net::Header h;
    h.type = net::MsgType::QueryRequest;
    h.msg_id = net::new_id();
    h.session = session;
    h.task = "lost";
    h.info = Value::map({{"tasks", Value(std::move(tasks))}});
    try {
      net::send(sockets[kRegistration], signer, net::make_message(h), true);
    } catch (const std::exception&) {
      // Best effort: the tasks' rows stay as the dead controller left them.
    }
  }

  /// A reply's header; a reply whose result was lost on the way fails its request saying so.
  static net::Header reply_header(net::Envelope& env) {
    net::Header h = net::decode_header(env.parts.at(0));
    if (!env.unreadable.empty()) {
      h.error = make_error_record(
          ErrorCode::protocol, "the reply could not be read: " + env.unreadable, h.task, h.engine);
      env.parts.resize(1);
    }
    return h;
  }

  /// A reply on the I/O thread's sockets.
  void complete(net::Envelope env) {
    net::Header h = reply_header(env);
    // Hub replies carry the controller's instance id: a new one means it restarted.
    if (h.type == net::MsgType::QueryReply && !h.session.empty()) {
      if (controller_instance.empty()) {
        controller_instance = h.session;
      } else if (h.session != controller_instance) {
        controller_instance = h.session;
        Pending keep;
        {
          std::lock_guard lock(pending_mutex);
          if (auto it = find_pending(h.parent_id); it != pending.end()) {
            keep = std::move(it->second);
            pending.erase(it);
          }
        }
        controller_restarted();
        if (keep.slot) {
          std::lock_guard lock(pending_mutex);
          pending.emplace(key(keep.slot->msg_id), std::move(keep));
        }
      }
    }
    if (!probe_id.empty() && h.parent_id == probe_id) {
      probe_id.clear();
      return;
    }
    (void)finish(std::move(h), env);
  }

  /// Completes the pending request that `h` answers; false when none is pending under its id.
  bool finish(net::Header h, net::Envelope& env) {
    Pending p;
    {
      std::lock_guard lock(pending_mutex);
      auto it = find_pending(h.parent_id);
      if (it == pending.end()) return false;
      p = std::move(it->second);
      pending.erase(it);
      if (pending.empty()) pending_cv.notify_all();
    }
    Payload payload = net::payload_of(env);
    std::lock_guard lock(p.owner->mutex);
    p.slot->reply = Reply::of(std::move(h));
    p.slot->payload = std::move(payload);
    p.slot->received = net::now_us();
    p.slot->done = true;
    if (--p.owner->remaining == 0) p.owner->cv.notify_all();
    return true;
  }

  struct Outgoing {
    Channel channel;
    net::Envelope envelope;
    std::shared_ptr<Slot> slot;
    std::shared_ptr<ResultState> owner;
  };
  struct Pending {
    std::shared_ptr<Slot> slot;
    std::shared_ptr<ResultState> owner;
  };
  /// Pending requests by their id's 16 bytes: no string to allocate or hash per request.
  using PendingTable = std::unordered_map<TaskId, Pending, net::TaskIdHash>;
  /// The key of an id this client made (net::new_id(): always 32 hex digits).
  static TaskId key(const std::string& msg_id) {
    if (auto id = TaskId::parse(msg_id)) return *id;
    throw UsageError(fmt::format("request id '{}' is not 32 lowercase hex digits", msg_id));
  }
  /// The pending request `msg_id` names; end() for one that is not, or is no id at all (a
  /// reply's parent_id comes from the wire).
  PendingTable::iterator find_pending(std::string_view msg_id) {
    auto id = TaskId::parse(msg_id);
    return id ? pending.find(*id) : pending.end();
  }

  net::ConnectionInfo info;
  net::Signer signer;
  Duration timeout;
  const net::SharedMemory* shm = nullptr;     // the cluster's, when this host sees it
  bool local = false;                         // on the controller's host
  const std::string session = net::new_id();  // names this client in the hub's records
  zmq::context_t ctx;
  zmq::socket_t sockets[3] = {{ctx, zmq::socket_type::dealer},
                              {ctx, zmq::socket_type::dealer},
                              {ctx, zmq::socket_type::dealer}};
  zmq::socket_t wake_pull{ctx, zmq::socket_type::pull};
  zmq::socket_t wake_push{ctx, zmq::socket_type::push};  // guarded by out_mutex
  std::mutex out_mutex;
  std::deque<Outgoing> outgoing;
  std::mutex pending_mutex;
  std::condition_variable pending_cv;
  PendingTable pending;
  std::atomic<bool> stopping{false};
  // Connections of threads that made synchronous calls, each used by its thread alone.
  std::mutex own_mutex;
  std::map<std::pair<std::thread::id, int>, std::unique_ptr<zmq::socket_t>> own;
  // I/O thread only: liveness of the controller.
  using Steady = std::chrono::steady_clock;
  Steady::time_point probe_sent;
  Steady::time_point last_trim;
  std::string probe_id;
  std::string controller_instance;
  std::thread io;
  std::weak_ptr<ClientCore> self;  // set by Client: results reach their core through it
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
