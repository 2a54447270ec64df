#include "client_core.hpp"

namespace ipp::detail {

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
