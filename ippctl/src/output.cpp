#include "output.hpp"

#include <iostream>
#include <tuple>

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

namespace {

/// What the tasks of `r` printed, as {"stdout": [...], "stderr": [...]} (one entry per task),
/// or null when none printed anything.
json printed_json(const std::vector<TaskMetadata>& tasks) {
  bool any = false;
  json out{{"stdout", json::array()}, {"stderr", json::array()}};
  for (const auto& t : tasks) {
    out["stdout"].push_back(t.stdout_text);
    out["stderr"].push_back(t.stderr_text);
    any = any || !t.stdout_text.empty() || !t.stderr_text.empty();
  }
  return any ? out : json();
}

/// What the tasks of `r` printed, under a line naming each one's stream and engine, as
/// ipyparallel shows it: `[stdout:2]`. Standard output to stdout, standard error to stderr.
void show_printed(const std::vector<TaskMetadata>& tasks) {
  for (const auto& t : tasks) {
    for (const auto& [name, text, out] : {std::tuple{"stdout", &t.stdout_text, &std::cout},
                                          std::tuple{"stderr", &t.stderr_text, &std::cerr}}) {
      if (text->empty()) continue;
      // One line beside the tag; several below it.
      const bool one_line = text->find('\n') >= text->size() - 1;
      *out << fmt::format("[{}:{}]{}", name, t.engine, one_line ? " " : "\n");
      *out << *text << (text->back() == '\n' ? "" : "\n");
    }
  }
  std::cout.flush();
}

}  // namespace

void Submission::finish(const AsyncResult& r, bool quiet) {
  while (!r.wait(std::chrono::milliseconds(50))) {
    if (Interrupt::pressed()) cancel(r);
  }
  Value v;
  try {
    v = r.get();
  } catch (const Error& e) {
    const auto tasks = r.metadata();
    if (g_.json) {
      json out{{"error", e.what()},
               {"code", std::string(to_string(e.code()))},
               {"msg_ids", r.msg_ids()}};
      if (json printed = printed_json(tasks); !printed.is_null()) out["printed"] = printed;
      print_json(out);
    } else {
      show_printed(tasks);
    }
    throw;
  }
  const auto tasks = r.metadata();
  if (g_.json) {
    json out;
    out["result"] = to_json(v);
    out["msg_ids"] = r.msg_ids();
    if (json printed = printed_json(tasks); !printed.is_null()) out["printed"] = printed;
    print_json(out);
    return;
  }
  if (!quiet) print(g_, v);
  show_printed(tasks);
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
