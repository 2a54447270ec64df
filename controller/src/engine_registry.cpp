#include "engine_registry.hpp"

#include <algorithm>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "ipp/net/message.hpp"
#include "replies.hpp"

namespace ipp::ctrl {

void EngineRegistry::reply(net::Header r, std::vector<zmq::message_t> route) {
  net::Envelope out = net::make_message(r);
  out.route = std::move(route);
  messages_.push_back(std::move(out));
}

EngineRegistry::Engine* EngineRegistry::register_engine(const net::Envelope& env,
                                                        const net::Header& h) {
  Engine e;
  e.route = net::copy_route(env.route);
  e.threads = std::max(1, h.threads);
  if (h.info.kind() == Value::Kind::map) {
    const auto& info = h.info.as_map();
    if (auto pid = info.find("pid");
        pid != info.end() && pid->second.kind() == Value::Kind::integer)
      e.pid = pid->second.as_int();
    if (auto host = info.find("host");
        host != info.end() && host->second.kind() == Value::Kind::string)
      e.host = host->second.as_string();
  }
  if (e.pid != 0 && removed_.count({e.host, e.pid}) != 0) {
    // A removed engine that missed its Stop asks to come back: tell it again.
    messages_.push_back(stop_message(std::move(e.route)));
    return nullptr;
  }
  net::Header r = reply_header(net::MsgType::RegisterReply, h.msg_id);
  // This controller's instance: an engine registering again learns whether the controller
  // that had it is the one answering (it dropped the engine) or a restarted one.
  r.session = session_;
  // Engines ping four times per period, whatever their own command line says. The time here
  // is a first sample of the controller's clock for engines on other hosts (heartbeats give
  // more): they stamp their tasks in it.
  r.info = Value::map(
      {{"heartbeat_ms", static_cast<std::int64_t>(heartbeat_.count())}, {"now_us", net::now_us()}});
  // An engine that lost its controller (or was dropped) asks for its old id back.
  const std::int64_t wanted = h.engine;
  auto existing = wanted >= 0 ? engines_.find(wanted) : engines_.end();
  if (existing != engines_.end() &&
      (existing->second.pid != e.pid || existing->second.host != e.host)) {
    r.error = make_error_record(ErrorCode::usage,
                                fmt::format("engine id {} belongs to another process", wanted));
    reply(std::move(r), std::move(e.route));
    return nullptr;
  }
  if (existing != engines_.end()) {  // the same engine again: new route, same state
    existing->second.route = std::move(e.route);
    r.engine = wanted;
    reply(std::move(r), net::copy_route(existing->second.route));
    events_.push_back(EngineEvent::known(wanted));
    if (existing->second.ready)
      events_.push_back(EngineEvent::up(wanted, existing->second.threads));
    return nullptr;
  }
  e.id = wanted >= 0 ? wanted : next_id_;
  next_id_ = std::max(next_id_, e.id + 1);
  r.engine = e.id;
  reply(std::move(r), net::copy_route(e.route));
  events_.push_back(EngineEvent::known(e.id));
  auto& rec = engines_[e.id] = std::move(e);
  return &rec;
}

void EngineRegistry::mark_ready(Engine& e) {
  if (e.ready || !e.awaiting.empty()) return;
  e.ready = true;
  spdlog::info("engine {} ready ({} threads, pid {}{})", e.id, e.threads, e.pid,
               e.host.empty() ? std::string() : " on " + e.host);
  events_.push_back(EngineEvent::up(e.id, e.threads));
}

void EngineRegistry::acknowledged(std::int64_t id, const std::string& push_id,
                                  const std::optional<ErrorRecord>& error) {
  auto it = engines_.find(id);
  if (it == engines_.end() || it->second.awaiting.erase(push_id) == 0) return;
  if (error) spdlog::warn("engine {} could not load a plugin: {}", id, error->message);
  mark_ready(it->second);
}

bool EngineRegistry::drop(std::int64_t id, const std::string& why) {
  auto it = engines_.find(id);
  if (it == engines_.end()) return false;
  spdlog::warn("engine {} (pid {}) {}; unregistered", id, it->second.pid, why);
  const std::int64_t pid = it->second.pid;
  engines_.erase(it);
  events_.push_back(EngineEvent::down(id, why));
  for (auto& rm : removals_) {
    if (rm.waiting.erase(id) != 0)
      rm.removed.push_back(Value::map({{"id", id}, {"pid", pid}, {"reason", why}}));
  }
  finish_removals();
  return true;
}

void EngineRegistry::apply(const EngineLoadChange& change) {
  auto e = engines_.find(change.engine);
  if (e == engines_.end()) return;
  if (change.kind == EngineLoadChange::Kind::dispatched) {
    ++e->second.submitted;
    e->second.running.insert(change.task);
  } else if (e->second.running.erase(change.task) != 0) {
    ++e->second.completed;
  }
}

void EngineRegistry::start_removal(std::vector<zmq::message_t> client,
                                   const std::string& request_id,
                                   const std::vector<std::int64_t>& ids, Clock::time_point now) {
  std::vector<std::string> unknown;
  for (const auto id : ids) {
    if (!engines_.contains(id)) unknown.push_back(std::to_string(id));
  }
  if (ids.empty()) throw UsageError("remove_engines needs engine ids");
  if (!unknown.empty()) {
    std::vector<std::string> known;
    for (const auto& [id, e] : engines_)
      known.push_back(std::to_string(id));
    throw UsageError(fmt::format("no engine {} is registered (engines: [{}])",
                                 fmt::join(unknown, ", "), fmt::join(known, ", ")));
  }
  Removal rm;
  rm.client = std::move(client);
  rm.request_id = request_id;
  for (const auto id : ids) {
    Engine& e = engines_.at(id);
    rm.waiting.insert(id);
    if (e.draining) continue;
    e.draining = true;
    e.drain_since = now;
    spdlog::info("engine {} draining ({} task(s) in flight)", id, e.running.size());
    events_.push_back(EngineEvent::drain(id));
  }
  removals_.push_back(std::move(rm));
}

bool EngineRegistry::removal_due(Clock::time_point now) const {
  if (removals_.empty()) return false;
  return std::any_of(engines_.begin(), engines_.end(), [&](const auto& entry) {
    return entry.second.draining && now - entry.second.drain_since >= kDrainGrace;
  });
}

std::vector<std::int64_t> EngineRegistry::stop_drained(Clock::time_point now) {
  std::vector<std::int64_t> done;
  for (const auto& [id, e] : engines_) {
    if (e.draining && now - e.drain_since >= kDrainGrace && e.running.empty()) done.push_back(id);
  }
  for (const auto id : done) {
    Engine& e = engines_.at(id);
    messages_.push_back(stop_message(net::copy_route(e.route)));
    removed_.insert({e.host, e.pid});
    drop(id, "was removed");
  }
  return done;
}

std::vector<net::Envelope> EngineRegistry::stop_all() const {
  std::vector<net::Envelope> out;
  for (const auto& [id, e] : engines_)
    out.push_back(stop_message(net::copy_route(e.route)));
  return out;
}

void EngineRegistry::finish_removals() {
  for (auto it = removals_.begin(); it != removals_.end();) {
    if (!it->waiting.empty()) {
      ++it;
      continue;
    }
    net::Header r = reply_header(net::MsgType::QueryReply, it->request_id);
    r.session = session_;
    r.info = Value::map({{"removed", Value(std::move(it->removed))}});
    reply(std::move(r), std::move(it->client));
    it = removals_.erase(it);
  }
}

const EngineRegistry::Engine* EngineRegistry::find(std::int64_t id) const {
  auto it = engines_.find(id);
  return it == engines_.end() ? nullptr : &it->second;
}

std::int64_t EngineRegistry::by_pid(std::int64_t pid, const std::string& host) const {
  std::int64_t id = -1;
  for (const auto& [eid, e] : engines_) {
    if (e.pid == pid && (host.empty() || e.host == host)) id = eid;
  }
  return id;
}

Value EngineRegistry::ready_ids() const {
  Value::List ids;
  for (const auto& [id, e] : engines_) {
    if (e.ready) ids.emplace_back(id);
  }
  return Value(std::move(ids));
}

Value EngineRegistry::describe() const {
  Value::List list;
  for (const auto& [id, e] : engines_) {
    list.push_back(Value::map({{"id", id},
                               {"threads", e.threads},
                               {"pid", e.pid},
                               {"host", e.host},
                               {"ready", e.ready}}));
  }
  return Value(std::move(list));
}

Value EngineRegistry::queue_status() const {
  Value::Map status;
  for (const auto& [id, e] : engines_) {
    status[std::to_string(id)] = Value::map(
        {{"queue", static_cast<std::int64_t>(e.submitted - std::min(e.submitted, e.completed))},
         {"completed", static_cast<std::int64_t>(e.completed)}});
  }
  return Value(std::move(status));
}

}  // namespace ipp::ctrl
