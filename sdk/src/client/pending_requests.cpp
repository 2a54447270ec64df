#include "pending_requests.hpp"

#include <fmt/format.h>

#include "ipp/net/message.hpp"

namespace ipp::detail {

net::TaskId PendingRequests::key(const std::string& msg_id) {
  if (auto id = net::TaskId::parse(msg_id)) return *id;
  throw UsageError(fmt::format("request id '{}' is not 32 lowercase hex digits", msg_id));
}

PendingRequests::Table::iterator PendingRequests::find(std::string_view msg_id) {
  auto id = net::TaskId::parse(msg_id);
  return id ? table_.find(*id) : table_.end();
}

PendingRequests::Pending PendingRequests::take(std::string_view msg_id) {
  std::lock_guard lock(mutex_);
  auto it = find(msg_id);
  if (it == table_.end()) return {};
  Pending p = std::move(it->second);
  table_.erase(it);
  if (table_.empty()) none_left_.notify_all();
  return p;
}

void PendingRequests::add(std::shared_ptr<Slot> slot, std::shared_ptr<ResultState> owner) {
  const net::TaskId id = key(slot->msg_id);
  std::lock_guard lock(mutex_);
  if (slot->channel >= 0 && !slot->own_connection && net::is_task_request(slot->type))
    sent_.push_back({slot->submitted, slot->channel, id});
  table_.emplace(id, Pending{std::move(slot), std::move(owner)});
}

bool PendingRequests::add_if_none(std::shared_ptr<Slot> slot, std::shared_ptr<ResultState> owner) {
  const net::TaskId id = key(slot->msg_id);
  std::lock_guard lock(mutex_);
  if (!table_.empty()) return false;
  table_.emplace(id, Pending{std::move(slot), std::move(owner)});
  return true;
}

bool PendingRequests::finish(net::Header h, net::Envelope& env) {
  Pending p = take(h.parent_id);
  if (!p.slot) return false;
  Payload payload = net::payload_of(env);
  std::lock_guard lock(p.owner->mutex);
  p.slot->reply = Reply::of(std::move(h));
  p.slot->payload = std::move(payload);
  p.slot->received = net::now_us();
  p.slot->done = true;
  if (--p.owner->remaining == 0) p.owner->cv.notify_all();
  return true;
}

void PendingRequests::fail(Pending& p, const std::string& why, ErrorCode code) {
  std::lock_guard lock(p.owner->mutex);
  p.slot->reply.error = make_error_record(code, why, p.slot->task);
  p.slot->done = true;
  if (--p.owner->remaining == 0) p.owner->cv.notify_all();
}

void PendingRequests::fail(const std::string& msg_id, const std::string& why, ErrorCode code) {
  Pending p = take(msg_id);
  if (p.slot) fail(p, why, code);
}

std::vector<std::pair<int, std::string>> PendingRequests::silent(std::int64_t before,
                                                                 std::size_t limit) {
  std::vector<std::pair<int, std::string>> out;
  std::lock_guard lock(mutex_);
  while (!sent_.empty() && sent_.front().submitted < before && out.size() < limit) {
    const Sent s = sent_.front();
    sent_.pop_front();
    if (table_.contains(s.id)) out.emplace_back(s.channel, s.id.str());
  }
  return out;
}

void PendingRequests::fail_all(const std::function<std::string(const std::string&)>& why,
                               std::string_view except) {
  Table failed;
  {
    std::lock_guard lock(mutex_);
    failed.swap(table_);
    if (auto kept = net::TaskId::parse(except)) {
      if (auto it = failed.find(*kept); it != failed.end()) {
        table_.emplace(it->first, std::move(it->second));
        failed.erase(it);
      }
    }
    if (table_.empty()) none_left_.notify_all();
  }
  for (auto& entry : failed)
    fail(entry.second, why(entry.second.slot->msg_id));
}

void PendingRequests::forget(const std::string& msg_id) {
  std::lock_guard lock(mutex_);
  if (auto it = find(msg_id); it != table_.end()) table_.erase(it);
}

bool PendingRequests::wait_all(std::optional<Duration> limit) {
  std::unique_lock lock(mutex_);
  auto idle = [&] { return table_.empty(); };
  if (!limit) {
    none_left_.wait(lock, idle);
    return true;
  }
  return none_left_.wait_for(lock, *limit, idle);
}

bool PendingRequests::empty() const {
  std::lock_guard lock(mutex_);
  return table_.empty();
}

Value::List PendingRequests::tasks_in_flight() const {
  Value::List tasks;
  std::lock_guard lock(mutex_);
  for (const auto& [id, p] : table_) {
    const net::MsgType type = p.slot->type;
    if (type != net::MsgType::ApplyRequest && type != net::MsgType::MapRequest &&
        type != net::MsgType::ExecuteRequest && type != net::MsgType::NamespaceRequest)
      continue;
    const char* kind = type == net::MsgType::ApplyRequest ? "apply"
                       : type == net::MsgType::MapRequest ? "map"
                       : type == net::MsgType::ExecuteRequest
                           ? "execute"
                           : p.slot->task.c_str();  // push, pull, clear
    tasks.push_back(Value::list({p.slot->msg_id, kind, p.slot->task, p.slot->submitted}));
  }
  return tasks;
}

}  // namespace ipp::detail
