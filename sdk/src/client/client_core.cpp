#include "client_core.hpp"

#include <cstdlib>

#include <zmq_addon.hpp>

#include "ipp/net/address.hpp"

namespace ipp::detail {

namespace {

/// The connection file `options` name (see ClientOptions::connection_file).
std::filesystem::path connection_file_of(const ClientOptions& options) {
  if (options.connection_file) return *options.connection_file;
  if (const char* env = std::getenv("IPP_CONNECTION_FILE");
      !options.profile_dir && env != nullptr && *env != '\0')
    return env;
  return net::profile_dir(options.profile_dir) / net::kClientFile;
}

}  // namespace

ClientCore::ClientCore(const ClientOptions& options)
    : info(net::read_connection_file(connection_file_of(options), "client")),
      signer(info.key, net::Signer::for_connection(info.curve.on())),
      timeout(options.timeout) {
  for (auto* s : {&sockets[0], &sockets[1], &sockets[2]})
    s->set(zmq::sockopt::linger, 0);
  // No ZeroMQ limit on the task channels: the controller never drops what a client is owed.
  for (auto* s : {&sockets[kDirect], &sockets[kBalanced]}) {
    s->set(zmq::sockopt::sndhwm, 0);
    s->set(zmq::sockopt::rcvhwm, 0);
  }
  // Nor on the hub's: a send there never waits (see send_all).
  sockets[kRegistration].set(zmq::sockopt::sndhwm, 0);
  // Large arrays go through shared memory when this host sees the controller's directory.
  if (options.shared_memory && !info.shm_dir.empty())
    shm = net::SharedMemory::open(info.shm_dir, info.shm_token);
  if (info.curve.on()) {
    // Before connecting: a refusal comes at the first handshake.
    for (int c = 0; c < 3; ++c) {
      const std::string at =
          fmt::format("inproc://ipp-client-handshakes-{}-{}", static_cast<const void*>(this), c);
      if (zmq_socket_monitor(sockets[c].handle(), at.c_str(),
                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) == 0)
        handshakes[c].connect(at);
    }
  }
  net::connect(sockets[kRegistration], info.endpoint("registration"), info.curve);
  // On the controller's host the task channels go through its Unix sockets, if it offers
  // them.
  local = net::SharedMemory::sees(info.shm_dir, info.shm_token);
  net::connect(sockets[kDirect], info.endpoint("direct", local), info.curve);
  net::connect(sockets[kBalanced], info.endpoint("balanced", local), info.curve);
  wake_pull.bind(wake_endpoint());
  wake_push.connect(wake_endpoint());
  io = std::thread([this] {
    pthread_setname_np(pthread_self(), "ipp-client-io");
    loop();
  });
}

ClientCore::~ClientCore() {
  stopping.store(true);
  {
    std::lock_guard lock(out_mutex);
    wake_push.send(zmq::message_t(1), zmq::send_flags::dontwait);
  }
  io.join();
  net::SharedMemory::release(shm);
}

std::string ClientCore::wake_endpoint() const {
  return fmt::format("inproc://ipp-client-{}", static_cast<const void*>(this));
}

void ClientCore::submit(Channel channel, net::Envelope env, std::shared_ptr<Slot> slot,
                        std::shared_ptr<ResultState> owner) {
  std::lock_guard lock(out_mutex);
  // One wake-up per batch: the I/O thread takes the whole queue when woken, so only the
  // request that finds it empty needs to wake it.
  const bool was_empty = outgoing.empty();
  outgoing.push_back({channel, std::move(env), std::move(slot), std::move(owner)});
  if (was_empty) wake_push.send(zmq::message_t(1), zmq::send_flags::dontwait);
}

namespace {
/// How long a task goes without its reply before its scheduler is asked whether it has it.
constexpr auto kProbeAfter = std::chrono::seconds(5);

net::Envelope probe_message(const std::string& session, Value::List ids) {
  net::Header h;
  h.type = net::MsgType::ControlRequest;
  h.msg_id = net::new_id();
  h.session = session;
  h.task = "probe";
  h.info = Value(std::move(ids));
  return net::make_message(h);
}
}  // namespace

void ClientCore::submit_sync(Channel channel, net::Envelope env, const std::shared_ptr<Slot>& slot,
                             const std::shared_ptr<ResultState>& owner) {
  {
    std::lock_guard lock(out_mutex);
    if (!outgoing.empty() || !pending.add_if_none(slot, owner)) {
      slot->own_connection = false;  // it goes by the I/O thread's connection after all
      const bool was_empty = outgoing.empty();
      outgoing.push_back({channel, std::move(env), slot, owner});
      if (was_empty) wake_push.send(zmq::message_t(1), zmq::send_flags::dontwait);
      return;
    }
  }
  if (handshake_failed.load()) {
    pending.fail(slot->msg_id, refused());
    return;
  }
  zmq::socket_t& sock = own_socket(channel);
  bool probed = false;  // its scheduler was asked whether it has it (see probe_tasks)
  try {
    if (!net::send(sock, signer, env, true, {shm, shm != nullptr})) {
      pending.fail(slot->msg_id, refused());
      return;
    }
  } catch (const std::exception& e) {
    pending.fail(slot->msg_id, fmt::format("the request could not be sent: {}", e.what()));
    return;
  }
  const auto tick = std::clamp(timeout / 4, Duration(10), Duration(1000));
  zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
  std::vector<net::Envelope> in;
  const auto sent = Steady::now();
  while (true) {
    if (slot_done(slot, owner)) return;
    if (!probed && Steady::now() - sent >= kProbeAfter) {
      probed = true;
      (void)net::send(sock, signer, probe_message(session, {Value(slot->msg_id)}), true);
    }
    if (net::poll(&item, 1, tick) <= 0 || !(item.revents & ZMQ_POLLIN)) continue;
    while (true) {
      in.clear();
      try {
        if (!net::recv_all(sock, signer, in, zmq::recv_flags::dontwait, shm,
                           net::Unverified::answer))
          break;
      } catch (const ProtocolError&) {
        continue;  // not from our controller: drop it
      }
      for (auto& e : in) {
        try {
          if (!answerable(e)) continue;
          // A late reply to an earlier call on this connection, failed meanwhile, finds
          // nothing pending under its id and is dropped.
          net::Header h = reply_header(e);
          if (probe_answered(h)) {
            if (slot_done(slot, owner)) return;
            continue;
          }
          if (pending.finish(std::move(h), e) && slot_done(slot, owner)) return;
        } catch (const Error&) {
          // A malformed reply cannot be matched to a request; drop it.
        }
      }
    }
  }
}

bool ClientCore::slot_done(const std::shared_ptr<Slot>& slot,
                           const std::shared_ptr<ResultState>& owner) {
  std::lock_guard lock(owner->mutex);
  return slot->done;
}

zmq::socket_t& ClientCore::own_socket(Channel channel) {
  std::lock_guard lock(own_mutex);
  auto& s = own[{std::this_thread::get_id(), channel}];
  if (!s) {
    s = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
    s->set(zmq::sockopt::linger, 0);
    s->set(zmq::sockopt::sndhwm, 0);
    s->set(zmq::sockopt::rcvhwm, 0);
    net::connect(*s, info.endpoint(channel == kDirect ? "direct" : "balanced", local), info.curve);
  }
  return *s;
}

std::pair<Reply, Payload> ClientCore::request(Channel channel, net::Header h, Payload payload,
                                              Duration wait_for) {
  auto state = std::make_shared<ResultState>();
  auto slot = std::make_shared<Slot>();
  slot->msg_id = h.msg_id;
  state->slots.push_back(slot);
  state->remaining = 1;
  submit(channel, net::make_message(h, std::move(payload)), slot, state);
  std::unique_lock lock(state->mutex);
  if (!state->cv.wait_for(lock, wait_for, [&] { return state->remaining == 0; })) {
    pending.forget(h.msg_id);
    throw ConnectionError(fmt::format("the controller at {} did not answer within {} ms",
                                      info.endpoint("registration"), wait_for.count()));
  }
  return {slot->reply, slot->payload};
}

Value ClientCore::query(const std::string& what, Value extra) {
  auto [reply, payload] = ask(what, std::move(extra));
  if (reply.error) rethrow(*reply.error);
  if (reply.info.is_null() && !payload.root.empty()) return decode(payload);
  return reply.info;
}

std::pair<Reply, Payload> ClientCore::ask(const std::string& what, Value extra) {
  net::Header h;
  h.type = net::MsgType::QueryRequest;
  h.msg_id = net::new_id();
  h.task = what;
  h.session = session;
  h.info = std::move(extra);
  return request(kRegistration, h, {}, timeout);
}

void ClientCore::loop() {
  zmq::pollitem_t items[] = {{sockets[0].handle(), 0, ZMQ_POLLIN, 0},
                             {sockets[1].handle(), 0, ZMQ_POLLIN, 0},
                             {sockets[2].handle(), 0, ZMQ_POLLIN, 0},
                             {wake_pull.handle(), 0, ZMQ_POLLIN, 0}};
  const auto tick = std::clamp(timeout / 4, Duration(10), Duration(1000));
  {
    // Learn the controller's instance id at once, to notice later if it restarts, and a
    // first sample of its clock.
    net::Header h;
    h.type = net::MsgType::QueryRequest;
    h.msg_id = clock_probe_id = net::new_id();
    clock_probe_sent_us = net::now_us();
    h.task = "ids";
    net::send(sockets[kRegistration], signer, net::make_message(h), true);
  }
  while (!stopping.load()) {
    check_handshakes();
    check_controller();
    probe_tasks();
    // Mappings kept for large arrays sent again: not past the pool's own time (looked
    // through once a second, not at every turn of a busy loop).
    if (shm != nullptr && Steady::now() - last_trim > std::chrono::seconds(1)) {
      last_trim = Steady::now();
      net::SharedMemory::trim(std::chrono::seconds(30));
    }
    if (net::poll(items, 4, tick) < 0) continue;
    if (items[3].revents & ZMQ_POLLIN) send_queued();
    receive(items);
  }
}

void ClientCore::send_queued() {
  zmq::message_t drain;
  while (wake_pull.recv(drain, zmq::recv_flags::dontwait)) {
  }
  std::deque<Outgoing> batch;
  {
    std::lock_guard lock(out_mutex);
    batch.swap(outgoing);
  }
  for (auto& o : batch)
    pending.add(o.slot, o.owner);
  send_all(batch);
}

void ClientCore::receive(zmq::pollitem_t (&items)[4]) {
  std::vector<net::Envelope> in;
  for (int c = 0; c < 3; ++c) {
    if (!(items[c].revents & ZMQ_POLLIN)) continue;
    while (true) {
      in.clear();
      try {
        if (!net::recv_all(sockets[c], signer, in, zmq::recv_flags::dontwait, shm,
                           net::Unverified::answer))
          break;
      } catch (const ProtocolError&) {
        continue;  // not from our controller: drop it
      }
      for (auto& env : in) {
        try {
          if (!answerable(env)) continue;
          complete(std::move(env));
        } catch (const Error&) {
          // A malformed reply cannot be matched to a request; drop it.
        }
      }
    }
  }
}

// Sends never wait: no socket has a ZeroMQ send limit, so a send is refused only when the
// socket has no connection left, which happens when the controller closed it at the
// handshake (it refused this client's keys). Every request waiting then fails at once.
void ClientCore::send_all(std::deque<Outgoing>& batch) {
  constexpr std::size_t kMaxBatch = 256;
  std::vector<net::Envelope> group[3];
  bool refused = handshake_failed.load();
  auto flush = [&](int c) {
    if (!group[c].empty() &&
        !net::send_batch(sockets[c], signer, {}, group[c], true, {shm, shm != nullptr}))
      refused = true;
    group[c].clear();
  };
  for (auto& o : batch) {
    if (o.channel == kRegistration) {
      if (!net::send(sockets[kRegistration], signer, o.envelope, true)) refused = true;
      continue;
    }
    group[o.channel].push_back(std::move(o.envelope));
    if (group[o.channel].size() == kMaxBatch) flush(o.channel);
  }
  flush(kDirect);
  flush(kBalanced);
  if (refused) {
    const std::string why = this->refused();
    pending.fail_all([&](const std::string&) { return why; });
  }
}

void ClientCore::check_handshakes() {
  if (!info.curve.on()) return;  // no monitors: nothing refuses a handshake
  for (auto& monitor : handshakes) {
    std::vector<zmq::message_t> event;  // the event and its value, then the endpoint
    while (zmq::recv_multipart(monitor, std::back_inserter(event), zmq::recv_flags::dontwait)) {
      handshake_failed.store(true);
      event.clear();
    }
  }
  if (handshake_failed.load() && !pending.empty()) {
    const std::string why = refused();
    pending.fail_all([&](const std::string&) { return why; });
  }
}

std::string ClientCore::refused() const {
  return fmt::format(
      "the controller at {} closed this client's connection: are the keys in its connection "
      "file this cluster's?",
      info.endpoint("registration"));
}

void ClientCore::check_controller() {
  if (pending.empty()) {
    probe_id.clear();
    return;
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
    probe_sent_us = net::now_us();
    (void)net::send(sockets[kRegistration], signer, net::make_message(h), true);
    return;
  }
  if (now - probe_sent < timeout) return;
  const std::string why = fmt::format("the controller at {} stopped answering (nothing for {} ms)",
                                      info.endpoint("registration"), timeout.count());
  pending.fail_all([&](const std::string&) { return why; });
  probe_id.clear();
}

void ClientCore::controller_restarted(std::string_view except) {
  report_lost();
  pending.fail_all(
      [](const std::string& id) {
        return fmt::format(
            "the controller restarted while this request was in flight; if its engine "
            "finishes it, the result will be in the task database: get_result(\"{}\")",
            id);
      },
      except);
}

void ClientCore::report_lost() {
  Value::List tasks = pending.tasks_in_flight();
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

// A reply whose signature does not verify fails the request it names (its ids are all that is
// read of it), rather than leave it waiting; anything else of that kind is dropped.
bool ClientCore::answerable(const net::Envelope& env) {
  return env.verified || net::decode_header(env.parts.at(0)).type == net::MsgType::TaskReply;
}

net::Header ClientCore::reply_header(net::Envelope& env) {
  net::Header h = net::decode_header(env.parts.at(0));
  if (!env.unreadable.empty()) {
    h.error = make_error_record(ErrorCode::protocol,
                                "the reply could not be read: " + env.unreadable, h.task, h.engine);
    env.parts.resize(1);
  }
  return h;
}

void ClientCore::complete(net::Envelope env) {
  net::Header h = reply_header(env);
  // Hub replies (and schedulers' replies to controls) carry the controller's instance id: a
  // new one means it restarted.
  if ((h.type == net::MsgType::QueryReply || h.type == net::MsgType::ControlReply) &&
      !h.session.empty()) {
    if (controller_instance.empty()) {
      controller_instance = h.session;
    } else if (h.session != controller_instance) {
      controller_instance = h.session;
      controller_restarted(h.parent_id);
    }
  }
  if (!probe_id.empty() && h.parent_id == probe_id) {
    clock.sample(probe_sent_us, h.completed, net::now_us());
    probe_id.clear();
    return;
  }
  if (!clock_probe_id.empty() && h.parent_id == clock_probe_id) {
    clock.sample(clock_probe_sent_us, h.completed, net::now_us());
    clock_probe_id.clear();
    return;
  }
  if (probe_answered(h)) return;
  (void)pending.finish(std::move(h), env);
}

void ClientCore::probe_tasks() {
  const auto now = Steady::now();
  if (now - last_task_probe < std::chrono::seconds(1)) return;
  last_task_probe = now;
  const std::int64_t before =
      net::now_us() - std::chrono::duration_cast<std::chrono::microseconds>(kProbeAfter).count();
  Value::List ids[3];  // by channel
  for (auto& [channel, id] : pending.silent(before, 4096))
    ids[channel].emplace_back(std::move(id));
  for (const Channel c : {kDirect, kBalanced}) {
    if (!ids[c].empty())
      (void)net::send(sockets[c], signer, probe_message(session, std::move(ids[c])), true);
  }
}

bool ClientCore::probe_answered(const net::Header& h) {
  if (h.type != net::MsgType::ControlReply || h.info.kind() != Value::Kind::map ||
      !h.info.as_map().contains("unknown"))
    return false;
  for (const auto& id : h.info["unknown"].as_list()) {
    if (id.kind() != Value::Kind::string) continue;
    pending.fail(id.as_string(),
                 fmt::format("the controller never received request {} as it was sent: it was "
                             "lost or changed on the way, and no reply will come",
                             id.as_string()),
                 ErrorCode::protocol);
  }
  return true;
}

std::shared_ptr<Slot> send_task(ClientCore& core, const std::shared_ptr<ResultState>& state,
                                Channel channel, net::MsgType type, std::int64_t target,
                                const std::string& task, Payload payload, const std::string& bind,
                                Value info, const TaskFlags& flags, bool sync) {
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
  slot->type = type;
  slot->target = target;
  slot->submitted = h.submitted;
  slot->channel = channel;
  slot->own_connection = sync;  // taken back by submit_sync when it queues it after all
  state->slots.push_back(slot);
  if (state->core.expired()) state->core = core.self;
  if (sync)
    core.submit_sync(channel, net::make_message(h, std::move(payload)), slot, state);
  else
    core.submit(channel, net::make_message(h, std::move(payload)), slot, state);
  return slot;
}

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

}  // namespace ipp::detail
