#include "direct_scheduler.hpp"

#include <algorithm>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/net/poll.hpp"

namespace ipp::ctrl {

DirectScheduler::DirectScheduler(const RelayWiring& wiring, zmq::socket_t& clients,
                                 zmq::socket_t& workers)
    : clients_(clients), workers_(workers), relay_(wiring, clients, workers, "direct scheduler") {}

void DirectScheduler::run(const std::atomic<bool>& stopping) {
  run_turns(stopping, "direct scheduler", [this] { turn(std::chrono::milliseconds(100)); });
}

void DirectScheduler::turn(std::chrono::milliseconds wait) {
  zmq::pollitem_t items[] = {{clients_.handle(), 0, ZMQ_POLLIN, 0},
                             {workers_.handle(), 0, ZMQ_POLLIN, 0},
                             {relay_.events().handle(), 0, ZMQ_POLLIN, 0}};
  // A signal interrupting the poll is "nothing happened": the caller re-checks its stop flag.
  if (net::poll(items, 3, wait) < 0) return;
  relay_.take(
      items, [this](const EngineEvent& e) { on_event(e); },
      [this](net::Envelope& env, const net::Header& h) { on_request(env, h); },
      [this](net::Envelope& env, net::Header& h) { on_reply(env, h); });
  flush();
}

void DirectScheduler::dispatch(net::TaskId msg_id, Running task, net::Envelope request,
                               std::int64_t engine) {
  task.engine = engine;
  relay_.to_engine(engine, msg_id, std::move(request));
  engines_[engine].outstanding.insert(msg_id);
  relay_.feed_dispatch(msg_id, engine);
  running_.emplace(msg_id, std::move(task));
}

// Tasks held for an engine were accepted before any drain: they go once it is reachable.
void DirectScheduler::flush_held(std::int64_t id) {
  auto it = engines_.find(id);
  if (it == engines_.end() || !gate_.reachable(id)) return;
  auto held = std::move(it->second.held);
  it->second.held.clear();
  for (auto& h : held)
    dispatch(h.msg_id, std::move(h.running), std::move(h.request), id);
}

// Ends a turn: sends what it queued; tasks whose engine vanished fail at once.
void DirectScheduler::flush() {
  for (const auto& [engine, msg_id] : relay_.flush()) {
    auto t = running_.find(msg_id);
    if (t == running_.end()) continue;
    if (auto e = engines_.find(engine); e != engines_.end()) e->second.outstanding.erase(msg_id);
    relay_.reply_error(
        t->second.client, msg_id,
        make_error_record(ErrorCode::engine, fmt::format("engine {} is unreachable", engine),
                          t->second.task, engine));
    running_.erase(t);
  }
  (void)relay_.flush();  // those error replies
}

void DirectScheduler::on_event(const EngineEvent& event) {
  const std::int64_t id = event.engine;
  switch (event.kind) {
    case EngineEvent::Kind::up:
      if (gate_.up(id, event.slots)) flush_held(id);
      break;
    case EngineEvent::Kind::drain:
      gate_.drain(id);
      break;
    case EngineEvent::Kind::down:
      gate_.down(id);
      engine_down(id, event.reason);
      break;
    case EngineEvent::Kind::known:
    case EngineEvent::Kind::silent:
    case EngineEvent::Kind::tasks:
      break;
  }
}

void DirectScheduler::engine_down(std::int64_t id, const std::string& reason) {
  auto it = engines_.find(id);
  if (it == engines_.end()) return;
  const std::string why = reason.empty() ? std::string() : " (" + reason + ")";
  for (auto& held : it->second.held) {
    relay_.reply_error(held.running.client, held.msg_id,
                       make_error_record(ErrorCode::engine,
                                         fmt::format("engine {} died before running task '{}'{}",
                                                     id, held.running.task, why),
                                         held.running.task, id));
  }
  for (const auto& m : it->second.outstanding) {
    auto t = running_.find(m);
    if (t == running_.end()) continue;
    relay_.reply_error(t->second.client, m,
                       make_error_record(ErrorCode::engine,
                                         fmt::format("engine {} died while running task '{}'{}", id,
                                                     t->second.task, why),
                                         t->second.task, id));
    running_.erase(t);
  }
  engines_.erase(it);
}

void DirectScheduler::on_control(std::uint32_t client, const net::Header& h) {
  if (h.task == "probe") {
    relay_.probe(client, h, [this](net::TaskId id) {
      if (running_.contains(id)) return true;
      return std::any_of(engines_.begin(), engines_.end(), [&](const auto& e) {
        return std::any_of(e.second.held.begin(), e.second.held.end(),
                           [&](const Held& t) { return t.msg_id == id; });
      });
    });
    return;
  }
  relay_.control(client, h, [this](net::TaskId id) {
    if (auto t = running_.find(id); t != running_.end())
      return Relay::ControlTarget{false, t->second.engine};
    for (auto& [eid, e] : engines_) {
      auto held =
          std::find_if(e.held.begin(), e.held.end(), [&](const Held& t) { return t.msg_id == id; });
      if (held == e.held.end()) continue;
      relay_.reply_error(
          held->running.client, id,
          make_error_record(ErrorCode::aborted,
                            fmt::format("task '{}' was aborted before it ran", held->running.task),
                            held->running.task, eid));
      e.held.erase(held);
      return Relay::ControlTarget{true, std::nullopt};
    }
    return Relay::ControlTarget{};
  });
}

void DirectScheduler::on_request(net::Envelope& env, const net::Header& h) {
  const auto admitted =
      relay_.admit(env, h, [this](std::uint32_t c, const net::Header& r) { on_control(c, r); });
  if (!admitted) return;
  const auto [client, msg_id] = *admitted;
  relay_.feed_submit(false, net::PackedMessage(env));
  Running task{h.task, -1, client};
  env.route.clear();
  auto verdict = gate_.check(h.target);
  if (verdict == EngineGate::Verdict::unknown) {
    // The hub announces an engine before it answers the query that names it, but the event
    // may still wait in this thread's queue: read it before saying the engine is unknown.
    while (auto event = EngineEvent::receive(relay_.events()))
      on_event(*event);
    verdict = gate_.check(h.target);
  }
  switch (verdict) {
    case EngineGate::Verdict::usable:
      dispatch(msg_id, std::move(task), std::move(env), h.target);
      break;
    case EngineGate::Verdict::not_connected:  // held until its hello
      engines_[h.target].held.push_back({msg_id, std::move(task), std::move(env)});
      break;
    case EngineGate::Verdict::draining:
      relay_.reply_error(
          client, msg_id,
          make_error_record(
              ErrorCode::engine,
              fmt::format("engine {} is being removed and takes no new tasks", h.target), h.task,
              h.target));
      break;
    case EngineGate::Verdict::unknown:
      relay_.reply_error(client, msg_id,
                         make_error_record(ErrorCode::engine,
                                           fmt::format("no engine {} is registered (engines: [{}])",
                                                       h.target, gate_.registered_ids()),
                                           h.task, h.target));
      break;
  }
}

void DirectScheduler::on_reply(net::Envelope& env, net::Header& h) {
  relay_.from_engine(env, h);
  if (h.type == net::MsgType::Ping) {
    if (gate_.hello(h.engine)) flush_held(h.engine);
    return;
  }
  const auto parent = net::TaskId::parse(h.parent_id);
  auto t = parent ? running_.find(*parent) : running_.end();
  if (t == running_.end()) {
    // Its client was told the engine died, or it predates a controller restart: the hub
    // records it only where no outcome was given (see HubRecorder::on_reply).
    relay_.feed_reply(h.engine, env, /*late=*/true);
    return;
  }
  const std::int64_t engine = t->second.engine;
  if (auto rec = engines_.find(engine); rec != engines_.end())
    rec->second.outstanding.erase(*parent);
  relay_.feed_reply(engine, env);
  relay_.to_client(t->second.client, std::move(env));
  running_.erase(t);
}

}  // namespace ipp::ctrl
