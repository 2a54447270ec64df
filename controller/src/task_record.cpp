#include "task_record.hpp"

#include <nlohmann/json.hpp>

#include "ipp/net/json_text.hpp"

namespace ipp::hub {

std::array<char, 8> part_length(std::uint64_t n) {
  std::array<char, 8> out{};
  for (auto& c : out) {
    c = static_cast<char>(n & 0xff);
    n >>= 8;
  }
  return out;
}

Value to_value(const TaskRecord& r, bool with_payloads) {
  Value::Map m{{"msg_id", r.msg_id},
               {"client", r.client},
               {"queue", r.queue},
               {"kind", r.kind},
               {"task", r.task},
               {"plugin", r.plugin},
               {"plugin_hash", r.plugin_hash},
               {"target", r.target},
               {"engine", r.engine},
               {"bind", r.bind},
               {"submitted", r.submitted},
               {"started", r.started},
               {"completed", r.completed},
               {"received", r.received},
               {"status", r.status},
               {"resubmitted_from", r.resubmitted_from}};
  if (r.error) {
    m["error"] = Value::map({{"type", r.error->type},
                             {"message", r.error->message},
                             {"description", r.error->describe()}});
  }
  if (with_payloads) {
    m["args_bytes"] = r.args_size;
    m["result_bytes"] = r.result_size;
    m["payloads_kept"] =
        (r.args_size == 0 || !r.args.empty()) && (r.result_size == 0 || !r.result.empty());
  }
  return Value(std::move(m));
}

std::string pack_parts(const std::vector<std::string_view>& parts) {
  std::string out;
  std::size_t total = 0;
  for (const auto& p : parts)
    total += 8 + p.size();
  out.reserve(total);
  for (const auto& p : parts) {
    const auto len = part_length(p.size());
    out.append(len.data(), len.size());
    out.append(p);
  }
  return out;
}

std::string pack_parts(const std::vector<Buffer>& parts) {
  std::vector<std::string_view> views;
  views.reserve(parts.size());
  for (const auto& b : parts)
    views.emplace_back(reinterpret_cast<const char*>(b.data()), b.size());
  return pack_parts(views);
}

std::int64_t packed_size(const std::vector<Buffer>& parts) {
  std::int64_t n = 0;
  for (const auto& p : parts)
    n += 8 + static_cast<std::int64_t>(p.size());
  return n;
}

std::vector<std::string> unpack_parts(std::string_view blob) {
  std::vector<std::string> out;
  while (!blob.empty()) {
    if (blob.size() < 8) throw ProtocolError("stored payload is truncated");
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
      n = (n << 8) | static_cast<std::uint8_t>(blob[static_cast<std::size_t>(i)]);
    blob.remove_prefix(8);
    if (n > blob.size()) throw ProtocolError("stored payload is truncated");
    out.emplace_back(blob.substr(0, n));
    blob.remove_prefix(n);
  }
  return out;
}

std::string error_json(const std::optional<ErrorRecord>& e) {
  if (!e) return {};
  nlohmann::json j{{"code", static_cast<int>(e->code)},
                   {"type", e->type},
                   {"message", e->message},
                   {"task", e->task},
                   {"plugin", e->plugin},
                   {"engine", e->engine},
                   {"line", e->line},
                   {"column", e->column}};
  if (e->element) j["element"] = *e->element;
  return json_text(j);
}

std::optional<ErrorRecord> error_from_json(std::string_view text) {
  if (text.empty()) return std::nullopt;
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  ErrorRecord r;
  r.code = static_cast<ErrorCode>(j.value("code", 0));
  r.type = j.value("type", "");
  r.message = j.value("message", "");
  r.task = j.value("task", "");
  r.plugin = j.value("plugin", "");
  r.engine = j.value("engine", std::int64_t{-1});
  r.line = j.value("line", std::size_t{0});
  r.column = j.value("column", std::size_t{0});
  if (j.contains("element")) r.element = j["element"].get<std::uint64_t>();
  return r;
}

}  // namespace ipp::hub
