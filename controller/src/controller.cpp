#include "ipp/controller/controller.hpp"

#include <unistd.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "balancer.hpp"
#include "ipp/codec.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"
#include "ipp/runtime/plugin_loader.hpp"
#include "ipp/runtime/plugin_store.hpp"
#include "task_db.hpp"

namespace ipp {

namespace {

using Steady = std::chrono::steady_clock;
constexpr const char* kEvents = "inproc://ipp-events";    // hub -> everyone: engine up / down
constexpr const char* kHubIn = "inproc://ipp-hub-in";     // heartbeat -> hub: engine silent
constexpr const char* kMonitor = "inproc://ipp-monitor";  // schedulers -> hub: task traffic copies

std::string_view kind_of(const net::Header& h) {
  switch (h.type) {
    case net::MsgType::ApplyRequest:
      return "apply";
    case net::MsgType::MapRequest:
      return "map";
    case net::MsgType::ExecuteRequest:
      return "execute";
    default:
      return h.task;  // NamespaceRequest: push, pull, clear
  }
}

ErrorRecord make_record(ErrorCode code, std::string type, std::string message) {
  ErrorRecord r;
  r.code = code;
  r.type = std::move(type);
  r.message = std::move(message);
  return r;
}

ErrorRecord engine_error(const std::string& message, std::int64_t engine, const std::string& task) {
  ErrorRecord r;
  r.code = ErrorCode::engine;
  r.type = "ipp::EngineError";
  r.message = message;
  r.engine = engine;
  r.task = task;
  return r;
}

/// zmq::poll that treats a signal as "nothing happened" (the loop re-checks its stop flag).
bool poll_once(zmq::pollitem_t* items, std::size_t n, std::chrono::milliseconds timeout) {
  try {
    zmq::poll(items, n, timeout);
    return true;
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return false;
    throw;
  }
}

std::string bind_any(zmq::socket_t& s, const std::string& ip) {
  s.bind(fmt::format("tcp://{}:*", ip));
  return s.get(zmq::sockopt::last_endpoint);
}

}  // namespace

struct Controller::State {
  ControllerOptions options;
  const std::string instance = net::new_id();  // tells clients when the controller restarted
  std::unique_ptr<hub::TaskDb> db;             // null with --db none; used by the hub thread only
  zmq::context_t ctx;
  std::unique_ptr<net::Signer> signer;
  std::atomic<bool> stopping{false};
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
};

// ---- hub -----------------------------------------------------------------------------------

void Controller::State::hub() {
  zmq::socket_t events(ctx, zmq::socket_type::pub);
  events.bind(kEvents);
  zmq::socket_t hub_in(ctx, zmq::socket_type::pull);
  hub_in.bind(kHubIn);
  zmq::socket_t monitor(ctx, zmq::socket_type::pull);
  monitor.set(zmq::sockopt::rcvhwm, 0);
  monitor.bind(kMonitor);
  PluginStore store(options.profile_dir / "plugins");
  // Tasks not finished yet. A record is held whole until its first write to the database;
  // after that only what changes later is kept (a queued task costs the hub little memory),
  // and later writes update the row in place. Finished tasks live only in the database.
  struct Inflight {
    std::unique_ptr<hub::TaskRecord> full;  // until first written
    std::int64_t engine = -1;
    std::string status = "pending";
    bool named = false;  // apply or map: runs a plugin's task, which the reply names
  };
  std::unordered_map<std::string, Inflight> inflight;
  // A finished record, and whether its row was written before (then it is updated).
  struct Finished {
    hub::TaskRecord record;
    bool stored = false;
  };
  // Records changed since the last flush, each written once per flush however often it
  // changed: a task submitted, dispatched and answered within one flush is one row write.
  // Empty: the record is still in `inflight`; else the finished record itself.
  std::unordered_map<std::string, std::optional<Finished>> dirty;
  std::size_t unflushed = 0;
  auto last_flush = Steady::now();
  auto changed = [&] {
    if (options.hub_delay.count() > 0) std::this_thread::sleep_for(options.hub_delay);
    ++unflushed;
  };
  auto touch = [&](const std::string& msg_id) {  // a record in `inflight` changed
    if (!db) return;
    changed();
    dirty.try_emplace(msg_id);
  };
  auto record = [&](hub::TaskRecord r, bool stored) {  // finished, no longer in `inflight`
    if (!db) return;
    changed();
    std::string msg_id = r.msg_id;
    dirty[std::move(msg_id)] = Finished{std::move(r), stored};
  };
  auto flush = [&] {
    last_flush = Steady::now();
    if (!db || dirty.empty()) return;
    unflushed = 0;
    try {
      for (const auto& [msg_id, f] : dirty) {
        if (f) {
          if (f->stored)
            db->update(f->record);
          else
            db->put(f->record);
        } else if (auto it = inflight.find(msg_id); it != inflight.end()) {
          Inflight& live = it->second;
          if (live.full) {
            db->put(*live.full);
            live.full.reset();
          } else {
            hub::TaskRecord r;
            r.msg_id = msg_id;
            r.engine = live.engine;
            r.status = live.status;
            db->update(r);
          }
        }
      }
      dirty.clear();
      db->flush();
    } catch (const Error& e) {
      dirty.clear();
      spdlog::error("hub: task database: {}", e.what());
    }
  };
  if (options.restore && db) {
    // Tasks in flight when the old controller died: failed until a late reply says otherwise
    // (an engine that finished one sends its reply when it reconnects; it is recorded then).
    for (auto& r : db->query({{"status", "in", Value::list({"pending", "running"})}})) {
      ErrorRecord e;
      e.code = ErrorCode::connection;
      e.type = "ipp::ConnectionError";
      e.message = "the controller restarted while this task was in flight; no result has arrived";
      e.task = r.task;
      e.engine = r.engine;
      r.status = "error";
      r.error = e;
      const std::string msg_id = r.msg_id;
      Inflight live{nullptr, r.engine, r.status};
      live.full = std::make_unique<hub::TaskRecord>(std::move(r));
      inflight[msg_id] = std::move(live);
      touch(msg_id);
    }
    flush();
    spdlog::info("restore: {} task(s) were in flight", inflight.size());
  }

  struct EngineRec {
    std::int64_t id;
    std::vector<zmq::message_t> route;  // on the registration socket
    int threads = 1;
    bool ready = false;
    std::set<std::string> awaiting;  // plugin pushes not yet acknowledged (before ready)
    std::int64_t pid = 0;
    std::uint64_t submitted = 0, completed = 0;
    std::set<std::string> running;  // msg_ids dispatched to it and not answered yet
    bool draining = false;          // being removed: stopped once `running` is empty
    Steady::time_point drain_since;
  };
  // A `remove_engines` query, answered when every engine it names is gone.
  struct Removal {
    std::vector<zmq::message_t> client;
    std::string request_id;
    std::set<std::int64_t> waiting;
    Value::List removed;
  };
  std::vector<Removal> removals;
  std::set<std::int64_t> removed_pids;  // told to stop: never registered again
  struct Push {
    std::vector<zmq::message_t> client;
    std::string request_id;
    std::string name;
    std::set<std::int64_t> waiting;
    Value::Map results;
    std::vector<ErrorRecord> errors;
  };
  std::map<std::int64_t, EngineRec> engines;
  std::int64_t next_id = 0;
  // Every plugin pushed so far, in push order, with the file as it arrived: engines get that
  // payload as is (its buffers are shared, not copied or read again from disk).
  struct HubPlugin {
    StoredPlugin stored;
    Payload file;
  };
  std::vector<HubPlugin> plugins;
  std::map<std::string, Push> pushes;      // by push msg id sent to engines
  std::map<std::string, Value> described;  // plugin hash -> what an engine reported of it
  // Pushed plugins in push order, one hash per line, so a restored controller has them all.
  const auto manifest = store.dir() / "pushed.txt";
  if (options.restore) {
    std::ifstream in(manifest);
    for (std::string hash; std::getline(in, hash);) {
      const auto path = store.path_for(hash);
      std::ifstream file(path, std::ios::binary);
      if (!file) {
        spdlog::warn("restore: pushed plugin {} is missing from {}", hash, path.string());
        continue;
      }
      std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                                      std::istreambuf_iterator<char>());
      plugins.push_back(
          {StoredPlugin{hash, path}, encode(Value(Bytes{Buffer::adopt(std::move(bytes))}))});
    }
    spdlog::info("restore: {} pushed plugin(s)", plugins.size());
  }

  // Events: ["known", id, "0"], ["up", id, capacity], ["drain", id, ""] and
  // ["down", id, reason], the reason a clause such as "was killed by signal 11 (SIGSEGV)".
  auto publish = [&](const std::string& what, std::int64_t id, const std::string& detail) {
    zmq::send_multipart(
        events, std::array<zmq::const_buffer, 3>{zmq::buffer(what), zmq::buffer(std::to_string(id)),
                                                 zmq::buffer(detail)});
  };
  auto push_plugin_to = [&](EngineRec& e, const HubPlugin& p, const std::string& push_id) {
    net::Header h;
    h.type = net::MsgType::PluginPush;
    h.msg_id = push_id;
    h.info = Value::map({{"hash", p.stored.hash}});
    net::Envelope env = net::make_message(h, p.file);
    env.route = net::copy_route(e.route);
    net::send(registration, sign(), env);
  };
  auto finish_push = [&](const std::string& id) {
    auto it = pushes.find(id);
    if (it == pushes.end() || !it->second.waiting.empty()) return;
    Push& p = it->second;
    net::Header r;
    r.type = net::MsgType::PushReply;
    r.msg_id = net::new_id();
    r.parent_id = p.request_id;
    r.info = Value::map({{"name", p.name}, {"engines", Value(p.results)}});
    if (!p.errors.empty()) {
      ErrorRecord e;
      e.code = ErrorCode::plugin_load;
      e.type = "ipp::PluginLoadError";
      std::string msg = fmt::format("{} of {} engines failed to load the plugin", p.errors.size(),
                                    p.results.size());
      for (const auto& err : p.errors)
        msg += fmt::format("\n  engine {}: {}", err.engine, err.message);
      e.message = msg;
      r.error = e;
    }
    net::Envelope env = net::make_message(r);
    env.route = std::move(p.client);
    net::send(registration, sign(), env);
    pushes.erase(it);
  };
  auto mark_ready = [&](EngineRec& e) {
    if (e.ready || !e.awaiting.empty()) return;
    e.ready = true;
    spdlog::info("engine {} ready ({} threads, pid {})", e.id, e.threads, e.pid);
    publish("up", e.id, std::to_string(e.threads));
  };
  auto finish_removals = [&] {
    for (auto it = removals.begin(); it != removals.end();) {
      if (!it->waiting.empty()) {
        ++it;
        continue;
      }
      net::Header r;
      r.type = net::MsgType::QueryReply;
      r.msg_id = net::new_id();
      r.parent_id = it->request_id;
      r.session = instance;
      r.info = Value::map({{"removed", Value(std::move(it->removed))}});
      net::Envelope out = net::make_message(r);
      out.route = std::move(it->client);
      net::send(registration, sign(), out, true);
      it = removals.erase(it);
    }
  };
  // Unregisters an engine at once; `why` completes "engine 3 ...": "was removed",
  // "stopped answering heartbeats", "was killed by signal 11 (SIGSEGV)".
  auto drop_engine = [&](std::int64_t id, const std::string& why) {
    auto it = engines.find(id);
    if (it == engines.end()) return;
    spdlog::warn("engine {} (pid {}) {}; unregistered", id, it->second.pid, why);
    const std::int64_t pid = it->second.pid;
    engines.erase(it);
    publish("down", id, why);
    const std::string message = fmt::format("engine {} {}", id, why);
    std::vector<std::string> done;
    for (auto& [push_id, p] : pushes) {
      if (p.waiting.erase(id) != 0) {
        p.results[std::to_string(id)] = Value(message);
        p.errors.push_back(engine_error(message, id, ""));
        done.push_back(push_id);
      }
    }
    for (const auto& d : done)
      finish_push(d);
    for (auto& rm : removals) {
      if (rm.waiting.erase(id) != 0)
        rm.removed.push_back(Value::map({{"id", id}, {"pid", pid}, {"reason", why}}));
    }
    finish_removals();
  };
  // The plugin (name, hash) a task name refers to, as far as the hub knows.
  auto plugin_of = [&](const std::string& task) -> std::pair<std::string, std::string> {
    const auto dot = task.find('.');
    for (auto p = plugins.rbegin(); p != plugins.rend(); ++p) {
      auto d = described.find(p->stored.hash);
      if (d == described.end()) continue;
      const std::string& pname = d->second["name"].as_string();
      if (dot != std::string::npos) {
        if (task.compare(0, dot, pname) == 0) return {pname, p->stored.hash};
        continue;
      }
      for (const auto& t : d->second["tasks"].as_list()) {
        if (t["name"].as_string() == task) return {pname, p->stored.hash};
      }
    }
    return {};
  };
  // Payload parts from `from` on, packed into one blob unless larger than the hub keeps;
  // `size` gets their total either way.
  auto keep_parts = [&](const std::vector<zmq::message_t>& msg, std::size_t from,
                        std::int64_t& size) {
    std::vector<std::string_view> parts;
    size = 0;
    for (std::size_t i = from; i < msg.size(); ++i) {
      parts.push_back(msg[i].to_string_view());
      size += static_cast<std::int64_t>(msg[i].size());
    }
    return size > options.db_max_payload ? std::string() : hub::pack_parts(parts);
  };
  auto on_traffic = [&](const std::vector<zmq::message_t>& msg) {
    if (msg.size() < 3) return;
    const std::string_view what = msg[0].to_string_view();
    if (what == "submit") {
      const net::Header h = net::decode_header(Buffer::copy(msg[2].data(), msg[2].size()));
      hub::TaskRecord r;
      r.msg_id = h.msg_id;
      r.client = h.session;
      r.queue = std::string(msg[1].to_string_view());
      r.kind = std::string(kind_of(h));
      r.task = h.task;
      if (h.type == net::MsgType::ApplyRequest || h.type == net::MsgType::MapRequest)
        std::tie(r.plugin, r.plugin_hash) = plugin_of(h.task);
      r.target = h.target;
      r.bind = h.bind;
      r.args = keep_parts(msg, 3, r.args_size);
      r.submitted = h.submitted != 0 ? h.submitted : net::now_us();
      if (h.info.kind() == Value::Kind::map && h.info.as_map().contains("resubmitted_from"))
        r.resubmitted_from = h.info["resubmitted_from"].as_string();
      const std::string msg_id = r.msg_id;
      Inflight live;
      live.named = h.type == net::MsgType::ApplyRequest || h.type == net::MsgType::MapRequest;
      if (db) live.full = std::make_unique<hub::TaskRecord>(std::move(r));  // else: not written
      inflight[msg_id] = std::move(live);
      touch(msg_id);
    } else if (what == "dispatch") {
      const std::int64_t engine = std::stoll(msg[1].to_string());
      if (auto e = engines.find(engine); e != engines.end()) {
        ++e->second.submitted;
        e->second.running.insert(msg[2].to_string());
      }
      auto it = inflight.find(msg[2].to_string());
      if (it == inflight.end()) return;
      it->second.engine = engine;
      it->second.status = "running";
      if (it->second.full) {
        it->second.full->engine = engine;
        it->second.full->status = "running";
      }
      touch(it->first);
    } else if (what == "reply") {
      const net::Header h = net::decode_header(Buffer::copy(msg[2].data(), msg[2].size()));
      const std::int64_t engine = std::stoll(msg[1].to_string());
      if (auto e = engines.find(engine); e != engines.end()) e->second.running.erase(h.parent_id);
      auto it = inflight.find(h.parent_id);
      if (it == inflight.end()) return;
      const bool stored = !it->second.full;
      const bool named = it->second.named;
      hub::TaskRecord r;
      if (stored) {
        r.msg_id = it->first;
        r.engine = it->second.engine;
        r.status = it->second.status;
      } else {
        r = std::move(*it->second.full);
      }
      inflight.erase(it);
      if (r.status == "error" && !h.error) r.error.reset();  // a late reply after a restore
      if (r.status == "running") {
        if (auto e = engines.find(engine); e != engines.end()) ++e->second.completed;
      }
      if (h.engine >= 0) r.engine = h.engine;
      r.started = h.started;
      r.completed = h.completed;
      r.received = net::now_us();
      if (h.error) {
        r.status = h.error->code == ErrorCode::engine      ? "engine_died"
                   : h.error->code == ErrorCode::aborted   ? "aborted"
                   : h.error->code == ErrorCode::cancelled ? "cancelled"
                                                           : "error";
        r.error = h.error;
        if (r.plugin.empty()) r.plugin = h.error->plugin;
      } else {
        r.status = "ok";
        r.result = keep_parts(msg, 3, r.result_size);
      }
      // Submitted before any engine described its plugin: named now that one ran it.
      if (r.plugin.empty() && named && !h.task.empty())
        std::tie(r.plugin, r.plugin_hash) = plugin_of(h.task);
      record(std::move(r), stored);
    }
  };
  // Parts of a stored payload, as buffers for a reply.
  auto stored_payload = [](const std::string& blob) {
    Payload p;
    auto parts = hub::unpack_parts(blob);
    for (std::size_t i = 0; i < parts.size(); ++i) {
      Buffer b = Buffer::copy(parts[i].data(), parts[i].size());
      if (i == 0)
        p.root = std::move(b);
      else
        p.frames.push_back(std::move(b));
    }
    return p;
  };
  // Records every traffic copy already queued for the hub (a bounded batch per call).
  auto drain_traffic = [&](int limit, std::chrono::milliseconds budget) {
    const auto until = Steady::now() + budget;
    std::vector<zmq::message_t> msg;
    for (int n = 0;
         n < limit && Steady::now() < until &&
         zmq::recv_multipart(monitor, std::back_inserter(msg), zmq::recv_flags::dontwait);
         ++n) {
      try {
        on_traffic(msg);
      } catch (const std::exception& e) {
        spdlog::warn("hub: a traffic copy was not recorded: {}", e.what());
      }
      msg.clear();
    }
  };
  auto need_db = [&]() -> hub::TaskDb& {
    if (!db) throw UsageError("this controller keeps no task database (started with --db none)");
    drain_traffic(1 << 30, std::chrono::hours(1));  // answer from everything sent so far
    flush();
    return *db;
  };
  // Draining engines whose last task has been answered are told to stop and unregistered.
  // The schedulers learn of a drain from the event asynchronously, so a task they dispatched
  // just before reading it is awaited too: the traffic copies are drained first, and not
  // before a grace period after the drain began.
  auto stop_drained = [&] {
    const auto now = Steady::now();
    std::vector<std::int64_t> done;
    bool drained_feed = false;
    for (auto& [id, e] : engines) {
      if (!e.draining || now - e.drain_since < std::chrono::milliseconds(250)) continue;
      if (!drained_feed) {
        drain_traffic(1 << 30, std::chrono::hours(1));
        drained_feed = true;
      }
      if (e.running.empty()) done.push_back(id);
    }
    for (const auto id : done) {
      EngineRec& e = engines.at(id);
      net::Header stop;
      stop.type = net::MsgType::Stop;
      stop.msg_id = net::new_id();
      net::Envelope out = net::make_message(stop);
      out.route = net::copy_route(e.route);
      net::send(registration, sign(), out, true);
      removed_pids.insert(e.pid);
      drop_engine(id, "was removed");
    }
  };
  auto info_field = [](const net::Header& h, const char* key) -> Value {
    if (h.info.kind() != Value::Kind::map) return Value();
    const auto& m = h.info.as_map();
    auto it = m.find(key);
    return it == m.end() ? Value() : it->second;
  };

  auto reply_query = [&](net::Envelope& env, const net::Header& h) {
    net::Header r;
    r.type = net::MsgType::QueryReply;
    r.msg_id = net::new_id();
    r.parent_id = h.msg_id;
    r.session = instance;
    Payload payload;
    try {
      if (h.task == "result" || h.task == "request") {
        const std::string id = info_field(h, "msg_id").as_string();
        auto rec = need_db().get(id);
        if (!rec) {
          throw Error(ErrorCode::name_error,
                      fmt::format("no task with msg_id '{}' in the task database", id));
        }
        r.info = hub::to_value(*rec);
        auto not_kept = [&](const char* what, std::int64_t size) {
          return UsageError(fmt::format(
              "the {} of task {} ({} bytes) were larger than the hub keeps (--db-max-payload {})",
              what, id, size, options.db_max_payload));
        };
        if (h.task == "request") {
          if (rec->args.empty() && rec->args_size > 0) throw not_kept("arguments", rec->args_size);
          payload = stored_payload(rec->args);
        } else if (rec->status == "ok") {
          if (rec->result.empty() && rec->result_size > 0)
            throw not_kept("results", rec->result_size);
          payload = stored_payload(rec->result);
        } else if (rec->error) {
          r.info.as_map()["failure"] =
              Value::map({{"code", static_cast<std::int64_t>(rec->error->code)},
                          {"description", rec->error->describe()}});
          r.error = rec->error;
        }
      } else if (h.task == "result_status") {
        Value::List pending, completed, unknown;
        auto& tasks = need_db();
        for (const auto& id : info_field(h, "msg_ids").as<std::vector<std::string>>()) {
          auto rec = tasks.get(id);
          if (!rec)
            unknown.emplace_back(id);
          else if (rec->status == "pending" || rec->status == "running")
            pending.emplace_back(id);
          else
            completed.emplace_back(id);
        }
        r.info = Value::map({{"pending", Value(std::move(pending))},
                             {"completed", Value(std::move(completed))},
                             {"unknown", Value(std::move(unknown))}});
      } else if (h.task == "history") {
        const Value limit = info_field(h, "limit");
        r.info = Value(need_db().history(limit.is_null() ? 0 : limit.as_int()));
      } else if (h.task == "db_query") {
        std::vector<hub::Condition> conditions;
        const Value where = info_field(h, "where");
        if (!where.is_null()) {
          for (const auto& c : where.as_list())
            conditions.push_back({c[0].as_string(), c[1].as_string(), c[2]});
        }
        const Value limit = info_field(h, "limit");
        const Value keys = info_field(h, "keys");
        if (!keys.is_null()) {
          const Value sample = hub::to_value(hub::TaskRecord{}, true);
          for (const auto& k : keys.as_list()) {
            if (!sample.as_map().contains(k.as_string()) && k.as_string() != "error")
              throw UsageError(fmt::format("unknown key '{}'", k.as_string()));
          }
        }
        Value::List rows;
        for (const auto& rec : need_db().query(conditions, limit.is_null() ? 0 : limit.as_int())) {
          Value row = hub::to_value(rec, true);
          if (!keys.is_null() && keys.size() > 0) {
            Value::Map picked;
            for (const auto& k : keys.as_list()) {
              const auto& m = row.as_map();
              auto it = m.find(k.as_string());
              if (it == m.end()) throw UsageError(fmt::format("unknown key '{}'", k.as_string()));
              picked[k.as_string()] = it->second;
            }
            picked["msg_id"] = rec.msg_id;
            row = Value(std::move(picked));
          }
          rows.push_back(std::move(row));
        }
        r.info = Value(std::move(rows));
      } else if (h.task == "purge") {
        auto& tasks = need_db();
        std::int64_t n = 0;
        if (const Value ids = info_field(h, "msg_ids"); !ids.is_null())
          n = tasks.purge(ids.as<std::vector<std::string>>());
        else if (const Value before = info_field(h, "before"); !before.is_null())
          n = tasks.purge_before(before.as_int());
        else if (info_field(h, "all") == Value(true))
          n = tasks.purge_all();
        else
          throw UsageError("purge needs msg_ids, before or all");
        r.info = Value::map({{"purged", n}});
      } else if (h.task == "ids") {
        Value::List ids;
        for (const auto& [id, e] : engines) {
          if (e.ready) ids.emplace_back(id);
        }
        r.info = Value(std::move(ids));
      } else if (h.task == "engines") {
        Value::List list;
        for (const auto& [id, e] : engines) {
          list.push_back(
              Value::map({{"id", id}, {"threads", e.threads}, {"pid", e.pid}, {"ready", e.ready}}));
        }
        r.info = Value(std::move(list));
      } else if (h.task == "queue_status") {
        Value::Map status;
        for (const auto& [id, e] : engines) {
          status[std::to_string(id)] =
              Value::map({{"queue", static_cast<std::int64_t>(e.submitted -
                                                              std::min(e.submitted, e.completed))},
                          {"completed", static_cast<std::int64_t>(e.completed)}});
        }
        r.info = Value(std::move(status));
      } else if (h.task == "plugins") {
        Value::List list;
        for (const auto& p : plugins) {
          auto d = described.find(p.stored.hash);
          list.push_back(d != described.end()
                             ? d->second
                             : Value::map({{"hash", p.stored.hash},
                                           {"name", "(not loaded by any engine yet)"}}));
        }
        r.info = Value(std::move(list));
      } else if (h.task == "engine_exited") {
        // From the supervising launcher: an engine process ended. Unregister it at once
        // instead of waiting for its heartbeats to stop.
        const std::int64_t pid = info_field(h, "pid").as_int();
        const std::string reason = info_field(h, "reason").as_string();
        const Value note = info_field(h, "note");
        std::int64_t id = -1;
        for (const auto& [eid, e] : engines) {
          if (e.pid == pid) id = eid;
        }
        if (id >= 0) drop_engine(id, reason);
        if (!note.is_null()) spdlog::error("engine process {}: {}", pid, note.as_string());
        r.info = Value::map({{"engine", id}});
      } else if (h.task == "remove_engines") {
        std::vector<std::int64_t> ids = info_field(h, "ids").as<std::vector<std::int64_t>>();
        std::vector<std::string> unknown;
        for (const auto id : ids) {
          if (!engines.contains(id)) unknown.push_back(std::to_string(id));
        }
        if (ids.empty()) throw UsageError("remove_engines needs engine ids");
        if (!unknown.empty()) {
          std::vector<std::string> known;
          for (const auto& [id, e] : engines)
            known.push_back(std::to_string(id));
          throw UsageError(fmt::format("no engine {} is registered (engines: [{}])",
                                       fmt::join(unknown, ", "), fmt::join(known, ", ")));
        }
        Removal rm;
        rm.client = std::move(env.route);
        rm.request_id = h.msg_id;
        for (const auto id : ids) {
          EngineRec& e = engines.at(id);
          rm.waiting.insert(id);
          if (e.draining) continue;
          e.draining = true;
          e.drain_since = Steady::now();
          spdlog::info("engine {} draining ({} task(s) in flight)", id, e.running.size());
          publish("drain", id, "");
        }
        removals.push_back(std::move(rm));
        return;  // answered when they are gone
      } else if (h.task == "shutdown") {
        stopping.store(true);
      } else {
        r.error = make_record(ErrorCode::usage, "ipp::UsageError",
                              fmt::format("unknown query '{}'", h.task));
      }
    } catch (const Error& e) {
      r.error = make_record(e.code(),
                            e.code() == ErrorCode::usage        ? "ipp::UsageError"
                            : e.code() == ErrorCode::name_error ? "ipp::NameError"
                                                                : "ipp::Error",
                            e.what());
      payload = {};
    } catch (const std::exception& e) {
      // A malformed query (wrong shapes in its info): an answer, never silence.
      r.error = make_record(ErrorCode::usage, "ipp::UsageError",
                            fmt::format("malformed '{}' query: {}", h.task, e.what()));
      payload = {};
    }
    net::Envelope out = net::make_message(r, std::move(payload));
    out.route = std::move(env.route);
    net::send(registration, sign(), out);
  };

  zmq::pollitem_t items[] = {{registration.handle(), 0, ZMQ_POLLIN, 0},
                             {hub_in.handle(), 0, ZMQ_POLLIN, 0},
                             {monitor.handle(), 0, ZMQ_POLLIN, 0}};
  while (!stopping.load()) {
    if (!poll_once(items, 3, std::chrono::milliseconds(100))) continue;
    if (items[0].revents & ZMQ_POLLIN) {
      try {
        auto env = net::recv(registration, sign(), zmq::recv_flags::dontwait);
        if (!env) continue;
        const net::Header h = net::decode_header(env->parts.at(0));
        switch (h.type) {
          case net::MsgType::RegisterRequest: {
            EngineRec e;
            e.route = net::copy_route(env->route);
            e.threads = std::max(1, h.threads);
            if (h.info.kind() == Value::Kind::map && h.info.as_map().count("pid"))
              e.pid = h.info["pid"].as_int();
            if (e.pid != 0 && removed_pids.count(e.pid) != 0) {
              // A removed engine that missed its Stop asks to come back: tell it again.
              net::Header stop;
              stop.type = net::MsgType::Stop;
              stop.msg_id = net::new_id();
              net::Envelope out = net::make_message(stop);
              out.route = std::move(env->route);
              net::send(registration, sign(), out, true);
              break;
            }
            net::Header r;
            r.type = net::MsgType::RegisterReply;
            r.msg_id = net::new_id();
            r.parent_id = h.msg_id;
            // Engines ping four times per period, whatever their own command line says.
            r.info = Value::map(
                {{"heartbeat_ms", static_cast<std::int64_t>(options.heartbeat.count())}});
            // An engine that lost its controller (or was dropped) asks for its old id back.
            const std::int64_t wanted = h.engine;
            auto existing = wanted >= 0 ? engines.find(wanted) : engines.end();
            if (existing != engines.end() && existing->second.pid != e.pid) {
              r.error = make_record(ErrorCode::usage, "ipp::UsageError",
                                    fmt::format("engine id {} belongs to another process", wanted));
              net::Envelope out = net::make_message(r);
              out.route = std::move(env->route);
              net::send(registration, sign(), out);
              break;
            }
            if (existing != engines.end()) {  // the same engine again: new route, same state
              existing->second.route = std::move(e.route);
              r.engine = wanted;
              net::Envelope out = net::make_message(r);
              out.route = net::copy_route(existing->second.route);
              net::send(registration, sign(), out);
              publish("known", wanted, "0");
              if (existing->second.ready)
                publish("up", wanted, std::to_string(existing->second.threads));
              break;
            }
            e.id = wanted >= 0 ? wanted : next_id;
            next_id = std::max(next_id, e.id + 1);
            r.engine = e.id;
            net::Envelope out = net::make_message(r);
            out.route = net::copy_route(e.route);
            net::send(registration, sign(), out);
            publish("known", e.id, "0");
            spdlog::info("engine {} registering (pid {}), sending {} plugin(s)", e.id, e.pid,
                         plugins.size());
            auto& rec = engines[e.id] = std::move(e);
            for (const auto& p : plugins) {
              const std::string push_id = net::new_id();
              rec.awaiting.insert(push_id);
              push_plugin_to(rec, p, push_id);
            }
            mark_ready(rec);
            break;
          }
          case net::MsgType::PluginLoaded: {
            auto eit = engines.find(h.engine);
            if (eit == engines.end()) break;
            if (h.info.kind() == Value::Kind::map && h.info.as_map().count("hash")) {
              described[h.info["hash"].as_string()] = h.info;
            }
            if (eit->second.awaiting.erase(h.parent_id) != 0) {
              if (h.error)
                spdlog::warn("engine {} could not load a plugin: {}", h.engine, h.error->message);
              mark_ready(eit->second);
            }
            auto pit = pushes.find(h.parent_id);
            if (pit != pushes.end() && pit->second.waiting.erase(h.engine) != 0) {
              pit->second.results[std::to_string(h.engine)] =
                  h.error ? Value(h.error->message) : Value("ok");
              if (h.error) pit->second.errors.push_back(*h.error);
              finish_push(h.parent_id);
            }
            break;
          }
          case net::MsgType::QueryRequest:
            reply_query(*env, h);
            break;
          case net::MsgType::PushRequest: {
            net::Header r;
            r.type = net::MsgType::PushReply;
            r.msg_id = net::new_id();
            r.parent_id = h.msg_id;
            try {
              Payload payload = net::payload_of(*env);
              const Value file = decode(payload);
              const auto& bytes = file.as_bytes().data;
              // Check the file without loading it: the controller never runs plugin code.
              const StoredPlugin stored = store.store_bytes(bytes.bytes());
              try {
                LoadedPlugin::validate_file(stored.path);
              } catch (...) {
                std::error_code ec;
                std::filesystem::remove(stored.path, ec);
                throw;
              }
              auto known = std::find_if(plugins.begin(), plugins.end(), [&](const HubPlugin& p) {
                return p.stored.hash == stored.hash;
              });
              if (known == plugins.end()) {
                plugins.push_back({stored, std::move(payload)});
                known = std::prev(plugins.end());
                std::ofstream(manifest, std::ios::app) << stored.hash << "\n";
              }
              Push push;
              push.client = net::copy_route(env->route);
              push.request_id = h.msg_id;
              push.name = h.task;
              const std::string push_id = net::new_id();
              for (auto& [id, e] : engines) {
                push.waiting.insert(id);
                push_plugin_to(e, *known, push_id);
              }
              spdlog::info("plugin {} ({}) pushed to {} engine(s)", h.task,
                           stored.hash.substr(0, 12), push.waiting.size());
              pushes.emplace(push_id, std::move(push));
              finish_push(push_id);  // at once when there are no engines
              break;
            } catch (const Error& e) {
              r.error = make_record(
                  e.code(),
                  e.code() == ErrorCode::plugin_load ? "ipp::PluginLoadError" : "ipp::Error",
                  e.what());
            } catch (const std::exception& e) {
              r.error = make_record(ErrorCode::plugin_load, "ipp::PluginLoadError",
                                    fmt::format("cannot store the plugin: {}", e.what()));
            }
            net::Envelope out = net::make_message(r);
            out.route = std::move(env->route);
            net::send(registration, sign(), out);
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
      std::vector<zmq::message_t> msg;
      while (zmq::recv_multipart(hub_in, std::back_inserter(msg), zmq::recv_flags::dontwait)) {
        if (msg.size() == 2 && msg[0].to_string_view() == "silent") {
          drop_engine(std::stoll(msg[1].to_string()), "stopped answering heartbeats");
        }
        msg.clear();
      }
    }
    if (items[2].revents & ZMQ_POLLIN) {
      // Copies of task traffic: [what, queue or engine, parts...]. A bounded batch per turn,
      // so registration, heartbeat news and queries are served while a backlog drains.
      drain_traffic(4096, std::chrono::milliseconds(50));
    }
    if (!removals.empty()) stop_drained();
    if (Steady::now() - last_flush > std::chrono::milliseconds(50) || unflushed >= 4096) flush();
  }
  flush();
  // Shutdown: tell every engine to exit.
  for (auto& [id, e] : engines) {
    net::Header stop;
    stop.type = net::MsgType::Stop;
    stop.msg_id = net::new_id();
    net::Envelope out = net::make_message(stop);
    out.route = net::copy_route(e.route);
    net::send(registration, sign(), out, true);
  }
}

// ---- heartbeat monitor ---------------------------------------------------------------------

void Controller::State::heart() {
  zmq::socket_t events(ctx, zmq::socket_type::sub);
  events.connect(kEvents);
  events.set(zmq::sockopt::subscribe, "");
  zmq::socket_t hub_in(ctx, zmq::socket_type::push);
  hub_in.connect(kHubIn);
  std::map<std::int64_t, Steady::time_point> last_seen;
  // Engines ping four times per period, so one whole period of silence is four lost pings in
  // a row: a dead engine, not a late packet.
  const auto limit = options.heartbeat;
  const auto tick = std::clamp<std::chrono::milliseconds>(
      options.heartbeat / 10, std::chrono::milliseconds(5), std::chrono::milliseconds(100));
  auto last_turn = Steady::now();
  zmq::pollitem_t items[] = {{heartbeat.handle(), 0, ZMQ_POLLIN, 0},
                             {events.handle(), 0, ZMQ_POLLIN, 0}};
  while (!stopping.load()) {
    if (!poll_once(items, 2, tick)) continue;
    const auto now = Steady::now();
    if (now - last_turn > limit / 2) {
      // This thread was not scheduled for a while (a loaded machine): the silence was ours,
      // not the engines', so nobody is blamed for it.
      spdlog::debug("heartbeat monitor stalled for {} ms",
                    std::chrono::duration_cast<std::chrono::milliseconds>(now - last_turn).count());
      for (auto& [id, seen] : last_seen)
        seen = std::max(seen, now - limit / 2);
    }
    last_turn = now;
    if (items[1].revents & ZMQ_POLLIN) {
      std::vector<zmq::message_t> msg;
      while (zmq::recv_multipart(events, std::back_inserter(msg), zmq::recv_flags::dontwait)) {
        const std::string_view what = msg.at(0).to_string_view();
        const std::int64_t id = std::stoll(msg.at(1).to_string());
        if (what == "down") {
          last_seen.erase(id);
        } else if (what == "known") {
          last_seen[id] = now + limit;  // a registering engine gets a period to start pinging
        } else if (what == "up") {
          auto [it, fresh] = last_seen.emplace(id, now);
          if (!fresh) it->second = std::max(it->second, now);
        }
        msg.clear();
      }
    }
    if (items[0].revents & ZMQ_POLLIN) {
      try {
        while (auto env = net::recv(heartbeat, sign(), zmq::recv_flags::dontwait)) {
          const net::Header h = net::decode_header(env->parts.at(0));
          auto it = last_seen.find(h.engine);
          if (it != last_seen.end()) {
            it->second = now;
            env->signature.reset();
            net::send(heartbeat, sign(), *env, true);  // echo: the engine knows we are alive
          } else {
            // Not registered here (this controller restarted, or dropped it): say so, and the
            // engine registers again under its id.
            net::Header r;
            r.type = net::MsgType::Ping;
            r.engine = h.engine;
            r.error = make_record(ErrorCode::engine, "ipp::EngineError",
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
    for (auto it = last_seen.begin(); it != last_seen.end();) {
      if (now - it->second > limit) {
        const std::string id = std::to_string(it->first);
        zmq::send_multipart(hub_in, std::array<zmq::const_buffer, 2>{
                                        zmq::buffer(std::string_view("silent")), zmq::buffer(id)});
        it = last_seen.erase(it);
      } else {
        ++it;
      }
    }
  }
}

// ---- schedulers ----------------------------------------------------------------------------

namespace {

/// What both schedulers share: their sockets, the copies of traffic for the hub, replies of
/// errors to clients, and the engines' events.
struct Relay {
  Relay(Controller::State& state, zmq::socket_t& client_socket, zmq::socket_t& worker_socket,
        const char* scheduler_name, const net::Signer& message_signer)
      : clients(client_socket),
        workers(worker_socket),
        events(state_ctx(state), zmq::socket_type::sub),
        monitor(state_ctx(state), zmq::socket_type::push),
        name(scheduler_name),
        signer(message_signer) {
    events.connect(kEvents);
    events.set(zmq::sockopt::subscribe, "");
    // Copies of the traffic for the hub. Never blocks and never drops (no high-water mark):
    // a slow hub costs memory, not throughput, and catches up.
    monitor.set(zmq::sockopt::sndhwm, 0);
    monitor.set(zmq::sockopt::linger, 0);
    monitor.connect(kMonitor);
  }
  static zmq::context_t& state_ctx(Controller::State& s);

  zmq::socket_t& clients;
  zmq::socket_t& workers;
  zmq::socket_t events;
  zmq::socket_t monitor;
  const char* name;
  const net::Signer& signer;

  /// [what, queue or engine, parts...] to the hub.
  void feed(std::string_view what, std::string_view tag, const std::vector<Buffer>& parts) {
    std::vector<zmq::message_t> frames;
    frames.reserve(2 + parts.size());
    frames.emplace_back(what.data(), what.size());
    frames.emplace_back(tag.data(), tag.size());
    for (const auto& p : parts)
      frames.push_back(net::share(p));
    zmq::send_multipart(monitor, frames, zmq::send_flags::dontwait);
  }
  void feed_dispatch(const std::string& msg_id, std::int64_t engine) {
    feed("dispatch", std::to_string(engine), {Buffer::copy(msg_id.data(), msg_id.size())});
  }

  /// Answers the request `parent` (from `client`) with a failed TaskReply.
  void reply_error(std::vector<zmq::message_t> client, const std::string& parent, ErrorRecord err) {
    net::Header r;
    r.type = net::MsgType::TaskReply;
    r.msg_id = net::new_id();
    r.parent_id = parent;
    r.engine = err.engine;
    r.task = err.task;
    r.completed = net::now_us();
    r.error = std::move(err);
    net::Envelope out = net::make_message(r);
    feed("reply", std::to_string(r.engine), out.parts);
    out.route = std::move(client);
    net::send(clients, signer, out, true);
  }

  /// Sends `env` (routed to its client) to `engine`, keeping the client's route in it.
  bool to_engine(net::Envelope& env, std::int64_t engine) {
    std::vector<zmq::message_t> route;
    route.reserve(env.route.size() + 1);
    route.emplace_back(fmt::format("e{}", engine));
    for (auto& r : env.route)
      route.push_back(std::move(r));
    env.route = std::move(route);
    const bool sent = net::send(workers, signer, env, true);
    env.route.erase(env.route.begin());
    return sent;
  }

  /// Receives one message from `sock`; malformed ones are logged and skipped.
  std::optional<std::pair<net::Envelope, net::Header>> receive(zmq::socket_t& sock) {
    while (true) {
      try {
        auto env = net::recv(sock, signer, zmq::recv_flags::dontwait);
        if (!env) return std::nullopt;
        net::Header h = net::decode_header(env->parts.at(0));
        return std::make_pair(std::move(*env), std::move(h));
      } catch (const ProtocolError& e) {
        spdlog::warn("{} dropped a message: {}", name, e.what());
      }
    }
  }

  /// Tells `engine` to abort or cancel `ids` (those it holds).
  void control_engine(std::int64_t engine, const std::string& what,
                      const std::vector<std::string>& ids) {
    net::Header c;
    c.type = net::MsgType::ControlRequest;
    c.msg_id = net::new_id();
    c.task = what;
    Value::List list;
    for (const auto& id : ids)
      list.emplace_back(id);
    c.info = Value(std::move(list));
    net::Envelope env = net::make_message(c);
    env.route.emplace_back(fmt::format("e{}", engine));
    net::send(workers, signer, env, true);
  }

  /// Answers a ControlRequest: which tasks were removed from the queue here, and which were
  /// passed on to the engines that hold them.
  void control_reply(net::Envelope& request, const net::Header& h,
                     const std::vector<std::string>& removed,
                     const std::vector<std::string>& signalled) {
    auto list = [](const std::vector<std::string>& ids) {
      Value::List l;
      for (const auto& id : ids)
        l.emplace_back(id);
      return Value(std::move(l));
    };
    net::Header r;
    r.type = net::MsgType::ControlReply;
    r.msg_id = net::new_id();
    r.parent_id = h.msg_id;
    r.info = Value::map({{"removed", list(removed)}, {"signalled", list(signalled)}});
    net::Envelope out = net::make_message(r);
    out.route = std::move(request.route);
    net::send(clients, signer, out, true);
  }

  /// Engine events: [up, id, slots], [down, id, reason], [drain, id, ...], [known, id, ...].
  template <typename Handler>
  void drain_events(Handler&& on_event) {
    std::vector<zmq::message_t> msg;
    while (zmq::recv_multipart(events, std::back_inserter(msg), zmq::recv_flags::dontwait)) {
      if (msg.size() >= 2) {
        const std::int64_t id = std::stoll(msg[1].to_string());
        std::string extra = msg.size() > 2 ? msg[2].to_string() : std::string();
        on_event(msg[0].to_string_view(), id, std::move(extra));
      }
      msg.clear();
    }
  }
};

zmq::context_t& Relay::state_ctx(Controller::State& s) {
  return s.ctx;
}

bool is_task_request(net::MsgType t) {
  return t == net::MsgType::ApplyRequest || t == net::MsgType::MapRequest ||
         t == net::MsgType::ExecuteRequest || t == net::MsgType::NamespaceRequest;
}

std::vector<std::string> control_ids(const net::Header& h) {
  std::vector<std::string> ids;
  if (h.info.kind() != Value::Kind::list) return ids;
  for (const auto& v : h.info.as_list()) {
    if (v.kind() == Value::Kind::string) ids.push_back(v.as_string());
  }
  return ids;
}

/// "(was killed by signal 9)": the reason an engine went down, for error messages.
std::string down_reason(const std::string& reason) {
  return reason.empty() || reason == "0" ? std::string() : reason;
}

}  // namespace

void Controller::State::direct_scheduler() {
  Relay relay(*this, client_direct, engine_direct, "direct scheduler", sign());
  struct Task {
    std::string msg_id;
    std::string task;
    std::int64_t engine = -1;
    net::Envelope envelope;  // the client's route; the request itself until dispatched
  };
  struct EngineLoad {
    bool registered = false;  // the hub announced it
    bool connected = false;   // it said hello on this channel, so its route exists
    bool draining = false;    // being removed: no new tasks
    std::set<std::string> outstanding;
    std::deque<Task> held;  // tasks that arrived before the hello
    [[nodiscard]] bool usable() const { return registered && connected; }
  };
  std::map<std::int64_t, EngineLoad> engines;
  std::unordered_map<std::string, Task> running;  // by msg_id: where each task is

  auto dispatch = [&](Task task, std::int64_t engine) {
    if (!relay.to_engine(task.envelope, engine)) {
      relay.reply_error(
          std::move(task.envelope.route), task.msg_id,
          engine_error(fmt::format("engine {} is unreachable", engine), engine, task.task));
      return;
    }
    task.engine = engine;
    task.envelope.parts.clear();  // sent: only the client's route is kept, for failures
    engines[engine].outstanding.insert(task.msg_id);
    relay.feed_dispatch(task.msg_id, engine);
    running.emplace(task.msg_id, std::move(task));
  };
  auto flush_held = [&](std::int64_t id) {
    auto it = engines.find(id);
    if (it == engines.end() || !it->second.usable()) return;
    auto held = std::move(it->second.held);
    it->second.held.clear();
    for (auto& t : held)
      dispatch(std::move(t), id);
  };
  auto on_event = [&](std::string_view what, std::int64_t id, std::string extra) {
    if (what == "up") {
      auto& e = engines[id];
      e.registered = true;
      e.draining = false;
      flush_held(id);
    } else if (what == "drain") {
      if (auto it = engines.find(id); it != engines.end()) it->second.draining = true;
    } else if (what == "down") {
      auto it = engines.find(id);
      if (it == engines.end()) return;
      const std::string reason = down_reason(extra);
      const std::string why = reason.empty() ? std::string() : " (" + reason + ")";
      for (auto& held : it->second.held) {
        relay.reply_error(std::move(held.envelope.route), held.msg_id,
                          engine_error(fmt::format("engine {} died before running task '{}'{}", id,
                                                   held.task, why),
                                       id, held.task));
      }
      for (const auto& m : it->second.outstanding) {
        auto t = running.find(m);
        if (t == running.end()) continue;
        relay.reply_error(std::move(t->second.envelope.route), m,
                          engine_error(fmt::format("engine {} died while running task '{}'{}", id,
                                                   t->second.task, why),
                                       id, t->second.task));
        running.erase(t);
      }
      engines.erase(it);
    }
  };
  auto on_control = [&](net::Envelope& env, const net::Header& h) {
    std::vector<std::string> removed, signalled;
    std::map<std::int64_t, std::vector<std::string>> per_engine;
    for (const auto& id : control_ids(h)) {
      if (auto t = running.find(id); t != running.end()) {
        per_engine[t->second.engine].push_back(id);
        signalled.push_back(id);
        continue;
      }
      for (auto& [eid, e] : engines) {
        auto held = std::find_if(e.held.begin(), e.held.end(),
                                 [&](const Task& t) { return t.msg_id == id; });
        if (held == e.held.end()) continue;
        ErrorRecord err =
            make_record(ErrorCode::aborted, "ipp::TaskAborted",
                        fmt::format("task '{}' was aborted before it ran", held->task));
        err.task = held->task;
        err.engine = eid;
        relay.reply_error(std::move(held->envelope.route), id, std::move(err));
        e.held.erase(held);
        removed.push_back(id);
        break;
      }
    }
    for (const auto& [engine, ids] : per_engine)
      relay.control_engine(engine, h.task, ids);
    relay.control_reply(env, h, removed, signalled);
  };

  zmq::pollitem_t items[] = {{client_direct.handle(), 0, ZMQ_POLLIN, 0},
                             {engine_direct.handle(), 0, ZMQ_POLLIN, 0},
                             {relay.events.handle(), 0, ZMQ_POLLIN, 0}};
  while (!stopping.load()) {
    if (!poll_once(items, 3, std::chrono::milliseconds(100))) continue;
    if (items[2].revents & ZMQ_POLLIN) relay.drain_events(on_event);
    if (items[0].revents & ZMQ_POLLIN) {
      while (auto in = relay.receive(client_direct)) {
        auto& [env, h] = *in;
        if (h.type == net::MsgType::ControlRequest) {
          on_control(env, h);
          continue;
        }
        if (!is_task_request(h.type)) {
          spdlog::warn("direct scheduler: unexpected {}", net::to_string(h.type));
          continue;
        }
        relay.feed("submit", "direct", env.parts);
        Task t{h.msg_id, h.task, -1, std::move(env)};
        auto e = engines.find(h.target);
        if (e != engines.end() && e->second.registered && e->second.draining) {
          relay.reply_error(
              std::move(t.envelope.route), h.msg_id,
              engine_error(
                  fmt::format("engine {} is being removed and takes no new tasks", h.target),
                  h.target, h.task));
        } else if (e != engines.end() && e->second.registered && !e->second.connected) {
          e->second.held.push_back(std::move(t));  // until its hello arrives
        } else if (e == engines.end() || !e->second.registered) {
          std::string ids;
          for (const auto& [id, rec] : engines) {
            if (rec.registered) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
          }
          relay.reply_error(
              std::move(t.envelope.route), h.msg_id,
              engine_error(fmt::format("no engine {} is registered (engines: [{}])", h.target, ids),
                           h.target, h.task));
        } else {
          dispatch(std::move(t), h.target);
        }
      }
    }
    if (items[1].revents & ZMQ_POLLIN) {
      while (auto in = relay.receive(engine_direct)) {
        auto& [env, h] = *in;
        if (h.type == net::MsgType::Ping) {
          engines[h.engine].connected = true;
          flush_held(h.engine);
          continue;
        }
        auto t = running.find(h.parent_id);
        if (t == running.end()) {
          // Its client was told the engine died, or it predates a controller restart: the
          // hub records the result all the same.
          relay.feed("reply", std::to_string(h.engine), env.parts);
          continue;
        }
        const std::int64_t engine = t->second.engine;
        running.erase(t);
        if (auto rec = engines.find(engine); rec != engines.end())
          rec->second.outstanding.erase(h.parent_id);
        relay.feed("reply", std::to_string(engine), env.parts);
        env.route.erase(env.route.begin());  // the engine's identity
        net::send(client_direct, sign(), env, true);
      }
    }
  }
}

void Controller::State::balanced_scheduler() {
  Relay relay(*this, client_balanced, engine_balanced, "load-balanced scheduler", sign());
  sched::Balancer balancer(
      {.scheme = sched::parse_scheme(options.scheme),
       .hwm = options.hwm,
       .seed = static_cast<std::uint64_t>(Steady::now().time_since_epoch().count()),
       .remember = std::size_t{1} << 20});
  struct Task {
    net::Envelope envelope;  // the client's route, and the request while it may be sent again
    bool keep = false;       // retries allowed: keep the request after dispatch
  };
  std::unordered_map<std::string, Task> tasks;
  struct EngineState {
    bool registered = false;
    bool connected = false;
    int slots = 1;
  };
  std::map<std::int64_t, EngineState> engines;

  // Sends what the balancer decided: tasks to engines, failures to their clients.
  auto pump = [&] {
    balancer.schedule();
    for (;;) {
      auto dispatches = balancer.take_dispatches();
      auto failures = balancer.take_failures();
      if (dispatches.empty() && failures.empty()) break;
      for (auto& f : failures) {
        auto it = tasks.find(f.msg_id);
        if (it == tasks.end()) continue;
        relay.reply_error(std::move(it->second.envelope.route), f.msg_id, std::move(f.error));
        tasks.erase(it);
      }
      for (const auto& d : dispatches) {
        auto it = tasks.find(d.msg_id);
        if (it == tasks.end()) continue;
        Task& t = it->second;
        if (!relay.to_engine(t.envelope, d.engine)) {
          // Its route is gone: it died a moment ago, and its down event is on the way.
          if (balancer.finished(d.msg_id, false, Steady::now()) == sched::Balancer::Finish::done) {
            relay.reply_error(std::move(t.envelope.route), d.msg_id,
                              engine_error(fmt::format("engine {} is unreachable", d.engine),
                                           d.engine, std::string()));
            tasks.erase(it);
          }
          continue;
        }
        relay.feed_dispatch(d.msg_id, d.engine);
        if (!t.keep) t.envelope.parts.clear();
      }
      balancer.schedule();
    }
  };
  auto on_event = [&](std::string_view what, std::int64_t id, std::string extra) {
    if (what == "up") {
      auto& e = engines[id];
      e.registered = true;
      e.slots = std::max(1, std::atoi(extra.c_str()));
      if (e.connected) balancer.engine_up(id, e.slots);
    } else if (what == "drain") {
      balancer.engine_drain(id);
    } else if (what == "down") {
      engines.erase(id);
      balancer.engine_down(id, down_reason(extra), Steady::now());
    }
  };
  auto on_control = [&](net::Envelope& env, const net::Header& h) {
    std::vector<std::string> removed, signalled;
    std::map<std::int64_t, std::vector<std::string>> per_engine;
    for (const auto& id : control_ids(h)) {
      if (balancer.abort(id)) {
        removed.push_back(id);
      } else if (auto engine = balancer.engine_of(id)) {
        per_engine[*engine].push_back(id);
        signalled.push_back(id);
      }
    }
    for (const auto& [engine, ids] : per_engine)
      relay.control_engine(engine, h.task, ids);
    relay.control_reply(env, h, removed, signalled);
  };

  zmq::pollitem_t items[] = {{client_balanced.handle(), 0, ZMQ_POLLIN, 0},
                             {engine_balanced.handle(), 0, ZMQ_POLLIN, 0},
                             {relay.events.handle(), 0, ZMQ_POLLIN, 0}};
  while (!stopping.load()) {
    auto wait = std::chrono::milliseconds(100);
    if (auto next = balancer.next_deadline()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*next - Steady::now());
      wait = std::clamp(left, std::chrono::milliseconds(0), wait);
    }
    const bool any = poll_once(items, 3, wait);
    balancer.expire(Steady::now());
    if (!any) {
      pump();
      continue;
    }
    if (items[2].revents & ZMQ_POLLIN) relay.drain_events(on_event);
    if (items[0].revents & ZMQ_POLLIN) {
      while (auto in = relay.receive(client_balanced)) {
        auto& [env, h] = *in;
        if (h.type == net::MsgType::ControlRequest) {
          on_control(env, h);
          continue;
        }
        if (!is_task_request(h.type)) {
          spdlog::warn("load-balanced scheduler: unexpected {}", net::to_string(h.type));
          continue;
        }
        net::compact(env);  // it may wait here for long: hold no shared receive buffer
        relay.feed("submit", "balanced", env.parts);
        tasks[h.msg_id] = Task{std::move(env), h.flags.retries > 0};
        std::optional<Steady::duration> timeout;
        if (h.timeout_ms > 0) timeout = std::chrono::milliseconds(h.timeout_ms);
        balancer.submit(h.msg_id, h.task, h.flags, timeout, Steady::now());
      }
    }
    if (items[1].revents & ZMQ_POLLIN) {
      while (auto in = relay.receive(engine_balanced)) {
        auto& [env, h] = *in;
        if (h.type == net::MsgType::Ping) {
          auto& e = engines[h.engine];
          e.connected = true;
          if (e.registered) balancer.engine_up(h.engine, e.slots);
          continue;
        }
        const auto verdict = balancer.finished(h.parent_id, !h.error, Steady::now());
        if (verdict == sched::Balancer::Finish::retry) {
          spdlog::info("task {} failed on engine {}; retrying elsewhere", h.parent_id, h.engine);
          continue;
        }
        relay.feed("reply", std::to_string(h.engine), env.parts);
        auto t = tasks.find(h.parent_id);
        if (verdict == sched::Balancer::Finish::stale || t == tasks.end()) continue;
        env.route = std::move(t->second.envelope.route);  // back to its client
        tasks.erase(t);
        net::send(client_balanced, sign(), env, true);
      }
    }
    pump();
  }
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
  net::ConnectionInfo client, engine;
  if (options_.restore) {
    // The same ports and key: engines and clients of the old controller reconnect by themselves.
    client = net::read_connection_file(options_.profile_dir / net::kClientFile);
    engine = net::read_connection_file(options_.profile_dir / net::kEngineFile);
    if (client.key != engine.key)
      throw UsageError("restore: the client and engine connection files hold different keys");
  } else {
    client.key = engine.key = net::Signer::new_key();
  }
  s.signer = std::make_unique<net::Signer>(client.key);
  client.controller_pid = engine.controller_pid = ::getpid();
  for (auto* sock : {&s.registration, &s.heartbeat, &s.client_direct, &s.engine_direct,
                     &s.client_balanced, &s.engine_balanced}) {
    sock->set(zmq::sockopt::linger, 0);
  }
  // Task channels queue without limit in ZeroMQ: a full pipe would make a router drop a reply
  // (to a client) or refuse a task (to an engine). How much reaches an engine is the
  // schedulers' decision (--hwm), and a client holds a result for every task it submitted.
  for (auto* sock : {&s.client_direct, &s.engine_direct, &s.client_balanced, &s.engine_balanced}) {
    sock->set(zmq::sockopt::sndhwm, 0);
    sock->set(zmq::sockopt::rcvhwm, 0);
  }
  s.engine_direct.set(zmq::sockopt::router_mandatory, true);
  s.engine_balanced.set(zmq::sockopt::router_mandatory, true);
  // Fresh: ports chosen by the OS. Restored: the ports in the files.
  auto bind = [&](zmq::socket_t& sock, const net::ConnectionInfo& info, const char* channel) {
    if (!options_.restore) return bind_any(sock, options_.ip);
    const std::string& ep = info.endpoint(channel);
    try {
      sock.bind(ep);
    } catch (const zmq::error_t& e) {
      throw UsageError(
          fmt::format("restore: cannot listen on {} again ({}): is the old "
                      "controller still running?",
                      ep, e.what()));
    }
    return ep;
  };
  const auto reg = bind(s.registration, client, "registration");
  client.endpoints["registration"] = engine.endpoints["registration"] = reg;
  engine.endpoints["heartbeat"] = bind(s.heartbeat, engine, "heartbeat");
  client.endpoints["direct"] = bind(s.client_direct, client, "direct");
  engine.endpoints["engine_direct"] = bind(s.engine_direct, engine, "engine_direct");
  client.endpoints["balanced"] = bind(s.client_balanced, client, "balanced");
  engine.endpoints["engine_balanced"] = bind(s.engine_balanced, engine, "engine_balanced");
  net::write_connection_file(options_.profile_dir / net::kEngineFile, engine);
  net::write_connection_file(options_.profile_dir / net::kClientFile, client);

  s.threads.emplace_back([&s] { s.hub(); });
  s.threads.emplace_back([&s] { s.heart(); });
  s.threads.emplace_back([&s] { s.direct_scheduler(); });
  s.threads.emplace_back([&s] { s.balanced_scheduler(); });
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
}

void Controller::stop() noexcept {
  if (state_) state_->stopping.store(true);
}

}  // namespace ipp
