#include "output.hpp"

#include <iostream>

#include <fmt/format.h>

#include "ipp/net/json_text.hpp"

namespace ipp::ctl {

json to_json(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::null:
      return nullptr;
    case Value::Kind::boolean:
      return v.as_bool();
    case Value::Kind::integer:
      return v.as_int();
    case Value::Kind::floating:
      return v.as_float();
    case Value::Kind::string:
      return v.as_string();
    case Value::Kind::bytes: {
      const auto& b = v.as_bytes().data;
      return json::binary(
          std::vector<std::uint8_t>(reinterpret_cast<const std::uint8_t*>(b.data()),
                                    reinterpret_cast<const std::uint8_t*>(b.data()) + b.size()));
    }
    case Value::Kind::list: {
      json out = json::array();
      for (const auto& item : v.as_list())
        out.push_back(to_json(item));
      return out;
    }
    case Value::Kind::range: {
      json out = json::array();
      const Range& r = v.as_range();
      for (std::uint64_t i = 0; i < r.size(); ++i)
        out.push_back(r[i]);
      return out;
    }
    case Value::Kind::array: {
      json out = json::array();
      const Array& a = v.as_array();
      detail::visit_dtype(a.dtype(), [&](auto tag) {
        using S = decltype(tag);
        for (std::uint64_t i = 0; i < a.size(); ++i)
          out.push_back(detail::load<S>(a.buffer().data(), i));
      });
      return out;
    }
    case Value::Kind::ref:
      return json{{"ref", v.as_ref().name}};
    case Value::Kind::map: {
      json out = json::object();
      for (const auto& [k, item] : v.as_map())
        out[k] = to_json(item);
      return out;
    }
  }
  return nullptr;
}

void print_json(const json& j) {
  std::cout << json_text(j) << "\n";
}

void print(const Globals& g, const Value& v, const std::vector<std::string>& msg_ids) {
  if (g.json) {
    json out;
    out["result"] = to_json(v);
    if (!msg_ids.empty()) out["msg_ids"] = msg_ids;
    print_json(out);
  } else {
    v.write_repr(std::cout);
    std::cout << "\n";
  }
}

Submission::Submission(const Globals& g) : g_(g), rc_(g.client()) {
  interrupt_.listen();
}

void Submission::finish(const AsyncResult& r, bool quiet) {
  while (!r.wait(std::chrono::milliseconds(50))) {
    if (Interrupt::pressed()) cancel(r);
  }
  Value v;
  try {
    v = r.get();
  } catch (const Error& e) {
    if (g_.json) {
      print_json(json{{"error", e.what()},
                      {"code", std::string(to_string(e.code()))},
                      {"msg_ids", r.msg_ids()}});
    }
    throw;
  }
  if (!quiet || g_.json) print(g_, v, g_.json ? r.msg_ids() : std::vector<std::string>{});
}

void Submission::cancel(const AsyncResult& r) {
  const auto ids = r.msg_ids();
  const ControlSummary done = rc_.cancel(ids);
  if (g_.json) {
    print_json(json{{"interrupted", true},
                    {"msg_ids", ids},
                    {"removed", done.removed},
                    {"signalled", done.signalled},
                    {"not_pending", done.not_pending}});
  }
  constexpr std::size_t kShown = 10;
  std::string shown;
  for (std::size_t i = 0; i < ids.size() && i < kShown; ++i)
    shown += (i ? " " : "") + ids[i];
  if (ids.size() > kShown)
    shown += fmt::format(" and {} more (--json lists all)", ids.size() - kShown);
  std::cerr << fmt::format(
      "ippctl: interrupted: cancelled {} task{}: {} removed from the queue, {} running told to "
      "stop, {} already finished; msg_ids: {}\n",
      ids.size(), ids.size() == 1 ? "" : "s", done.removed.size(), done.signalled.size(),
      done.not_pending.size(), shown);
  throw Interrupted();
}

}  // namespace ipp::ctl
