#include "output.hpp"

#include <iostream>

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

void finish(const Globals& g, const AsyncResult& r, bool quiet) {
  Value v;
  try {
    v = r.get();
  } catch (const Error& e) {
    if (g.json) {
      print_json(json{{"error", e.what()},
                      {"code", std::string(to_string(e.code()))},
                      {"msg_ids", r.msg_ids()}});
    }
    throw;
  }
  if (!quiet || g.json) print(g, v, g.json ? r.msg_ids() : std::vector<std::string>{});
}

}  // namespace ipp::ctl
