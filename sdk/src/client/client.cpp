#include "ipp/client.hpp"

#include "sequences.hpp"

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

#include "ipp/codec.hpp"
#include "ipp/literal.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"
#include "ipp/net/poll.hpp"
#include "ipp/net/shm.hpp"

namespace ipp {

namespace detail {

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
    fail_all([](const std::string& id) {
      return fmt::format(
          "the controller restarted while this request was in flight; if its engine finishes "
          "it, the result will be in the task database: get_result(\"{}\")",
          id);
    });
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

namespace {

std::shared_ptr<Slot> send_task(ClientCore& core, const std::shared_ptr<ResultState>& state,
                                Channel channel, net::MsgType type, std::int64_t target,
                                const std::string& task, Payload payload,
                                const std::string& bind = {}, Value info = {},
                                const TaskFlags& flags = {}, bool sync = false) {
  net::Header h;
  h.timeout_ms = flags.timeout ? std::max<std::int64_t>(1, flags.timeout->count()) : 0;
  h.flags.retries = flags.retries;
  for (auto [from, to] :
       {std::pair{&flags.after, &h.flags.after}, std::pair{&flags.follow, &h.flags.follow}}) {
    to->ids = from->msg_ids;
    to->all = from->all;
    to->success = from->success;
    to->failure = from->failure;
  }
  h.flags.targets = flags.targets;
  h.flags.priority = flags.priority;
  h.flags.time_limit_ms =
      flags.time_limit ? std::max<std::int64_t>(1, flags.time_limit->count()) : 0;
  if (task.size() > net::kMaxTaskNameBytes) {
    throw UsageError(fmt::format("task name '{}' is longer than the {} bytes allowed",
                                 net::shown_task_name(task), net::kMaxTaskNameBytes));
  }
  h.type = type;
  h.msg_id = net::new_id();
  h.session = core.session;
  h.task = task;
  h.target = target;
  h.bind = bind;
  h.info = std::move(info);
  h.submitted = net::now_us();
  auto slot = std::make_shared<Slot>();
  slot->msg_id = h.msg_id;
  slot->task = task;
  slot->target = target;
  slot->submitted = h.submitted;
  state->slots.push_back(slot);
  if (state->core.expired()) state->core = core.self;
  if (sync)
    core.submit_sync(channel, net::make_message(h, std::move(payload)), slot, state);
  else
    core.submit(channel, net::make_message(h, std::move(payload)), slot, state);
  return slot;
}

/// Sends an abort or cancel to both schedulers, which pass it on to the engines.
ControlSummary control(ClientCore& core, const std::string& what,
                       const std::vector<std::string>& msg_ids) {
  ControlSummary out;
  if (msg_ids.empty()) return out;
  Value::List ids;
  for (const auto& id : msg_ids)
    ids.emplace_back(id);
  std::set<std::string> handled;
  for (Channel channel : {kBalanced, kDirect}) {
    net::Header h;
    h.type = net::MsgType::ControlRequest;
    h.msg_id = net::new_id();
    h.session = core.session;
    h.task = what;
    h.info = Value(ids);
    auto [reply, payload] = core.request(channel, h, {}, core.timeout);
    if (reply.error) rethrow(*reply.error);
    for (const char* key : {"removed", "signalled"}) {
      auto& into = std::string_view(key) == "removed" ? out.removed : out.signalled;
      if (reply.info.kind() != Value::Kind::map || !reply.info.as_map().contains(key)) continue;
      const Value list = reply.info[key];
      for (const auto& v : list.as_list()) {
        into.push_back(v.as_string());
        handled.insert(v.as_string());
      }
    }
  }
  for (const auto& id : msg_ids) {
    if (handled.count(id) == 0) out.not_pending.push_back(id);
  }
  return out;
}

std::shared_ptr<ResultState> new_state(Combine combine, std::size_t n) {
  auto s = std::make_shared<ResultState>();
  s->combine = combine;
  s->remaining = n;
  s->slots.reserve(n);
  return s;
}

}  // namespace
}  // namespace detail

// ---- AsyncResult ---------------------------------------------------------------------------

bool AsyncResult::wait(std::optional<Duration> timeout) const {
  std::unique_lock lock(state_->mutex);
  auto done = [&] { return state_->remaining == 0; };
  if (!timeout) {
    state_->cv.wait(lock, done);
    return true;
  }
  return state_->cv.wait_for(lock, *timeout, done);
}

bool AsyncResult::ready() const {
  std::lock_guard lock(state_->mutex);
  return state_->remaining == 0;
}

bool AsyncResult::successful() const {
  std::lock_guard lock(state_->mutex);
  if (state_->remaining != 0)
    throw UsageError("AsyncResult::successful() called before the result is ready");
  return std::none_of(state_->slots.begin(), state_->slots.end(),
                      [](const auto& s) { return s->reply.error.has_value(); });
}

std::vector<std::string> AsyncResult::msg_ids() const {
  std::lock_guard lock(state_->mutex);
  std::vector<std::string> out;
  for (const auto& s : state_->slots)
    out.push_back(s->msg_id);
  return out;
}

std::vector<TaskMetadata> AsyncResult::metadata() const {
  std::lock_guard lock(state_->mutex);
  std::vector<TaskMetadata> out;
  for (const auto& s : state_->slots) {
    out.push_back({s->msg_id, s->done ? s->reply.engine : s->target, s->submitted, s->reply.started,
                   s->reply.completed, s->received});
  }
  return out;
}

namespace {
void control_result(const std::shared_ptr<detail::ResultState>& state, const char* what) {
  std::shared_ptr<detail::ClientCore> core;
  std::vector<std::string> ids;
  {
    std::lock_guard lock(state->mutex);
    core = state->core.lock();
    for (const auto& s : state->slots) {
      if (!s->done) ids.push_back(s->msg_id);
    }
  }
  if (ids.empty()) return;  // finished: nothing to stop
  if (!core) throw UsageError(fmt::format("{}: the client of this result is gone", what));
  (void)detail::control(*core, what, ids);
}
}  // namespace

void AsyncResult::abort() const {
  control_result(state_, "abort");
}

void AsyncResult::cancel() const {
  control_result(state_, "cancel");
}

Value AsyncResult::get(std::optional<Duration> timeout) const {
  if (!wait(timeout)) {
    throw TimeoutError(fmt::format("result not ready after {} ms ({} of {} tasks done)",
                                   timeout->count(), state_->slots.size() - state_->remaining,
                                   state_->slots.size()));
  }
  std::lock_guard lock(state_->mutex);
  std::vector<ErrorRecord> errors;
  for (const auto& s : state_->slots) {
    if (s->reply.error) errors.push_back(*s->reply.error);
  }
  if (errors.size() == 1 && state_->slots.size() == 1) rethrow(errors[0]);
  if (!errors.empty()) throw CompositeError(std::move(errors));
  std::vector<Value> values;
  values.reserve(state_->slots.size());
  for (const auto& s : state_->slots) {
    Value v = s->payload.root.empty() ? Value() : decode(s->payload);
    if (state_->unwrap && v.kind() == Value::Kind::list && v.size() == 1) {
      Value first = std::move(v.as_list()[0]);
      v = std::move(first);
    }
    values.push_back(std::move(v));
  }
  switch (state_->combine) {
    case detail::Combine::single:
      return values.at(0);
    case detail::Combine::per_engine:
      return Value(Value::List(std::move(values)));
    case detail::Combine::gather:
      return detail::concatenate(std::move(values));
  }
  return Value();
}

// ---- views ---------------------------------------------------------------------------------

DirectView DirectView::with(const TaskFlags& flags) const {
  const char* refused = flags.timeout            ? "timeout"
                        : flags.retries != 0     ? "retries"
                        : !flags.after.empty()   ? "after"
                        : !flags.follow.empty()  ? "follow"
                        : !flags.targets.empty() ? "targets"
                        : flags.priority != 0    ? "priority"
                                                 : nullptr;
  if (refused != nullptr) {
    throw UsageError(
        fmt::format("'{}' is a load-balancing flag; a direct view takes only time_limit", refused));
  }
  DirectView v = *this;
  v.time_limit_ = flags.time_limit;
  return v;
}

AsyncResult DirectView::apply_async(const std::string& task, const Value::List& args) const {
  if (targets_.empty()) throw UsageError("this view has no engines");
  auto state = detail::new_state(single_ ? detail::Combine::single : detail::Combine::per_engine,
                                 targets_.size());
  const Payload payload = encode(Value(args));
  for (auto t : targets_) {
    detail::send_task(*core_, state, detail::kDirect, net::MsgType::ApplyRequest, t, task, payload,
                      {}, {}, {.time_limit = time_limit_});
  }
  return AsyncResult(state);
}

Value DirectView::apply_sync(const std::string& task, const Value::List& args) const {
  if (targets_.size() != 1) return apply_async(task, args).get();
  auto state =
      detail::new_state(single_ ? detail::Combine::single : detail::Combine::per_engine, 1);
  detail::send_task(*core_, state, detail::kDirect, net::MsgType::ApplyRequest, targets_[0], task,
                    encode(Value(args)), {}, {}, {.time_limit = time_limit_}, true);
  return AsyncResult(state).get();
}

AsyncResult DirectView::map_async(const std::string& task, const Value::List& sequences) const {
  return map_impl(task, sequences, {});
}

AsyncResult DirectView::map_impl(const std::string& task, const Value::List& sequences,
                                 const std::string& bind) const {
  if (targets_.empty()) throw UsageError("this view has no engines");
  const std::uint64_t n = detail::common_length(sequences).value_or(0);
  const std::uint64_t engines = targets_.size();
  auto state = detail::new_state(detail::Combine::gather, engines);
  for (std::uint64_t i = 0; i < engines; ++i) {
    const auto [begin, end] = detail::block(n, engines, i);
    Value::List part;
    for (const auto& s : sequences)
      part.push_back(s.kind() == Value::Kind::ref ? s : detail::slice(s, begin, end));
    detail::send_task(*core_, state, detail::kDirect, net::MsgType::MapRequest, targets_[i], task,
                      encode(Value(std::move(part))), bind, {}, {.time_limit = time_limit_});
  }
  return AsyncResult(state);
}

Value DirectView::map(const std::string& task, const Value::List& sequences) const {
  return map_async(task, sequences).get();
}

AsyncResult DirectView::apply_to_async(const std::string& name, const std::string& task,
                                       const Value::List& args) const {
  if (targets_.empty()) throw UsageError("this view has no engines");
  if (name.empty()) throw UsageError("apply_to needs a name to bind the result to");
  auto state = detail::new_state(single_ ? detail::Combine::single : detail::Combine::per_engine,
                                 targets_.size());
  const Payload payload = encode(Value(args));
  for (auto t : targets_) {
    detail::send_task(*core_, state, detail::kDirect, net::MsgType::ApplyRequest, t, task, payload,
                      name, {}, {.time_limit = time_limit_});
  }
  return AsyncResult(state);
}

void DirectView::apply_to(const std::string& name, const std::string& task,
                          const Value::List& args) const {
  (void)apply_to_async(name, task, args).get();
}

AsyncResult DirectView::map_to_async(const std::string& name, const std::string& task,
                                     const Value::List& sequences) const {
  if (name.empty()) throw UsageError("map_to needs a name to bind the results to");
  return map_impl(task, sequences, name);
}

void DirectView::map_to(const std::string& name, const std::string& task,
                        const Value::List& sequences) const {
  (void)map_to_async(name, task, sequences).get();
}

// ---- namespaces ----------------------------------------------------------------------------

/// Sends one NamespaceRequest per target: payloads[i] to targets_[i] (or payloads[0] to all).
AsyncResult DirectView::namespace_request(const std::string& op, const std::vector<Value>& payloads,
                                          int combine, bool unwrap) const {
  if (targets_.empty()) throw UsageError("this view has no engines");
  auto state = detail::new_state(static_cast<detail::Combine>(combine), targets_.size());
  state->unwrap = unwrap;
  std::vector<Payload> encoded;
  for (const auto& p : payloads)
    encoded.push_back(p.is_null() ? Payload{} : encode(p));
  for (std::size_t i = 0; i < targets_.size(); ++i) {
    detail::send_task(*core_, state, detail::kDirect, net::MsgType::NamespaceRequest, targets_[i],
                      op, encoded.size() == 1 ? encoded[0] : encoded.at(i));
  }
  return AsyncResult(state);
}

namespace {
void check_name(const std::string& name) {
  if (name.empty()) throw UsageError("a namespace name cannot be empty");
}
int per_view(bool single) {
  return static_cast<int>(single ? detail::Combine::single : detail::Combine::per_engine);
}
}  // namespace

AsyncResult DirectView::push_async(const Value::Map& values) const {
  for (const auto& [name, value] : values) {
    check_name(name);
    if (value.kind() == Value::Kind::ref)
      throw ArgumentError(fmt::format("push: cannot bind '{}' to a reference", name));
  }
  return namespace_request("push", {Value(values)}, per_view(single_));
}

void DirectView::push(const Value::Map& values) const {
  (void)push_async(values).get();
}

AsyncResult DirectView::pull_async(const std::string& name) const {
  check_name(name);
  return namespace_request("pull", {Value(Value::List{Value(name)})}, per_view(single_), true);
}

Value DirectView::pull(const std::string& name) const {
  return pull_async(name).get();
}

AsyncResult DirectView::pull_async(const std::vector<std::string>& names) const {
  Value::List list;
  for (const auto& n : names) {
    check_name(n);
    list.emplace_back(n);
  }
  return namespace_request("pull", {Value(std::move(list))}, per_view(single_));
}

Value DirectView::pull(const std::vector<std::string>& names) const {
  return pull_async(names).get();
}

NamespaceItem DirectView::operator[](std::string name) const {
  check_name(name);
  return NamespaceItem(*this, std::move(name));
}

AsyncResult DirectView::scatter_async(const std::string& name, const Value& sequence) const {
  check_name(name);
  if (targets_.empty()) throw UsageError("this view has no engines");
  if (sequence.kind() != Value::Kind::list && sequence.kind() != Value::Kind::array &&
      sequence.kind() != Value::Kind::range) {
    throw ArgumentError(fmt::format("scatter needs a sequence (list, array or range), got {}",
                                    sequence.type_name()));
  }
  const std::uint64_t n = sequence.size();
  std::vector<Value> parts;
  for (std::uint64_t i = 0; i < targets_.size(); ++i) {
    const auto [begin, end] = detail::block(n, targets_.size(), i);
    parts.push_back(Value::map({{name, detail::slice(sequence, begin, end)}}));
  }
  return namespace_request("push", parts, static_cast<int>(detail::Combine::per_engine));
}

void DirectView::scatter(const std::string& name, const Value& sequence) const {
  (void)scatter_async(name, sequence).get();
}

AsyncResult DirectView::gather_async(const std::string& name) const {
  check_name(name);
  return namespace_request("pull", {Value(Value::List{Value(name)})},
                           static_cast<int>(detail::Combine::gather), true);
}

Value DirectView::gather(const std::string& name) const {
  return gather_async(name).get();
}

AsyncResult DirectView::clear_async() const {
  return namespace_request("clear", {Value()}, per_view(single_));
}

void DirectView::clear() const {
  (void)clear_async().get();
}

AsyncResult DirectView::execute(const std::string& code) const {
  if (targets_.empty()) throw UsageError("this view has no engines");
  auto state = detail::new_state(single_ ? detail::Combine::single : detail::Combine::per_engine,
                                 targets_.size());
  const Payload payload = encode(Value(code));
  for (auto t : targets_) {
    detail::send_task(*core_, state, detail::kDirect, net::MsgType::ExecuteRequest, t, "execute",
                      payload);
  }
  return AsyncResult(state);
}

AsyncResult LoadBalancedView::apply_async(const std::string& task, const Value::List& args) const {
  auto state = detail::new_state(detail::Combine::single, 1);
  detail::send_task(*core_, state, detail::kBalanced, net::MsgType::ApplyRequest, -1, task,
                    encode(Value(args)), {}, {}, flags_);
  return AsyncResult(state);
}

Value LoadBalancedView::apply_sync(const std::string& task, const Value::List& args) const {
  auto state = detail::new_state(detail::Combine::single, 1);
  detail::send_task(*core_, state, detail::kBalanced, net::MsgType::ApplyRequest, -1, task,
                    encode(Value(args)), {}, {}, flags_, true);
  return AsyncResult(state).get();
}

AsyncResult LoadBalancedView::map_async(const std::string& task, const Value::List& sequences,
                                        std::uint64_t chunksize) const {
  for (const auto& s : sequences) {
    if (s.kind() == Value::Kind::ref) {
      throw UsageError(
          fmt::format("map: ipp::ref('{}') cannot be split over a load-balanced view, whose "
                      "engines are chosen later; use a DirectView",
                      s.as_ref().name));
    }
  }
  const std::uint64_t n = detail::common_length(sequences).value_or(0);
  if (chunksize == 0) {
    const auto engines = std::max<std::uint64_t>(1, core_->query("ids").size());
    chunksize = std::max<std::uint64_t>(1, (n + engines * 4 - 1) / (engines * 4));
  }
  const std::uint64_t chunks = n == 0 ? 1 : (n + chunksize - 1) / chunksize;
  auto state = detail::new_state(detail::Combine::gather, chunks);
  for (std::uint64_t c = 0; c < chunks; ++c) {
    const std::uint64_t begin = std::min(n, c * chunksize);
    const std::uint64_t end = std::min(n, begin + chunksize);
    Value::List block;
    for (const auto& s : sequences)
      block.push_back(detail::slice(s, begin, end));
    detail::send_task(*core_, state, detail::kBalanced, net::MsgType::MapRequest, -1, task,
                      encode(Value(std::move(block))), {}, {}, flags_);
  }
  return AsyncResult(state);
}

Value LoadBalancedView::map(const std::string& task, const Value::List& sequences,
                            std::uint64_t chunksize) const {
  return map_async(task, sequences, chunksize).get();
}

// ---- Client --------------------------------------------------------------------------------

Client::Client(ClientOptions options) : core_(std::make_shared<detail::ClientCore>(options)) {
  core_->self = core_;
}

ControlSummary Client::abort(const std::vector<std::string>& msg_ids) const {
  return detail::control(*core_, "abort", msg_ids);
}

ControlSummary Client::cancel(const std::vector<std::string>& msg_ids) const {
  return detail::control(*core_, "cancel", msg_ids);
}
Client::~Client() = default;

std::vector<std::int64_t> Client::ids() const {
  return core_->query("ids").as<std::vector<std::int64_t>>();
}

DirectView Client::operator[](std::int64_t id) const {
  return DirectView(core_, {id}, true);
}

DirectView Client::operator[](const std::vector<std::int64_t>& targets) const {
  return DirectView(core_, targets, false);
}

DirectView Client::direct_view() const {
  return DirectView(core_, ids(), false);
}

LoadBalancedView Client::load_balanced_view() const {
  return LoadBalancedView(core_);
}

Value Client::push_plugin(const std::filesystem::path& file) const {
  // Say what is wrong with the path itself, not what a stream reading it reports.
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw PluginLoadError(fmt::format("'{}' is a directory, not a plugin file", file.string()));
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw PluginLoadError(
        fmt::format("cannot read '{}': {}", file.string(),
                    std::filesystem::exists(file, ec) ? "permission denied" : "no such file"));
  }
  std::vector<std::uint8_t> bytes;
  try {
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception& e) {
    throw PluginLoadError(fmt::format("cannot read '{}': {}", file.string(), e.what()));
  }
  net::Header h;
  h.type = net::MsgType::PushRequest;
  h.msg_id = net::new_id();
  h.task = file.stem().string();
  h.info = Value::map({{"file", file.filename().string()}});  // named so in refusals
  // Engines load the plugin before the reply comes back: allow more than a query's time.
  auto [reply, payload] =
      core_->request(detail::kRegistration, h,
                     encode(Value(Bytes{Buffer::adopt(std::move(bytes))})), core_->timeout * 6);
  if (reply.error) {
    if (reply.error->code == ErrorCode::plugin_load) throw PluginLoadError(reply.error->message);
    rethrow(*reply.error);
  }
  return reply.info.kind() == Value::Kind::map ? reply.info["engines"] : Value();
}

Value Client::unload_plugin(const std::string& name) const {
  if (name.empty()) throw UsageError("unload: no plugin name given");
  net::Header h;
  h.type = net::MsgType::PushRequest;
  h.msg_id = net::new_id();
  h.task = name;
  h.info = Value::map({{"unload", true}});
  auto [reply, payload] = core_->request(detail::kRegistration, h, Payload{}, core_->timeout * 6);
  if (reply.error) {
    if (reply.error->code == ErrorCode::usage) throw UsageError(reply.error->message);
    rethrow(*reply.error);
  }
  return reply.info.kind() == Value::Kind::map ? reply.info["engines"] : Value();
}

Value Client::plugins() const {
  return core_->query("plugins");
}
Value Client::queue_status() const {
  return core_->query("queue_status");
}
Value Client::engines() const {
  return core_->query("engines");
}
bool Client::wait(std::optional<Duration> timeout) const {
  return core_->wait_all(timeout);
}
void Client::shutdown() const {
  (void)core_->query("shutdown");
}

// ---- the hub's task database ---------------------------------------------------------------

DbCondition DbCondition::parse(std::string_view text) {
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  std::size_t i = 0;
  while (i < text.size() && blank(text[i]))
    ++i;
  const std::size_t field_start = i;
  while (i < text.size() && !blank(text[i]) &&
         std::string_view("=!<>").find(text[i]) == std::string_view::npos)
    ++i;
  DbCondition c;
  c.field = std::string(text.substr(field_start, i - field_start));
  while (i < text.size() && blank(text[i]))
    ++i;
  const std::size_t op_start = i;
  while (i < text.size() && !blank(text[i]) &&
         (std::string_view("=!<>").find(text[i]) != std::string_view::npos ||
          std::isalpha(static_cast<unsigned char>(text[i]))))
    ++i;
  c.op = std::string(text.substr(op_start, i - op_start));
  const std::string_view rest = text.substr(i);
  if (c.field.empty() || c.op.empty() || rest.find_first_not_of(" \t") == std::string_view::npos) {
    throw UsageError(
        fmt::format("expected FIELD OP VALUE (OP: == != < <= > >= in glob), got '{}'", text));
  }
  try {
    c.value = parse_literal(rest);
  } catch (const SyntaxError&) {
    std::string word(rest.substr(rest.find_first_not_of(" \t")));
    while (!word.empty() && blank(word.back()))
      word.pop_back();
    if (word.find_first_of(" \t[],") != std::string::npos)
      throw UsageError(fmt::format("cannot read the value in '{}'", text));
    c.value = Value(word);  // a bare word: a string (task names, statuses, globs)
  }
  return c;
}

Value Client::get_result(const std::string& msg_id, std::optional<Duration> timeout) const {
  const auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                                : std::chrono::steady_clock::time_point::max();
  auto pause = Duration(5);
  // The hub records from copies of the schedulers' traffic, a moment after submission: an id
  // it does not know yet gets a short grace before it is called unknown.
  const auto grace = std::chrono::steady_clock::now() + Duration(500);
  while (true) {
    auto [reply, payload] = core_->ask("result", Value::map({{"msg_id", msg_id}}));
    const bool recorded = reply.info.kind() == Value::Kind::map;
    if (!recorded && reply.error && reply.error->code == ErrorCode::name_error &&
        std::chrono::steady_clock::now() < std::min(grace, deadline)) {
      std::this_thread::sleep_for(pause);
      continue;
    }
    if (reply.error) rethrow(*reply.error);  // the task's own error, or the hub's
    const std::string status = recorded ? reply.info["status"].as_string() : "";
    if (status != "pending" && status != "running")
      return payload.root.empty() ? Value() : decode(payload);
    if (std::chrono::steady_clock::now() + pause > deadline) {
      throw TimeoutError(fmt::format("task {} still {} after {} ms", msg_id, status,
                                     timeout ? timeout->count() : 0));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, Duration(200));
  }
}

Value Client::result_status(const std::vector<std::string>& msg_ids) const {
  return core_->query("result_status", Value::map({{"msg_ids", Value(msg_ids)}}));
}

AsyncResult Client::resubmit(const std::vector<std::string>& msg_ids) const {
  if (msg_ids.empty()) throw UsageError("resubmit needs at least one msg_id");
  auto state = detail::new_state(
      msg_ids.size() == 1 ? detail::Combine::single : detail::Combine::per_engine, msg_ids.size());
  for (const auto& id : msg_ids) {
    auto [reply, payload] = core_->ask("request", Value::map({{"msg_id", id}}));
    if (reply.error) rethrow(*reply.error);
    const Value& rec = reply.info;
    const std::string kind = rec["kind"].as_string();
    const net::MsgType type = kind == "apply"     ? net::MsgType::ApplyRequest
                              : kind == "map"     ? net::MsgType::MapRequest
                              : kind == "execute" ? net::MsgType::ExecuteRequest
                                                  : net::MsgType::NamespaceRequest;
    const bool balanced = rec["queue"].as_string() == "balanced";
    detail::send_task(*core_, state, balanced ? detail::kBalanced : detail::kDirect, type,
                      balanced ? -1 : rec["target"].as_int(), rec["task"].as_string(),
                      std::move(payload), rec["bind"].as_string(),
                      Value::map({{"resubmitted_from", id}}));
  }
  return AsyncResult(state);
}

Value Client::db_query(const std::vector<DbCondition>& where, const std::vector<std::string>& keys,
                       std::int64_t limit) const {
  Value::List conditions;
  for (const auto& c : where)
    conditions.push_back(Value::list({c.field, c.op, c.value}));
  return core_->query("db_query", Value::map({{"where", Value(std::move(conditions))},
                                              {"keys", Value(keys)},
                                              {"limit", limit}}));
}

std::vector<std::string> Client::hub_history(std::int64_t limit) const {
  return core_->query("history", Value::map({{"limit", limit}})).as<std::vector<std::string>>();
}

std::int64_t Client::purge_results(const std::vector<std::string>& msg_ids) const {
  return core_->query("purge", Value::map({{"msg_ids", Value(msg_ids)}}))["purged"].as_int();
}

std::int64_t Client::purge_results_before(std::chrono::system_clock::time_point before) const {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(before.time_since_epoch()).count();
  return core_->query("purge", Value::map({{"before", us}}))["purged"].as_int();
}

std::int64_t Client::purge_all_results() const {
  return core_->query("purge", Value::map({{"all", true}}))["purged"].as_int();
}

}  // namespace ipp
