#include "balanced_scheduler.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/net/poll.hpp"

namespace ipp::ctrl {

BalancedScheduler::BalancedScheduler(const RelayWiring& wiring, zmq::socket_t& clients,
                                     zmq::socket_t& workers, sched::BalancerOptions options)
    : clients_(clients),
      workers_(workers),
      relay_(wiring, clients, workers, "load-balanced scheduler"),
      balancer_(options) {}

void BalancedScheduler::run(const std::atomic<bool>& stopping) {
  run_turns(stopping, "load-balanced scheduler", [this] { turn(std::chrono::milliseconds(100)); });
}

void BalancedScheduler::turn(std::chrono::milliseconds wait) {
  if (auto next = balancer_.next_deadline()) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - sched::Clock::now());
    wait = std::clamp(left, std::chrono::milliseconds(0), wait);
  }
  zmq::pollitem_t items[] = {{clients_.handle(), 0, ZMQ_POLLIN, 0},
                             {workers_.handle(), 0, ZMQ_POLLIN, 0},
                             {relay_.events().handle(), 0, ZMQ_POLLIN, 0}};
  // A signal interrupting the poll is "nothing happened".
  const bool any = net::poll(items, 3, wait) >= 0;
  balancer_.expire(sched::Clock::now());
  if (any) {
    relay_.take(
        items, [this](const EngineEvent& e) { on_event(e); },
        [this](net::Envelope& env, const net::Header& h) { on_request(env, h); },
        [this](net::Envelope& env, net::Header& h) { on_reply(env, h); });
  }
  pump();
  flush();
}

// Queues what the balancer decided: tasks to engines, failures to their clients.
void BalancedScheduler::pump() {
  balancer_.schedule();
  for (;;) {
    auto dispatches = balancer_.take_dispatches();
    auto failures = balancer_.take_failures();
    if (dispatches.empty() && failures.empty()) break;
    for (auto& f : failures)
      relay_.reply_error(f.carried.client, f.msg_id, std::move(f.error));
    for (const auto& d : dispatches) {
      sched::Carried* c = balancer_.carried(d.msg_id);
      if (c == nullptr) continue;
      relay_.to_engine(d.engine, d.msg_id, c->request.unpack());
      if (!balancer_.may_retry(d.msg_id)) c->request = {};
      relay_.feed_dispatch(d.msg_id, d.engine);
    }
    balancer_.schedule();
  }
}

// Ends a turn: sends what it queued. A task whose engine vanished a moment ago (its down
// event is on the way) is retried or fails at once.
void BalancedScheduler::flush() {
  for (int round = 0; round < 4; ++round) {
    const auto unreachable = relay_.flush();
    if (unreachable.empty()) return;
    for (const auto& [engine, msg_id] : unreachable) {
      sched::Carried done;
      if (balancer_.finished(msg_id, false, sched::Clock::now(), std::nullopt, &done) !=
          sched::Balancer::Finish::done)
        continue;
      relay_.reply_error(
          done.client, msg_id,
          make_error_record(ErrorCode::engine, fmt::format("engine {} is unreachable", engine),
                            std::string(), engine));
    }
    pump();
  }
}

void BalancedScheduler::on_event(const EngineEvent& event) {
  const std::int64_t id = event.engine;
  switch (event.kind) {
    case EngineEvent::Kind::up:
      if (gate_.up(id, event.slots)) balancer_.engine_up(id, gate_.slots(id));
      break;
    case EngineEvent::Kind::drain:
      gate_.drain(id);
      balancer_.engine_drain(id);
      break;
    case EngineEvent::Kind::down:
      gate_.down(id);
      balancer_.engine_down(id, event.reason, sched::Clock::now());
      break;
    case EngineEvent::Kind::tasks:
      balancer_.engine_tasks(id, event.names, event.slots != 0);
      break;
    case EngineEvent::Kind::known:
    case EngineEvent::Kind::silent:
      break;
  }
}

void BalancedScheduler::on_control(std::uint32_t client, const net::Header& h) {
  if (h.task == "probe") {
    relay_.probe(client, h, [this](net::TaskId id) { return balancer_.knows(id); });
    return;
  }
  relay_.control(client, h, [this](net::TaskId id) {
    if (balancer_.abort(id)) return Relay::ControlTarget{true, std::nullopt};
    return Relay::ControlTarget{false, balancer_.engine_of(id)};
  });
}

void BalancedScheduler::on_request(net::Envelope& env, const net::Header& h) {
  const auto admitted =
      relay_.admit(env, h, [this](std::uint32_t c, const net::Header& r) { on_control(c, r); });
  if (!admitted) return;
  const auto [client, msg_id] = *admitted;
  net::PackedMessage request(env);
  relay_.feed_submit(true, request);
  std::optional<sched::Clock::duration> timeout;
  if (h.timeout_ms > 0) timeout = std::chrono::milliseconds(h.timeout_ms);
  // A duplicate msg_id fails (the task that has it goes on) with what it carried.
  balancer_.submit(msg_id, h.task, h.flags, timeout, sched::Clock::now(),
                   h.type == net::MsgType::MapRequest, {std::move(request), client});
}

void BalancedScheduler::on_reply(net::Envelope& env, net::Header& h) {
  relay_.from_engine(env, h);
  if (h.type == net::MsgType::Ping) {
    if (gate_.hello(h.engine)) balancer_.engine_up(h.engine, gate_.slots(h.engine));
    return;
  }
  if (h.type == net::MsgType::SlotFreed) {  // a task past its time limit returned at last
    balancer_.release(h.engine);
    return;
  }
  const auto parent = net::TaskId::parse(h.parent_id);
  if (!parent) {
    spdlog::warn("load-balanced scheduler: a reply from engine {} names no task", h.engine);
    return;
  }
  std::optional<std::chrono::microseconds> ran;
  if (h.started > 0 && h.completed >= h.started)
    ran = std::chrono::microseconds(h.completed - h.started);
  sched::Carried done;
  const auto verdict = balancer_.finished(*parent, !h.error, sched::Clock::now(), ran, &done);
  // Past its time limit and answered, the task still runs there (until SlotFreed).
  if (h.info.kind() == Value::Kind::map && h.info.as_map().count("held") != 0)
    balancer_.hold(h.engine);
  if (verdict == sched::Balancer::Finish::retry) {
    spdlog::info("task {} failed on engine {}; retrying elsewhere", h.parent_id, h.engine);
    return;
  }
  relay_.feed_reply(h.engine, env, verdict == sched::Balancer::Finish::stale);
  if (verdict == sched::Balancer::Finish::stale) return;
  relay_.to_client(done.client, std::move(env));  // back to its client
}

}  // namespace ipp::ctrl
