#include "hub.hpp"

#include <malloc.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/error.hpp"
#include "ipp/net/message.hpp"
#include "ipp/net/poll.hpp"
#include "ipp/net/shm.hpp"
#include "replies.hpp"

namespace ipp::ctrl {

namespace {

using Steady = std::chrono::steady_clock;

// Traffic copies are taken in batches, kDrainAfter after the first of a batch arrived, not as
// each arrives: under load the hub wakes tens of times a second instead of three times per
// task, and its records are written in bigger transactions. Queries that read the records
// take in everything sent before them first, so none answers from stale data.
constexpr auto kDrainAfter = std::chrono::milliseconds(20);
// Shared-memory parts of messages that were lost (a peer died with them in flight) are
// removed after kPartsInFlight; every kSweepEvery the directory is looked through.
constexpr auto kSweepEvery = std::chrono::seconds(10);
// The next engine id of the profile (a number), read by a restored controller.
constexpr const char* kEngineIdsFile = "next_engine_id";

std::int64_t read_next_engine_id(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::int64_t next = 0;
  if (!(in >> next) || next < 0) return 0;
  return next;
}
constexpr auto kPartsInFlight = std::chrono::seconds(600);
// How long without task traffic before the controller gives freed memory back.
constexpr auto kTrimAfterIdle = std::chrono::seconds(2);

}  // namespace

Hub::Hub(const HubWiring& wiring, const ControllerOptions& options, hub::TaskDb* db,
         const std::string& instance, std::atomic<bool>& stopping)
    : wiring_(wiring),
      options_(options),
      stopping_(stopping),
      events_(wiring.ctx, zmq::socket_type::pub),
      hub_in_(wiring.ctx, zmq::socket_type::pull),
      monitor_(wiring.ctx, zmq::socket_type::pull),
      plugins_(options.profile_dir / "plugins", options.restore, options.plugin_load_timeout),
      registry_(instance, options.heartbeat),
      recorder_(db, {.max_payload = options.db_max_payload, .delay = options.hub_delay},
                [this](const std::string& task) { return plugins_.plugin_of(task); }),
      queries_({.db = db,
                .registry = registry_,
                .plugins = plugins_,
                .recorder = recorder_,
                .catch_up = [this] { drain_traffic(SIZE_MAX, std::chrono::hours(1)); },
                .drop_engine = [this](std::int64_t id, const std::string& why,
                                      bool crashed) { drop_engine(id, why, crashed); },
                .shutdown = [this] { stopping_.store(true); },
                .db_max_payload = options.db_max_payload,
                .session = instance}) {
  events_.bind(wiring.events_endpoint);
  hub_in_.bind(wiring.hub_in_endpoint);
  monitor_.set(zmq::sockopt::rcvhwm, 0);
  monitor_.bind(wiring.monitor_endpoint);
  if (options.restore && db != nullptr)
    spdlog::info("restore: {} task(s) were in flight", recorder_.fail_unfinished());
  if (options.restore) {
    saved_next_id_ = read_next_engine_id(options.profile_dir / kEngineIdsFile);
    registry_.reserve_ids_below(saved_next_id_);
  }
}

void Hub::save_engine_ids() {
  const std::int64_t next = registry_.next_id();
  if (next <= saved_next_id_ || options_.profile_dir.empty()) return;
  const auto file = options_.profile_dir / kEngineIdsFile;
  const auto tmp = options_.profile_dir / (std::string(kEngineIdsFile) + ".tmp");
  std::error_code ec;
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << next << "\n";
    if (!out.flush()) {
      spdlog::warn("cannot write {}: a restore could give a new engine an old id", tmp.string());
      return;
    }
  }
  std::filesystem::rename(tmp, file, ec);
  if (ec) {
    spdlog::warn("cannot write {}: {}", file.string(), ec.message());
    return;
  }
  saved_next_id_ = next;
}

// What goes to engines is signed with their key, what goes to clients with theirs.
const net::Signer& Hub::signer_for(const net::Envelope& m) const {
  switch (net::decode_header(m.parts.at(0)).type) {
    case net::MsgType::RegisterReply:
    case net::MsgType::PluginPush:
    case net::MsgType::PluginUnload:
    case net::MsgType::Stop:
      return wiring_.engine_signer;
    default:
      return wiring_.client_signer;
  }
}

void Hub::send_all(const std::vector<net::Envelope>& messages) {
  for (const auto& m : messages)
    net::send(wiring_.registration, signer_for(m), m);
}

// A message its sender's key does not allow: an engine's key asking what only a client may
// (a query, a push), or a client's key registering an engine. A request is answered with the
// error, signed with the sender's own key so that it can read it; anything else is dropped.
// Returns false when the message is allowed.
bool Hub::refuse(const net::Envelope& env, const net::Header& h, bool from_engine) {
  using T = net::MsgType;
  const bool allowed = from_engine ? (h.type == T::RegisterRequest || h.type == T::PluginLoaded)
                                   : (h.type == T::QueryRequest || h.type == T::PushRequest);
  if (allowed) return false;
  const char* why = from_engine
                        ? "an engine's credentials allow registering and reporting plugins only "
                          "(a client's connection file is needed)"
                        : "a client's credentials cannot register an engine (an engine needs "
                          "the engine connection file, ipp-engine.json)";
  std::optional<T> answer;
  if (h.type == T::QueryRequest) answer = T::QueryReply;
  if (h.type == T::PushRequest) answer = T::PushReply;
  if (h.type == T::RegisterRequest) answer = T::RegisterReply;
  if (std::uint64_t more = 0; dropped_.allow(more))
    spdlog::warn("hub refused a {} ({}){}", net::to_string(h.type), why, LogLimiter::more(more));
  if (!answer) return true;
  net::Header r = reply_header(*answer, h.msg_id);
  r.error = make_error_record(ErrorCode::permission,
                              fmt::format("{} refused: {}", net::to_string(h.type), why));
  net::Envelope out = net::make_message(r);
  out.route = net::copy_route(env.route);
  net::send(wiring_.registration, from_engine ? wiring_.engine_signer : wiring_.client_signer, out,
            true);
  return true;
}

// The schedulers learn which engines have which tasks from each plugin's outcome: a task goes
// only to engines that loaded its plugin (a plugin that failed on some engines is not sent
// their way). Each task by its bare and its qualified name, as clients name it.
void Hub::publish_tasks(const net::Header& h) {
  if (h.error || h.info.kind() != Value::Kind::map) return;
  const auto& info = h.info.as_map();
  const auto name = info.find("name");
  if (name == info.end() || name->second.kind() != Value::Kind::string) return;
  const std::string& plugin = name->second.as_string();
  if (info.count("unloaded") != 0) {
    if (auto it = plugin_tasks_.find(plugin); it != plugin_tasks_.end())
      EngineEvent::tasks(h.engine, it->second, false).send(events_);
    return;
  }
  const auto tasks = info.find("tasks");
  if (tasks == info.end() || tasks->second.kind() != Value::Kind::list) return;
  std::vector<std::string> names;
  for (const auto& t : tasks->second.as_list()) {
    if (t.kind() != Value::Kind::map || t.as_map().count("name") == 0) continue;
    const Value& task = t.as_map().at("name");
    if (task.kind() != Value::Kind::string) continue;
    names.push_back(task.as_string());
    names.push_back(plugin + "." + task.as_string());
  }
  plugin_tasks_[plugin] = names;
  EngineEvent::tasks(h.engine, std::move(names), true).send(events_);
}

void Hub::send_registry() {
  for (const auto& e : registry_.take_events())
    e.send(events_);
  send_all(registry_.take_messages());
}

// Unregisters an engine at once; `why` completes "engine 3 ...": "was removed", "stopped
// answering heartbeats", "was killed by signal 11 (SIGSEGV)". `crashed`: its own code ended
// it (see net::engine_exit_is_crash), which a plugin it was loading is blamed for.
void Hub::drop_engine(std::int64_t id, const std::string& why, bool crashed) {
  if (registry_.drop(id, why)) send_all(plugins_.engine_gone(id, why, crashed));
  send_registry();
  // What a dead engine held in shared memory goes at the next turn, not within kSweepEvery:
  // a map's output of gigabytes must not outlive it.
  last_sweep_ = Steady::time_point{};
}

// Records the traffic copies handed over so far, at most `limit` of them and for at most
// `budget`; the engines' counts follow. Returns true when it stopped with more waiting.
bool Hub::drain_traffic(std::size_t limit, std::chrono::milliseconds budget) {
  zmq::message_t wake;
  while (monitor_.recv(wake, zmq::recv_flags::dontwait)) {
  }
  recorder_.take(wiring_.traffic);
  loads_.clear();
  const bool more = recorder_.record_some(limit, budget, loads_);
  for (const auto& change : loads_)
    registry_.apply(change);
  if (!loads_.empty()) {
    last_traffic_ = Steady::now();
    trimmed_ = false;
  }
  return more;
}

// Draining engines whose last task has been answered are told to stop and unregistered. The
// schedulers learn of a drain from the event asynchronously, so a task they dispatched just
// before reading it is awaited too: the traffic copies are recorded first.
void Hub::stop_drained() {
  const auto now = Steady::now();
  if (!registry_.removal_due(now)) return;
  drain_traffic(SIZE_MAX, std::chrono::hours(1));
  for (const auto id : registry_.stop_drained(now))
    send_all(plugins_.engine_gone(id, "was removed", false));
  send_registry();
}

// A burst of work leaves the controller's heap large (its queues, batches and records freed,
// but kept by the allocator): once nothing has moved for a while, hand it back, as engines do.
void Hub::trim_when_idle() {
  if (trimmed_ || Steady::now() - last_traffic_ < kTrimAfterIdle) return;
  ::malloc_trim(0);  // every arena: the schedulers' threads allocated most of it
  trimmed_ = true;
}

void Hub::sweep_shared_memory() {
  if (wiring_.shm_dir.empty() || Steady::now() - last_sweep_ <= kSweepEvery) return;
  last_sweep_ = Steady::now();
  if (const auto n = net::SharedMemory::sweep(wiring_.shm_dir, kPartsInFlight); n > 0)
    spdlog::info("shared memory: removed {} part(s) nobody took", n);
  net::SharedMemory::trim(kSweepEvery);
}

void Hub::on_registration() {
  try {
    auto env = net::recv_either(wiring_.registration, wiring_.client_signer, wiring_.engine_signer,
                                zmq::recv_flags::dontwait);
    if (!env) return;
    const net::Header h = net::decode_header(env->parts.at(0));
    if (refuse(*env, h, env->signed_with == wiring_.engine_signer.key_id())) return;
    switch (h.type) {
      case net::MsgType::RegisterRequest:
        if (auto* e = registry_.register_engine(*env, h)) {
          spdlog::info("engine {} registering (pid {}), sending {} plugin(s)", e->id, e->pid,
                       plugins_.size());
          send_registry();  // its id first, then the plugins
          send_all(plugins_.replay_to({e->id, &e->route}, e->awaiting));
          registry_.mark_ready(*e);
          save_engine_ids();
        }
        send_registry();
        break;
      case net::MsgType::PluginLoaded:
        if (registry_.find(h.engine) == nullptr) break;
        registry_.acknowledged(h.engine, h.parent_id, h.error);
        publish_tasks(h);
        send_registry();
        send_all(plugins_.loaded(h));
        break;
      case net::MsgType::QueryRequest:
        if (auto reply = queries_.answer(*env, h))
          net::send(wiring_.registration, wiring_.client_signer, *reply);
        send_registry();  // what a query changed (a removal's drains, a dropped engine)
        break;
      case net::MsgType::PushRequest: {
        std::vector<PluginDistributor::Target> targets;
        for (const auto& [id, e] : registry_.engines())
          targets.push_back({id, &e.route});
        const bool unload = h.info.kind() == Value::Kind::map && h.info.as_map().count("unload");
        send_all(unload ? plugins_.unload(*env, h, targets) : plugins_.push(*env, h, targets));
        break;
      }
      default:
        spdlog::warn("hub: unexpected {} on the registration channel", net::to_string(h.type));
    }
  } catch (const std::exception& e) {
    if (std::uint64_t more = 0; dropped_.allow(more))
      spdlog::warn("hub dropped a message: {}{}", e.what(), LogLimiter::more(more));
  }
}

void Hub::turn(Steady::time_point& drain_at) {
  constexpr auto kNoDrain = Steady::time_point::max();  // wake on the next copy instead
  zmq::pollitem_t items[] = {{wiring_.registration.handle(), 0, ZMQ_POLLIN, 0},
                             {hub_in_.handle(), 0, ZMQ_POLLIN, 0},
                             {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
  auto wait = std::chrono::milliseconds(100);
  const auto now = Steady::now();
  auto until = [&](Steady::time_point t) {
    wait = std::min(wait, std::max(std::chrono::milliseconds(0),
                                   std::chrono::ceil<std::chrono::milliseconds>(t - now)));
  };
  if (drain_at != kNoDrain) until(drain_at);
  if (auto at = recorder_.next_flush()) until(*at);
  // A signal interrupting the poll is "nothing happened": the loop re-checks its stop flag.
  if (net::poll(items, drain_at != kNoDrain ? 2 : 3, wait) < 0) return;
  if (drain_at == kNoDrain && (items[2].revents & ZMQ_POLLIN))
    drain_at = Steady::now() + kDrainAfter;
  if (items[0].revents & ZMQ_POLLIN) on_registration();
  if (items[1].revents & ZMQ_POLLIN) {
    while (auto event = EngineEvent::receive(hub_in_)) {
      if (event->kind == EngineEvent::Kind::silent)
        drop_engine(event->engine, "stopped answering heartbeats", false);
    }
  }
  if (drain_at != kNoDrain && Steady::now() >= drain_at) {
    // A bounded batch per turn, so registration, heartbeat news and queries are served while
    // a backlog drains.
    const bool more = drain_traffic(4096, std::chrono::milliseconds(50));
    drain_at = more ? Steady::now() : kNoDrain;
  }
  stop_drained();
  send_all(plugins_.expire(Steady::now()));
  sweep_shared_memory();
  if (recorder_.flush_due(Steady::now())) recorder_.flush();
  trim_when_idle();
}

void Hub::run() {
  auto drain_at = Steady::time_point::max();
  while (!stopping_.load()) {
    try {
      turn(drain_at);
    } catch (const std::exception& e) {
      // Nothing escapes the hub's thread: a turn that failed is logged, and the next one serves.
      if (std::uint64_t more = 0; dropped_.allow(more))
        spdlog::error("hub: a turn failed: {}{}", e.what(), LogLimiter::more(more));
    }
  }
  recorder_.flush();
  // Shutdown: tell every engine to exit.
  for (const auto& stop : registry_.stop_all())
    net::send(wiring_.registration, wiring_.engine_signer, stop, true);
}

}  // namespace ipp::ctrl
