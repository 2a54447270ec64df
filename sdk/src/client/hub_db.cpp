#include "client_core.hpp"

namespace ipp {

// ---- the hub's task database ---------------------------------------------------------------

DbCondition DbCondition::parse(std::string_view text) {
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  std::size_t i = 0;
  while (i < text.size() && blank(text[i]))
    ++i;
  const std::size_t field_start = i;
  while (i < text.size() && !blank(text[i]) &&
         std::string_view("=!<>").find(text[i]) == std::string_view::npos)
    ++i;
  DbCondition c;
  c.field = std::string(text.substr(field_start, i - field_start));
  while (i < text.size() && blank(text[i]))
    ++i;
  const std::size_t op_start = i;
  while (i < text.size() && !blank(text[i]) &&
         (std::string_view("=!<>").find(text[i]) != std::string_view::npos ||
          std::isalpha(static_cast<unsigned char>(text[i]))))
    ++i;
  c.op = std::string(text.substr(op_start, i - op_start));
  const std::string_view rest = text.substr(i);
  if (c.field.empty() || c.op.empty() || rest.find_first_not_of(" \t") == std::string_view::npos) {
    throw UsageError(
        fmt::format("expected FIELD OP VALUE (OP: == != < <= > >= in glob), got '{}'", text));
  }
  try {
    c.value = parse_literal(rest);
  } catch (const SyntaxError&) {
    std::string word(rest.substr(rest.find_first_not_of(" \t")));
    while (!word.empty() && blank(word.back()))
      word.pop_back();
    if (word.find_first_of(" \t[],") != std::string::npos)
      throw UsageError(fmt::format("cannot read the value in '{}'", text));
    c.value = Value(word);  // a bare word: a string (task names, statuses, globs)
  }
  return c;
}

Value Client::get_result(const std::string& msg_id, std::optional<Duration> timeout) const {
  const auto deadline = timeout ? std::chrono::steady_clock::now() + *timeout
                                : std::chrono::steady_clock::time_point::max();
  auto pause = Duration(5);
  // The hub records from copies of the schedulers' traffic, a moment after submission: an id
  // it does not know yet gets a short grace before it is called unknown.
  const auto grace = std::chrono::steady_clock::now() + Duration(500);
  while (true) {
    auto [reply, payload] = core_->ask("result", Value::map({{"msg_id", msg_id}}));
    const bool recorded = reply.info.kind() == Value::Kind::map;
    if (!recorded && reply.error && reply.error->code == ErrorCode::name_error &&
        std::chrono::steady_clock::now() < std::min(grace, deadline)) {
      std::this_thread::sleep_for(pause);
      continue;
    }
    if (reply.error) rethrow(*reply.error);  // the task's own error, or the hub's
    const std::string status = recorded ? reply.info["status"].as_string() : "";
    if (status != "pending" && status != "running")
      return payload.root.empty() ? Value() : decode(payload);
    if (std::chrono::steady_clock::now() + pause > deadline) {
      throw TimeoutError(fmt::format("task {} still {} after {} ms", msg_id, status,
                                     timeout ? timeout->count() : 0));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, Duration(200));
  }
}

Value Client::result_status(const std::vector<std::string>& msg_ids) const {
  return core_->query("result_status", Value::map({{"msg_ids", Value(msg_ids)}}));
}

AsyncResult Client::resubmit(const std::vector<std::string>& msg_ids) const {
  if (msg_ids.empty()) throw UsageError("resubmit needs at least one msg_id");
  auto state = detail::new_state(
      msg_ids.size() == 1 ? detail::Combine::single : detail::Combine::per_engine, msg_ids.size());
  for (const auto& id : msg_ids) {
    auto [reply, payload] = core_->ask("request", Value::map({{"msg_id", id}}));
    if (reply.error) rethrow(*reply.error);
    const Value& rec = reply.info;
    const std::string kind = rec["kind"].as_string();
    const net::MsgType type = kind == "apply"     ? net::MsgType::ApplyRequest
                              : kind == "map"     ? net::MsgType::MapRequest
                              : kind == "execute" ? net::MsgType::ExecuteRequest
                                                  : net::MsgType::NamespaceRequest;
    const bool balanced = rec["queue"].as_string() == "balanced";
    detail::send_task(*core_, state, balanced ? detail::kBalanced : detail::kDirect, type,
                      balanced ? -1 : rec["target"].as_int(), rec["task"].as_string(),
                      std::move(payload), rec["bind"].as_string(),
                      Value::map({{"resubmitted_from", id}}));
  }
  return AsyncResult(state);
}

Value Client::db_query(const std::vector<DbCondition>& where, const std::vector<std::string>& keys,
                       std::int64_t limit) const {
  Value::List conditions;
  for (const auto& c : where)
    conditions.push_back(Value::list({c.field, c.op, c.value}));
  return core_->query("db_query", Value::map({{"where", Value(std::move(conditions))},
                                              {"keys", Value(keys)},
                                              {"limit", limit}}));
}

std::vector<std::string> Client::hub_history(std::int64_t limit) const {
  return core_->query("history", Value::map({{"limit", limit}})).as<std::vector<std::string>>();
}

std::int64_t Client::purge_results(const std::vector<std::string>& msg_ids) const {
  return core_->query("purge", Value::map({{"msg_ids", Value(msg_ids)}}))["purged"].as_int();
}

std::int64_t Client::purge_results_before(std::chrono::system_clock::time_point before) const {
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(before.time_since_epoch()).count();
  return core_->query("purge", Value::map({{"before", us}}))["purged"].as_int();
}

std::int64_t Client::purge_all_results() const {
  return core_->query("purge", Value::map({{"all", true}}))["purged"].as_int();
}

}  // namespace ipp
