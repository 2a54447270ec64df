#include "hub_recorder.hpp"

#include <algorithm>
#include <thread>

#include <spdlog/spdlog.h>

namespace ipp::ctrl {

namespace {

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

/// A header copied by a scheduler, read in place when it is aligned.
net::Header header_of(const Buffer& b) {
  return net::decode_header(b.aligned(8));
}

const char* status_of(const ErrorRecord& e) {
  switch (e.code) {
    case ErrorCode::engine:
      return "engine_died";
    case ErrorCode::aborted:
      return "aborted";
    case ErrorCode::cancelled:
      return "cancelled";
    default:
      return "error";
  }
}

}  // namespace

void HubRecorder::qualify(hub::TaskRecord& r) {
  // A task called by its bare name is recorded by the name it ran under (`arith.mul`), so
  // that queries find a plugin's tasks (`task glob arith.*`).
  if (!r.plugin.empty() && r.task.find('.') == std::string::npos) r.task = r.plugin + "." + r.task;
}

HubRecorder::HubRecorder(hub::TaskDb* db, Options options, PluginOf plugin_of)
    : db_(db), options_(options), plugin_of_(std::move(plugin_of)) {
  writes_.reserve(8192);
}

std::size_t HubRecorder::fail_unfinished() {
  if (db_ == nullptr) return 0;
  auto unfinished = db_->query({{"status", "in", Value::list({"pending", "running"})}});
  for (auto& r : unfinished) {
    r.status = "error";
    r.error = make_error_record(
        ErrorCode::connection,
        "the controller restarted while this task was in flight; no result has arrived", r.task,
        r.engine);
    db_->update(r);
  }
  db_->flush();
  return unfinished.size();
}

bool HubRecorder::lost(net::TaskId id, std::string_view kind, const std::string& task,
                       const std::string& client, std::int64_t submitted) {
  if (db_ == nullptr || writes_.count(id) != 0 || db_->get(id.str())) return false;
  static constexpr std::string_view kKinds[] = {"apply", "map", "execute", "push", "pull", "clear"};
  Write& w = write_for(id);
  w.fresh = true;
  hub::TaskRecord& r = w.record;
  r.client = client;
  r.kind =
      std::find(std::begin(kKinds), std::end(kKinds), kind) != std::end(kKinds) ? kind : "apply";
  r.task = task;
  r.submitted = submitted;
  r.received = net::now_us();
  r.status = "error";
  r.error = make_error_record(ErrorCode::connection,
                              "the controller restarted before it recorded this task; no "
                              "result has arrived",
                              task);
  return true;
}

HubRecorder::Write& HubRecorder::write_for(net::TaskId id) {
  if (options_.delay.count() > 0) std::this_thread::sleep_for(options_.delay);
  ++unflushed_;
  if (failing_ && writes_.size() >= kMaxKept && writes_.count(id) == 0) {
    ++lost_;  // the database has refused writes for long: memory stays bounded
    scratch_ = {};
    return scratch_;
  }
  Write& w = writes_[id];
  if (w.record.msg_id.empty()) w.record.msg_id = id.str();
  return w;
}

// Payload parts from `from` on, unless larger than the hub keeps: a small payload packed into
// `packed`, a large one as the parts themselves (shared, not copied: the database writes them
// where it keeps them). `size` gets their total either way.
void HubRecorder::keep_parts(const std::vector<Buffer>& msg, std::size_t from, std::int64_t& size,
                             std::string& packed, std::vector<Buffer>& parts) const {
  size = 0;
  for (std::size_t i = from; i < msg.size(); ++i)
    size += static_cast<std::int64_t>(msg[i].size());
  packed.clear();
  parts.clear();
  if (size > options_.max_payload) return;
  parts.assign(msg.begin() + static_cast<std::ptrdiff_t>(from), msg.end());
  if (size < hub::TaskDb::kFilePayloadsAbove) {
    packed = hub::pack_parts(parts);
    parts.clear();
  }
}

void HubRecorder::take(TrafficFeed& feed) {
  if (backlog_.empty()) {
    backlog_ = feed.take();
  } else {
    for (auto& t : feed.take())
      backlog_.push_back(std::move(t));
  }
}

bool HubRecorder::record_some(std::size_t limit, Clock::duration budget,
                              std::vector<EngineLoadChange>& loads) {
  const auto until = Clock::now() + budget;
  for (std::size_t n = 0; !backlog_.empty(); ++n) {
    if (n >= limit || Clock::now() >= until) return true;
    try {
      record(backlog_.front(), loads);
    } catch (const std::exception& e) {
      if (std::uint64_t more = 0; unrecorded_.allow(more))
        spdlog::warn("hub: a traffic copy was not recorded: {}{}", e.what(),
                     LogLimiter::more(more));
    }
    backlog_.pop_front();
  }
  return false;
}

void HubRecorder::record(const Traffic& copy, std::vector<EngineLoadChange>& loads) {
  if (copy.kind == Traffic::Kind::dispatch) {
    loads.push_back({EngineLoadChange::Kind::dispatched, copy.engine, copy.msg_id});
    if (db_ == nullptr) return;
    hub::TaskRecord& r = write_for(copy.msg_id).record;
    r.engine = copy.engine;
    r.status = "running";
    return;
  }
  const std::vector<Buffer> msg = copy.message.unpack().parts;
  if (msg.empty()) return;
  if (copy.kind == Traffic::Kind::submit)
    on_submit(copy, msg);
  else
    on_reply(copy, msg, loads);
}

void HubRecorder::on_submit(const Traffic& copy, const std::vector<Buffer>& msg) {
  if (db_ == nullptr) return;
  const net::Header h = header_of(msg[0]);
  const auto id = net::TaskId::parse(h.msg_id);
  if (!id) return;  // the schedulers pass on no request with a malformed id
  Write& w = write_for(*id);
  w.fresh = true;
  hub::TaskRecord& r = w.record;
  r.client = h.session;
  r.queue = copy.balanced ? "balanced" : "direct";
  r.kind = std::string(kind_of(h));
  r.task = h.task;
  if (h.type == net::MsgType::ApplyRequest || h.type == net::MsgType::MapRequest) {
    std::tie(r.plugin, r.plugin_hash) = plugin_of_(h.task);
    qualify(r);
  }
  r.target = h.target;
  r.bind = h.bind;
  keep_parts(msg, 1, r.args_size, r.args, r.args_parts);
  // In the controller's clock, as the engines' start and end are: never after the start.
  r.submitted = copy.received_us != 0 ? copy.received_us
                : h.submitted != 0    ? h.submitted
                                      : net::now_us();
  if (h.info.kind() == Value::Kind::map && h.info.as_map().contains("resubmitted_from"))
    r.resubmitted_from = h.info["resubmitted_from"].as_string();
}

void HubRecorder::on_reply(const Traffic& copy, const std::vector<Buffer>& msg,
                           std::vector<EngineLoadChange>& loads) {
  const net::Header h = header_of(msg[0]);
  const auto id = net::TaskId::parse(h.parent_id);
  if (!id) return;  // a reply to no task the schedulers passed on
  loads.push_back({EngineLoadChange::Kind::answered, copy.engine, *id});
  if (db_ == nullptr) return;
  const Late late = copy.late ? late_reply(*id, !h.error) : Late::record;
  if (late == Late::skip) {
    if (std::uint64_t more = 0; late_.allow(more))
      spdlog::info(
          "hub: a late reply of task {} from engine {} is not recorded: its client was "
          "given an outcome already{}",
          h.parent_id, copy.engine, LogLimiter::more(more));
    return;
  }
  if (copy.late && h.error && late_failures_.insert(*id).second) {
    late_failures_order_.push_back(*id);
    if (late_failures_order_.size() > kLateFailuresKept) {
      late_failures_.erase(late_failures_order_.front());
      late_failures_order_.pop_front();
    }
  }
  Write& w = write_for(*id);
  if (late == Late::record_new) {
    // Never recorded here (its controller died before recording it): the reply is all there
    // is of it.
    w.fresh = true;
    w.record.task = h.task;
    w.record.submitted = h.submitted;
    w.record.kind = "apply";
  }
  hub::TaskRecord& r = w.record;
  if (h.engine >= 0) r.engine = h.engine;
  r.started = h.started;
  r.completed = h.completed;
  // The engine's start, in the controller's clock, is an estimate within half a round trip:
  // the time the task was received is never after it (TaskDb::update does the same).
  if (r.started > 0 && r.submitted > r.started) r.submitted = r.started;
  r.received = net::now_us();
  if (h.error) {
    r.status = status_of(*h.error);
    r.error = h.error;
    if (r.plugin.empty()) r.plugin = h.error->plugin;
  } else {
    r.status = "ok";
    r.error.reset();  // a late reply after a restore replaces the restart's error
    keep_parts(msg, 1, r.result_size, r.result, r.result_parts);
  }
  // Submitted before any engine described its plugin: named now that one ran it (the
  // database names only tasks that run a plugin's task).
  if (r.plugin.empty() && !h.task.empty() && (!w.fresh || r.kind == "apply" || r.kind == "map")) {
    std::tie(r.plugin, r.plugin_hash) = plugin_of_(h.task);
    qualify(r);
  }
}

HubRecorder::Late HubRecorder::late_reply(net::TaskId id, bool ok) {
  // What the record says now: its write waiting here, else its row.
  std::string status;
  std::optional<ErrorRecord> error;
  if (auto w = writes_.find(id); w != writes_.end() && !w->second.record.status.empty()) {
    status = w->second.record.status;
    error = w->second.record.error;
  } else if (auto row = db_->get(id.str())) {
    status = row->status;
    error = row->error;
  } else {
    return writes_.count(id) != 0 ? Late::record : Late::record_new;
  }
  if (status == "pending" || status == "running") return Late::record;
  if (ok && status != "ok" && late_failures_.count(id) != 0) return Late::record;
  // Failed by a controller's restart, no result having come: the reply repairs it.
  return status == "error" && error && error->code == ErrorCode::connection ? Late::record
                                                                            : Late::skip;
}

void HubRecorder::write_all() {
  for (const auto& [msg_id, w] : writes_) {
    if (w.fresh)
      db_->put(w.record);
    else
      db_->update(w.record);
  }
  db_->flush();
}

bool HubRecorder::write_one_by_one() {
  for (auto it = writes_.begin(); it != writes_.end();) {
    try {
      if (it->second.fresh)
        db_->put(it->second.record);
      else
        db_->update(it->second.record);
      db_->flush();
    } catch (const hub::WriteError& e) {
      db_->rollback();
      if (e.transient()) return false;
      ++lost_;
      if (std::uint64_t more = 0; refusals_.allow(more))
        spdlog::error("hub: task database: {}; the record is dropped{}", e.what(),
                      LogLimiter::more(more));
    } catch (const std::exception&) {
      db_->rollback();
      return false;
    }
    it = writes_.erase(it);
  }
  return true;
}

void HubRecorder::failed(const std::string& why, Clock::time_point now) {
  if (!failing_) {
    failing_since_ = now;
    retry_pause_ = kRetryFirst;
    spdlog::error("hub: task database: {}; {} write(s) kept, tried again until it takes them", why,
                  writes_.size());
  } else if (std::uint64_t more = 0; refusals_.allow(more)) {
    spdlog::error("hub: task database still refuses: {}; {} write(s) waiting{}", why,
                  writes_.size(), LogLimiter::more(more));
  }
  failing_ = true;
  last_error_ = why;
  retry_at_ = now + retry_pause_;
  retry_pause_ = std::min<Clock::duration>(retry_pause_ * 2, kRetryMost);
}

void HubRecorder::flush(Clock::time_point now) {
  last_flush_ = now;
  unflushed_ = 0;
  if (db_ == nullptr || writes_.empty()) return;
  if (failing_ && now < retry_at_) return;
  try {
    write_all();
  } catch (const hub::WriteError& e) {
    // Never past the hub: nothing of the transaction stays, and the writes wait.
    db_->rollback();
    if (e.transient() || !write_one_by_one()) {
      failed(e.what(), now);
      return;
    }
  } catch (const std::exception& e) {
    db_->rollback();
    failed(e.what(), now);
    return;
  }
  if (failing_) {
    spdlog::info("hub: task database takes writes again after {:.1f} s",
                 std::chrono::duration<double>(now - failing_since_).count());
    failing_ = false;
  }
  writes_.clear();
}

std::optional<Value> HubRecorder::health(Clock::time_point now) const {
  if (!failing_ && lost_ == 0) return std::nullopt;
  return Value::map({{"ok", !failing_},
                     {"error", failing_ ? last_error_ : std::string()},
                     {"failing_for_s",
                      failing_ ? std::chrono::duration<double>(now - failing_since_).count() : 0.0},
                     {"writes_waiting", static_cast<std::int64_t>(writes_.size())},
                     {"writes_lost", static_cast<std::int64_t>(lost_)}});
}

bool HubRecorder::flush_due(Clock::time_point now) const {
  return now - last_flush_ > kFlushEvery || unflushed_ >= kFlushAfter;
}

std::optional<HubRecorder::Clock::time_point> HubRecorder::next_flush() const {
  if (writes_.empty()) return std::nullopt;
  return last_flush_ + kFlushEvery;
}

}  // namespace ipp::ctrl
