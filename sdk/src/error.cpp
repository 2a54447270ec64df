#include "ipp/error.hpp"

#include <unordered_map>

#include <fmt/format.h>

namespace ipp {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::unknown:
      return "unknown";
    case ErrorCode::protocol:
      return "protocol";
    case ErrorCode::plugin_load:
      return "plugin_load";
    case ErrorCode::task_not_found:
      return "task_not_found";
    case ErrorCode::ambiguous_task:
      return "ambiguous_task";
    case ErrorCode::argument:
      return "argument";
    case ErrorCode::remote:
      return "remote";
    case ErrorCode::engine:
      return "engine";
    case ErrorCode::timeout:
      return "timeout";
    case ErrorCode::composite:
      return "composite";
    case ErrorCode::usage:
      return "usage";
    case ErrorCode::connection:
      return "connection";
    case ErrorCode::name_error:
      return "name_error";
    case ErrorCode::aborted:
      return "aborted";
    case ErrorCode::cancelled:
      return "cancelled";
    case ErrorCode::syntax:
      return "syntax";
    case ErrorCode::impossible_dependency:
      return "impossible_dependency";
    case ErrorCode::invalid_dependency:
      return "invalid_dependency";
    case ErrorCode::permission:
      return "permission";
  }
  return "unknown";
}

std::string_view error_type_name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::unknown:
      return "ipp::Error";
    case ErrorCode::protocol:
      return "ipp::ProtocolError";
    case ErrorCode::plugin_load:
      return "ipp::PluginLoadError";
    case ErrorCode::task_not_found:
      return "ipp::TaskNotFound";
    case ErrorCode::ambiguous_task:
      return "ipp::AmbiguousTask";
    case ErrorCode::argument:
      return "ipp::ArgumentError";
    case ErrorCode::remote:
      return "ipp::RemoteError";
    case ErrorCode::engine:
      return "ipp::EngineError";
    case ErrorCode::timeout:
      return "ipp::TaskTimeout";
    case ErrorCode::composite:
      return "ipp::CompositeError";
    case ErrorCode::usage:
      return "ipp::UsageError";
    case ErrorCode::connection:
      return "ipp::ConnectionError";
    case ErrorCode::name_error:
      return "ipp::NameError";
    case ErrorCode::aborted:
      return "ipp::TaskAborted";
    case ErrorCode::cancelled:
      return "ipp::TaskCancelled";
    case ErrorCode::syntax:
      return "ipp::SyntaxError";
    case ErrorCode::impossible_dependency:
      return "ipp::ImpossibleDependency";
    case ErrorCode::invalid_dependency:
      return "ipp::InvalidDependency";
    case ErrorCode::permission:
      return "ipp::PermissionDenied";
  }
  return "ipp::Error";
}

ErrorRecord make_error_record(ErrorCode code, std::string message, std::string task,
                              std::int64_t engine) {
  ErrorRecord r;
  r.code = code;
  r.type = error_type_name(code);
  r.message = std::move(message);
  r.task = std::move(task);
  r.engine = engine;
  return r;
}

std::string ErrorRecord::describe() const {
  std::string out;
  if (!task.empty()) out += task;
  if (engine >= 0) out += fmt::format("{}engine {}", out.empty() ? "" : " on ", engine);
  if (element) out += fmt::format("{}element {}", out.empty() ? "" : ", ", *element);
  if (line > 0) out += fmt::format("{}line {}, column {}", out.empty() ? "" : ", ", line, column);
  if (!out.empty()) out += ": ";
  if (!type.empty()) out += type + ": ";
  out += message;
  return out;
}

RemoteError::RemoteError(ErrorRecord record)
    : Error(record.code == ErrorCode::unknown ? ErrorCode::remote : record.code, record.describe()),
      record_(std::move(record)) {}

namespace {
// One line per kind of failure, not per failure: 5,000 tasks failing alike are one line saying
// how many, and at most kCompositeLines kinds are listed. records() keeps every one.
constexpr std::size_t kCompositeLines = 10;

std::string composite_message(const std::vector<ErrorRecord>& records) {
  std::string out = fmt::format("{} task{} failed", records.size(), records.size() == 1 ? "" : "s");
  // Failures alike but for where they happened (engine, element) are one kind.
  std::vector<std::pair<std::string, std::size_t>> kinds;  // the first's description, how many
  std::unordered_map<std::string, std::size_t> kind_of;    // description but for where -> kind
  for (const auto& r : records) {
    ErrorRecord key = r;
    key.engine = -1;
    key.element.reset();
    auto [it, fresh] = kind_of.try_emplace(key.describe(), kinds.size());
    if (fresh)
      kinds.emplace_back(r.describe(), 1);
    else
      ++kinds[it->second].second;
  }
  for (std::size_t i = 0; i < kinds.size() && i < kCompositeLines; ++i) {
    out += "\n  " + kinds[i].first;
    if (kinds[i].second > 1) out += fmt::format(" (and {} more like it)", kinds[i].second - 1);
  }
  if (kinds.size() > kCompositeLines) {
    std::size_t rest = 0;
    for (std::size_t i = kCompositeLines; i < kinds.size(); ++i)
      rest += kinds[i].second;
    out +=
        fmt::format("\n  ... and {} more of {} other kinds", rest, kinds.size() - kCompositeLines);
  }
  return out;
}
}  // namespace

CompositeError::CompositeError(std::vector<ErrorRecord> records)
    : Error(ErrorCode::composite, composite_message(records)), records_(std::move(records)) {}

void rethrow(const ErrorRecord& record) {
  switch (record.code) {
    case ErrorCode::engine:
      throw EngineError(record.describe());
    case ErrorCode::timeout:
      if (record.type == error_type_name(ErrorCode::timeout)) throw TaskTimeout(record.describe());
      throw TimeoutError(record.describe());
    case ErrorCode::connection:
      throw ConnectionError(record.describe());
    case ErrorCode::usage:
      throw UsageError(record.describe());
    case ErrorCode::aborted:
      throw TaskAborted(record.describe());
    case ErrorCode::cancelled:
      throw TaskCancelled(record.describe());
    case ErrorCode::impossible_dependency:
      throw ImpossibleDependency(record.describe());
    case ErrorCode::invalid_dependency:
      throw InvalidDependency(record.describe());
    case ErrorCode::permission:
      throw PermissionDenied(record.describe());
    default:
      throw RemoteError(record);
  }
}

}  // namespace ipp
