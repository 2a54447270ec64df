#include "ipp/controller/controller.hpp"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "balanced_scheduler.hpp"
#include "balancer.hpp"
#include "direct_scheduler.hpp"
#include "endpoints.hpp"
#include "engine_registry.hpp"
#include "events.hpp"
#include "heart_monitor.hpp"
#include "hub_queries.hpp"
#include "hub_recorder.hpp"
#include "ipp/codec.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"
#include "ipp/net/poll.hpp"
#include "ipp/net/shm.hpp"
#include "ipp/runtime/plugin_loader.hpp"
#include "ipp/runtime/plugin_store.hpp"
#include "plugin_distributor.hpp"
#include "relay.hpp"
#include "replies.hpp"
#include "task_db.hpp"
#include "traffic.hpp"

namespace ipp {

namespace {

using Steady = std::chrono::steady_clock;
using ctrl::EngineEvent;
using ctrl::Traffic;
using ctrl::TrafficFeed;
using net::TaskId;
constexpr const char* kEvents = "inproc://ipp-events";    // hub -> everyone: engine up / down
constexpr const char* kHubIn = "inproc://ipp-hub-in";     // heartbeat -> hub: engine silent
constexpr const char* kMonitor = "inproc://ipp-monitor";  // schedulers -> hub: traffic to take

/// zmq::poll that treats a signal as "nothing happened" (the loop re-checks its stop flag).
bool poll_once(zmq::pollitem_t* items, std::size_t n, std::chrono::milliseconds timeout) {
  return net::poll(items, n, timeout) >= 0;
}

}  // namespace

struct Controller::State {
  ControllerOptions options;
  const std::string instance = net::new_id();  // tells clients when the controller restarted
  std::unique_ptr<hub::TaskDb> db;             // null with --db none; used by the hub thread only
  zmq::context_t ctx;
  std::unique_ptr<net::Signer> signer;
  std::atomic<bool> stopping{false};
  TrafficFeed traffic;            // schedulers -> hub
  std::filesystem::path shm_dir;  // the cluster's shared memory (empty: none)
  const net::SharedMemory* shm = nullptr;
  std::vector<std::thread> threads;
  // Sockets are made and bound in start(), then each is used by one thread only.
  zmq::socket_t registration{ctx, zmq::socket_type::router};
  // The heartbeat has a ZeroMQ context (an I/O thread) of its own: a gigabyte message moving
  // through the task channels does not delay the pings.
  zmq::context_t heart_ctx;
  zmq::socket_t heartbeat{heart_ctx, zmq::socket_type::router};
  zmq::socket_t client_direct{ctx, zmq::socket_type::router};
  zmq::socket_t engine_direct{ctx, zmq::socket_type::router};
  zmq::socket_t client_balanced{ctx, zmq::socket_type::router};
  zmq::socket_t engine_balanced{ctx, zmq::socket_type::router};

  void hub();
  void heart();
  void direct_scheduler();
  void balanced_scheduler();
  [[nodiscard]] const net::Signer& sign() const { return *signer; }
  [[nodiscard]] ctrl::RelayWiring wiring();
};

// ---- hub -----------------------------------------------------------------------------------

void Controller::State::hub() {
  if (options.hub_nice != 0)
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), options.hub_nice);
  zmq::socket_t events(ctx, zmq::socket_type::pub);
  events.bind(kEvents);
  zmq::socket_t hub_in(ctx, zmq::socket_type::pull);
  hub_in.bind(kHubIn);
  zmq::socket_t monitor(ctx, zmq::socket_type::pull);
  monitor.set(zmq::sockopt::rcvhwm, 0);
  monitor.bind(kMonitor);
  ctrl::PluginDistributor plugins(options.profile_dir / "plugins", options.restore);
  auto send_all = [&](std::vector<net::Envelope> messages) {
    for (const auto& m : messages)
      net::send(registration, sign(), m);
  };

  ctrl::EngineRegistry registry(instance, options.heartbeat);
  // Sends what the registry queued: events first, then messages.
  auto send_registry = [&] {
    for (const auto& e : registry.take_events())
      e.send(events);
    send_all(registry.take_messages());
  };
  // Unregisters an engine at once; `why` completes "engine 3 ...": "was removed",
  // "stopped answering heartbeats", "was killed by signal 11 (SIGSEGV)".
  auto drop_engine = [&](std::int64_t id, const std::string& why) {
    if (registry.drop(id, why)) send_all(plugins.engine_gone(id, why));
    send_registry();
  };
  auto plugin_of = [&](const std::string& task) { return plugins.plugin_of(task); };
  ctrl::HubRecorder recorder(
      db.get(), {.max_payload = options.db_max_payload, .delay = options.hub_delay}, plugin_of);
  if (options.restore && db)
    spdlog::info("restore: {} task(s) were in flight", recorder.fail_unfinished());
  auto flush = [&] { recorder.flush(); };

  // Records the traffic copies handed over so far, at most `limit` of them and for at most
  // `budget`; the engines' counts follow. Returns true when it stopped with more waiting.
  std::vector<ctrl::EngineLoadChange> loads;
  auto drain_traffic = [&](std::size_t limit, std::chrono::milliseconds budget) {
    zmq::message_t wake;
    while (monitor.recv(wake, zmq::recv_flags::dontwait)) {
    }
    recorder.take(traffic);
    loads.clear();
    const bool more = recorder.record_some(limit, budget, loads);
    for (const auto& change : loads)
      registry.apply(change);
    return more;
  };
  // Draining engines whose last task has been answered are told to stop and unregistered.
  // The schedulers learn of a drain from the event asynchronously, so a task they dispatched
  // just before reading it is awaited too: the traffic copies are recorded first.
  auto stop_drained = [&] {
    const auto now = Steady::now();
    if (!registry.removal_due(now)) return;
    drain_traffic(SIZE_MAX, std::chrono::hours(1));
    for (const auto id : registry.stop_drained(now))
      send_all(plugins.engine_gone(id, "was removed"));
    send_registry();
  };
  ctrl::HubQueries queries({.db = db.get(),
                            .registry = registry,
                            .plugins = plugins,
                            .recorder = recorder,
                            .catch_up = [&] { drain_traffic(SIZE_MAX, std::chrono::hours(1)); },
                            .drop_engine = drop_engine,
                            .shutdown = [&] { stopping.store(true); },
                            .db_max_payload = options.db_max_payload,
                            .session = instance});

  // Traffic copies are taken in batches, kDrainAfter after the first of a batch arrived,
  // not as each arrives: under load the hub wakes tens of times a second instead of three
  // times per task, and its records are written in bigger transactions. Queries that read
  // the records take in everything sent before them first, so none answers from stale data.
  constexpr auto kDrainAfter = std::chrono::milliseconds(20);
  // Shared-memory parts of messages that were lost (a peer died with them in flight) are
  // removed after kPartsInFlight; every kSweepEvery the directory is looked through.
  constexpr auto kSweepEvery = std::chrono::seconds(10);
  constexpr auto kPartsInFlight = std::chrono::seconds(600);
  auto last_sweep = Steady::now();
  constexpr auto kNoDrain = Steady::time_point::max();  // wake on the next copy instead
  auto drain_at = kNoDrain;
  zmq::pollitem_t items[] = {{registration.handle(), 0, ZMQ_POLLIN, 0},
                             {hub_in.handle(), 0, ZMQ_POLLIN, 0},
                             {monitor.handle(), 0, ZMQ_POLLIN, 0}};
  while (!stopping.load()) {
    auto wait = std::chrono::milliseconds(100);
    const auto now = Steady::now();
    auto until = [&](Steady::time_point t) {
      wait = std::min(wait, std::max(std::chrono::milliseconds(0),
                                     std::chrono::ceil<std::chrono::milliseconds>(t - now)));
    };
    if (drain_at != kNoDrain) until(drain_at);
    if (auto at = recorder.next_flush()) until(*at);
    if (!poll_once(items, drain_at != kNoDrain ? 2 : 3, wait)) continue;
    if (drain_at == kNoDrain && (items[2].revents & ZMQ_POLLIN))
      drain_at = Steady::now() + kDrainAfter;
    items[2].revents = 0;
    if (items[0].revents & ZMQ_POLLIN) {
      try {
        auto env = net::recv(registration, sign(), zmq::recv_flags::dontwait);
        if (!env) continue;
        const net::Header h = net::decode_header(env->parts.at(0));
        switch (h.type) {
          case net::MsgType::RegisterRequest: {
            if (auto* e = registry.register_engine(*env, h)) {
              spdlog::info("engine {} registering (pid {}), sending {} plugin(s)", e->id, e->pid,
                           plugins.size());
              send_registry();  // its id first, then the plugins
              send_all(plugins.replay_to({e->id, &e->route}, e->awaiting));
              registry.mark_ready(*e);
            }
            send_registry();
            break;
          }
          case net::MsgType::PluginLoaded: {
            if (registry.find(h.engine) == nullptr) break;
            registry.acknowledged(h.engine, h.parent_id, h.error);
            send_registry();
            send_all(plugins.loaded(h));
            break;
          }
          case net::MsgType::QueryRequest:
            if (auto reply = queries.answer(*env, h)) net::send(registration, sign(), *reply);
            send_registry();  // what a query changed (a removal's drains, a dropped engine)
            break;
          case net::MsgType::PushRequest: {
            std::vector<ctrl::PluginDistributor::Target> targets;
            for (const auto& [id, e] : registry.engines())
              targets.push_back({id, &e.route});
            send_all(plugins.push(*env, h, targets));
            break;
          }
          default:
            spdlog::warn("hub: unexpected {} on the registration channel", net::to_string(h.type));
        }
      } catch (const ProtocolError& e) {
        spdlog::warn("hub dropped a message: {}", e.what());
      } catch (const Error& e) {
        spdlog::warn("hub: bad request: {}", e.what());
      } catch (const std::exception& e) {
        spdlog::error("hub: request dropped: {}", e.what());
      }
    }
    if (items[1].revents & ZMQ_POLLIN) {
      while (auto event = EngineEvent::receive(hub_in)) {
        if (event->kind == EngineEvent::Kind::silent)
          drop_engine(event->engine, "stopped answering heartbeats");
      }
    }
    if (drain_at != kNoDrain && Steady::now() >= drain_at) {
      // Copies of task traffic: [what, queue or engine, parts...]. A bounded batch per turn,
      // so registration, heartbeat news and queries are served while a backlog drains.
      const bool more = drain_traffic(4096, std::chrono::milliseconds(50));
      drain_at = more ? Steady::now() : kNoDrain;
    }
    stop_drained();
    if (!shm_dir.empty() && Steady::now() - last_sweep > kSweepEvery) {
      last_sweep = Steady::now();
      if (const auto n = net::SharedMemory::sweep(shm_dir, kPartsInFlight); n > 0)
        spdlog::info("shared memory: removed {} part(s) nobody took", n);
      net::SharedMemory::trim(kSweepEvery);
    }
    if (recorder.flush_due(Steady::now())) flush();
  }
  flush();
  // Shutdown: tell every engine to exit.
  for (const auto& stop : registry.stop_all())
    net::send(registration, sign(), stop, true);
}

// ---- heartbeat monitor ---------------------------------------------------------------------

void Controller::State::heart() {
  zmq::socket_t events(ctx, zmq::socket_type::sub);
  events.connect(kEvents);
  events.set(zmq::sockopt::subscribe, "");
  zmq::socket_t hub_in(ctx, zmq::socket_type::push);
  hub_in.connect(kHubIn);
  ctrl::HeartMonitor monitor(options.heartbeat);
  const auto tick = std::clamp<std::chrono::milliseconds>(
      options.heartbeat / 10, std::chrono::milliseconds(5), std::chrono::milliseconds(100));
  zmq::pollitem_t items[] = {{heartbeat.handle(), 0, ZMQ_POLLIN, 0},
                             {events.handle(), 0, ZMQ_POLLIN, 0}};
  while (!stopping.load()) {
    if (!poll_once(items, 2, tick)) continue;
    const auto now = Steady::now();
    if (items[1].revents & ZMQ_POLLIN) {
      while (auto event = EngineEvent::receive(events))
        monitor.on_event(*event, now);
    }
    if (items[0].revents & ZMQ_POLLIN) {
      try {
        while (auto env = net::recv(heartbeat, sign(), zmq::recv_flags::dontwait)) {
          const net::Header h = net::decode_header(env->parts.at(0));
          if (monitor.ping(h.engine, now)) {
            env->signature.reset();
            net::send(heartbeat, sign(), *env, true);  // echo: the engine knows we are alive
          } else {
            // Not registered here (this controller restarted, or dropped it): say so, and the
            // engine registers again under its id.
            net::Header r;
            r.type = net::MsgType::Ping;
            r.engine = h.engine;
            r.error = make_error_record(ErrorCode::engine,
                                        fmt::format("engine {} is not registered", h.engine));
            net::Envelope out = net::make_message(r);
            out.route = std::move(env->route);
            net::send(heartbeat, sign(), out, true);
          }
        }
      } catch (const ProtocolError& e) {
        spdlog::warn("heartbeat monitor dropped a message: {}", e.what());
      }
    }
    for (const auto id : monitor.tick(now))
      EngineEvent::silent(id).send(hub_in);
    if (monitor.last_stall() > std::chrono::milliseconds(0)) {
      // This thread was not scheduled for a while (a loaded machine): the silence was ours,
      // not the engines', so nobody was blamed for it.
      spdlog::debug(
          "heartbeat monitor stalled for {} ms",
          std::chrono::duration_cast<std::chrono::milliseconds>(monitor.last_stall()).count());
    }
  }
}

// ---- schedulers ----------------------------------------------------------------------------

ctrl::RelayWiring Controller::State::wiring() {
  return {ctx, traffic, shm, sign(), kEvents, kMonitor};
}

void Controller::State::direct_scheduler() {
  ctrl::DirectScheduler(wiring(), client_direct, engine_direct).run(stopping);
}

void Controller::State::balanced_scheduler() {
  ctrl::BalancedScheduler(
      wiring(), client_balanced, engine_balanced,
      {.scheme = sched::parse_scheme(options.scheme),
       .hwm = options.hwm,
       .seed = static_cast<std::uint64_t>(Steady::now().time_since_epoch().count()),
       .remember = std::size_t{1} << 20})
      .run(stopping);
}

// ---- Controller ----------------------------------------------------------------------------

Controller::Controller(ControllerOptions options) : options_(std::move(options)) {}

Controller::~Controller() {
  stop();
  wait();
}

void Controller::start() {
  state_ = std::make_unique<State>();
  State& s = *state_;
  s.options = options_;
  std::filesystem::create_directories(options_.profile_dir);
  // The database first: a corrupt or read-only file stops the start with a clear error.
  (void)sched::parse_scheme(options_.scheme);  // an unknown scheme stops the start
  if (options_.hwm < -1)
    throw UsageError(
        fmt::format("--hwm {} is not allowed (0: unlimited, N > 0: at most N)", options_.hwm));
  if (options_.db == "sqlite" || options_.db == "memory") {
    s.db = std::make_unique<hub::TaskDb>(
        hub::TaskDb::Options{.file = options_.db == "memory"    ? std::filesystem::path()
                                     : options_.db_file.empty() ? options_.profile_dir / "tasks.db"
                                                                : options_.db_file,
                             .record_limit = options_.db_record_limit,
                             .size_limit = options_.db_size_limit});
  } else if (options_.db != "none") {
    throw UsageError(
        fmt::format("unknown task database '{}' (use sqlite, memory or none)", options_.db));
  }
  ctrl::Endpoints endpoints = ctrl::Endpoints::prepare(options_);
  s.signer = std::make_unique<net::Signer>(endpoints.client.key);
  s.shm = endpoints.shm;
  s.shm_dir = endpoints.shm_dir;
  ctrl::ControllerSockets sockets{s.registration,  s.heartbeat,       s.client_direct,
                                  s.engine_direct, s.client_balanced, s.engine_balanced};
  ctrl::Endpoints::configure(sockets);
  endpoints.bind(sockets, options_);
  endpoints.write_files(options_.profile_dir);
  const std::string reg = endpoints.client.endpoint("registration");

  // Named, so that `top -H`, `ps -L` and profilers tell the controller's threads apart.
  auto named = [](const char* name, auto body) {
    return std::thread([name, body] {
      pthread_setname_np(pthread_self(), name);
      body();
    });
  };
  s.threads.push_back(named("ipp-hub", [&s] { s.hub(); }));
  s.threads.push_back(named("ipp-heart", [&s] { s.heart(); }));
  s.threads.push_back(named("ipp-direct", [&s] { s.direct_scheduler(); }));
  s.threads.push_back(named("ipp-balanced", [&s] { s.balanced_scheduler(); }));
  spdlog::info("controller listening on {} (profile {}); load balancing: {}, hwm {}", reg,
               options_.profile_dir.string(), options_.scheme,
               options_.hwm < 0    ? std::string("engine threads")
               : options_.hwm == 0 ? std::string("none")
                                   : std::to_string(options_.hwm));
}

void Controller::wait() {
  if (!state_) return;
  for (auto& t : state_->threads) {
    if (t.joinable()) t.join();
  }
  if (!state_->shm_dir.empty()) {
    net::SharedMemory::remove(state_->shm_dir);
    state_->shm_dir.clear();
  }
}

void Controller::stop() noexcept {
  if (state_) state_->stopping.store(true);
}

}  // namespace ipp
