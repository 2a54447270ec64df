#include "hub_queries.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/codec.hpp"
#include "ipp/net/message.hpp"
#include "replies.hpp"

namespace ipp::ctrl {

namespace {

/// `key` of a query's info map (null when absent or when the info is no map).
Value info_field(const net::Header& h, const char* key) {
  if (h.info.kind() != Value::Kind::map) return Value();
  const auto& m = h.info.as_map();
  auto it = m.find(key);
  return it == m.end() ? Value() : it->second;
}

/// Parts of a stored payload, as buffers for a reply.
Payload stored_payload(const std::string& blob) {
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
}

}  // namespace

const HubQueries::Entry HubQueries::kTable[] = {
    {"result", &HubQueries::stored},
    {"request", &HubQueries::stored},
    {"result_status", &HubQueries::result_status},
    {"history", &HubQueries::history},
    {"db_query", &HubQueries::db_query},
    {"purge", &HubQueries::purge},
    {"ids", &HubQueries::ids},
    {"engines", &HubQueries::engines},
    {"queue_status", &HubQueries::queue_status},
    {"plugins", &HubQueries::plugins},
    {"engine_exited", &HubQueries::engine_exited},
    {"remove_engines", &HubQueries::remove_engines},
    {"lost", &HubQueries::lost},
    {"shutdown", &HubQueries::shutdown},
};

std::string HubQueries::names() {
  std::string out;
  for (const auto& e : kTable)
    out += (out.empty() ? "" : ", ") + std::string(e.name);
  return out;
}

std::optional<net::Envelope> HubQueries::answer(net::Envelope& env, const net::Header& h) {
  net::Header r = reply_header(net::MsgType::QueryReply, h.msg_id);
  r.session = deps_.session;
  r.completed = net::now_us();  // the controller's time: clients measure their clock against it
  Payload payload;
  try {
    const Entry* entry = nullptr;
    for (const auto& e : kTable) {
      if (e.name == h.task) entry = &e;
    }
    if (entry == nullptr) {
      r.error = make_error_record(ErrorCode::usage, fmt::format("unknown query '{}'", h.task));
    } else {
      Query q{env, h, r, payload};
      if (!(this->*entry->handler)(q)) return std::nullopt;
    }
  } catch (const Error& e) {
    r.error = make_error_record(e.code(), e.what());
    payload = {};
  } catch (const std::exception& e) {
    // A malformed query (wrong shapes in its info): an answer, never silence.
    r.error = make_error_record(ErrorCode::usage,
                                fmt::format("malformed '{}' query: {}", h.task, e.what()));
    payload = {};
  }
  net::Envelope out;
  try {
    out = net::make_message(r, std::move(payload));
  } catch (const Error& e) {
    r.info = Value();
    r.error = make_error_record(
        ErrorCode::usage,
        fmt::format("the answer to '{}' is too large to send: {}", h.task, e.what()));
    out = net::make_message(r);
  }
  out.route = std::move(env.route);
  return out;
}

hub::TaskDb& HubQueries::need_db() {
  if (deps_.db == nullptr)
    throw UsageError("this controller keeps no task database (started with --db none)");
  deps_.catch_up();  // answer from everything sent so far
  deps_.recorder.flush();
  return *deps_.db;
}

bool HubQueries::stored(Query& q) {
  const std::string id = info_field(q.h, "msg_id").as_string();
  auto rec = need_db().get(id);
  if (!rec)
    throw Error(ErrorCode::name_error,
                fmt::format("no task with msg_id '{}' in the task database", id));
  q.reply.info = hub::to_value(*rec);
  auto not_kept = [&](const char* what, std::int64_t size) {
    return UsageError(fmt::format(
        "the {} of task {} ({} bytes) were larger than the hub keeps (--db-max-payload {})", what,
        id, size, deps_.db_max_payload));
  };
  if (q.h.task == "request") {
    if (rec->args.empty() && rec->args_size > 0) throw not_kept("arguments", rec->args_size);
    q.payload = stored_payload(rec->args);
  } else if (rec->status == "ok") {
    if (rec->result.empty() && rec->result_size > 0) throw not_kept("results", rec->result_size);
    q.payload = stored_payload(rec->result);
  } else if (rec->error) {
    q.reply.info.as_map()["failure"] =
        Value::map({{"code", static_cast<std::int64_t>(rec->error->code)},
                    {"description", rec->error->describe()}});
    q.reply.error = rec->error;
  }
  return true;
}

bool HubQueries::result_status(Query& q) {
  Value::List pending, completed, unknown;
  auto& tasks = need_db();
  for (const auto& id : info_field(q.h, "msg_ids").as<std::vector<std::string>>()) {
    auto rec = tasks.get(id);
    if (!rec)
      unknown.emplace_back(id);
    else if (rec->status == "pending" || rec->status == "running")
      pending.emplace_back(id);
    else
      completed.emplace_back(id);
  }
  q.payload = encode(Value::map({{"pending", Value(std::move(pending))},
                                 {"completed", Value(std::move(completed))},
                                 {"unknown", Value(std::move(unknown))}}));
  return true;
}

bool HubQueries::history(Query& q) {
  const Value limit = info_field(q.h, "limit");
  q.payload = encode(Value(need_db().history(limit.is_null() ? 0 : limit.as_int())));
  return true;
}

bool HubQueries::db_query(Query& q) {
  std::vector<hub::Condition> conditions;
  const Value where = info_field(q.h, "where");
  if (!where.is_null()) {
    for (const auto& c : where.as_list())
      conditions.push_back({c[0].as_string(), c[1].as_string(), c[2]});
  }
  const Value limit = info_field(q.h, "limit");
  const Value keys = info_field(q.h, "keys");
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
  q.payload = encode(Value(std::move(rows)));
  return true;
}

bool HubQueries::purge(Query& q) {
  auto& tasks = need_db();
  std::int64_t n = 0;
  if (const Value ids = info_field(q.h, "msg_ids"); !ids.is_null())
    n = tasks.purge(ids.as<std::vector<std::string>>());
  else if (const Value before = info_field(q.h, "before"); !before.is_null())
    n = tasks.purge_before(before.as_int());
  else if (info_field(q.h, "all") == Value(true))
    n = tasks.purge_all();
  else
    throw UsageError("purge needs msg_ids, before or all");
  q.reply.info = Value::map({{"purged", n}});
  return true;
}

bool HubQueries::ids(Query& q) {
  q.reply.info = deps_.registry.ready_ids();
  return true;
}

bool HubQueries::engines(Query& q) {
  q.reply.info = deps_.registry.describe();
  return true;
}

bool HubQueries::queue_status(Query& q) {
  deps_.catch_up();  // counted from everything sent so far
  q.reply.info = deps_.registry.queue_status();
  // The task database's trouble, when it has any: writes refused and waiting, or lost.
  if (auto health = deps_.recorder.health()) q.reply.info.as_map()["task_db"] = *health;
  return true;
}

bool HubQueries::plugins(Query& q) {
  q.reply.info = deps_.plugins.describe();
  return true;
}

// From the supervising launcher: an engine process ended. Unregister it at once instead of
// waiting for its heartbeats to stop.
bool HubQueries::engine_exited(Query& q) {
  const std::int64_t pid = info_field(q.h, "pid").as_int();
  const std::string reason = info_field(q.h, "reason").as_string();
  const Value note = info_field(q.h, "note");
  const Value crash = info_field(q.h, "crash");
  const Value host = info_field(q.h, "host");
  const std::int64_t id = deps_.registry.by_pid(
      pid, host.kind() == Value::Kind::string ? host.as_string() : std::string());
  if (id >= 0) deps_.drop_engine(id, reason, crash == Value(true));
  if (!note.is_null()) spdlog::error("engine process {}: {}", pid, note.as_string());
  q.reply.info = Value::map({{"engine", id}});
  return true;
}

// From a client that saw the controller restart: the tasks it had in flight, as
// {"tasks": [[msg_id, kind, task, submitted], ...]}. Those the dead controller never recorded
// are recorded now as failed by the restart, so that every task a client sent has a row.
bool HubQueries::lost(Query& q) {
  deps_.catch_up();  // a task the restored controller was given is recorded as such
  std::int64_t recorded = 0;
  const Value tasks = info_field(q.h, "tasks");
  for (const auto& t : tasks.is_null() ? Value::List{} : tasks.as_list()) {
    const auto id = net::TaskId::parse(t[0].as_string());
    const std::string& task = t[2].as_string();
    if (!id || task.size() > net::kMaxTaskNameBytes)
      throw UsageError("lost: a task's msg_id or name is malformed");
    recorded += deps_.recorder.lost(*id, t[1].as_string(), task, q.h.session, t[3].as_int());
  }
  if (recorded > 0)
    spdlog::info("hub: {} task(s) lost by the restart recorded as failed", recorded);
  q.reply.info = Value::map({{"recorded", recorded}});
  return true;
}

bool HubQueries::remove_engines(Query& q) {
  deps_.registry.start_removal(net::copy_route(q.env.route), q.h.msg_id,
                               info_field(q.h, "ids").as<std::vector<std::int64_t>>(),
                               EngineRegistry::Clock::now());
  return false;  // answered when they are gone
}

bool HubQueries::shutdown(Query&) {
  deps_.shutdown();
  return true;
}

}  // namespace ipp::ctrl
