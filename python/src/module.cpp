// The Python client's compiled core (`ipp._core`): the C++ client library, with values
// converted at the boundary (values.hpp), the GIL released while anything waits, waits that
// Ctrl-C interrupts, and ipp's errors raised as the Python exceptions of `ipp._errors`. The
// `ipp` package builds ipyparallel's API on it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "ipp/client.hpp"
#include "values.hpp"

namespace py = pybind11;

namespace ipp::python {

namespace {

using Clock = std::chrono::steady_clock;

std::optional<Duration> to_duration(std::optional<double> seconds) {
  if (!seconds || *seconds < 0) return std::nullopt;
  return Duration(static_cast<std::int64_t>(*seconds * 1000.0));
}

/// `items` as a list of ipp values; with `pickle`, what is no ipp value goes pickled (the
/// arguments of Python functions), else it is a TypeError (those of compiled tasks).
Value::List to_list(const py::iterable& items, bool pickle = false) {
  Value::List out;
  for (const auto item : items)
    out.push_back(pickle ? to_value_or_pickled(item) : to_value(item));
  return out;
}

/// A sequence of a Python function's arguments (or a column of a map): an array as it is
/// (shared, not copied), anything else element by element, each an ipp value or pickled.
Value elementwise(py::handle seq) {
  if (PyObject_CheckBuffer(seq.ptr()) != 0 && !py::isinstance<py::bytes>(seq)) return to_value(seq);
  Value::List out;
  for (const auto item : py::reinterpret_borrow<py::iterable>(seq))
    out.push_back(to_value_or_pickled(item));
  return Value(std::move(out));
}

/// The arguments of python.call (`function` pickled, `args`) or python.map (`columns`).
Value::List python_task(const py::bytes& function, const py::iterable& args, bool columns) {
  const std::string_view f = function;
  Value::List out{Value(Bytes{Buffer::copy(f.data(), f.size())})};
  if (!columns) {
    out.push_back(elementwise(args));
    return out;
  }
  Value::List cols;
  for (const auto column : args)
    cols.push_back(elementwise(column));
  out.emplace_back(std::move(cols));
  return out;
}

/// Waits with the GIL released, a slice at a time, so that Ctrl-C (a pending signal) interrupts
/// it and other Python threads run. `step(d)` waits up to d and says whether it is done.
/// Returns false when `timeout` passed first.
template <typename Step>
bool wait_interruptibly(std::optional<double> timeout, Step&& step) {
  const auto limit = to_duration(timeout);
  const auto deadline = limit ? Clock::now() + *limit : Clock::time_point::max();
  constexpr Duration kSlice(100);
  while (true) {
    const auto left = std::chrono::duration_cast<Duration>(deadline - Clock::now());
    const Duration slice = limit ? std::clamp(left, Duration(0), kSlice) : kSlice;
    bool done = false;
    {
      const py::gil_scoped_release release;
      done = step(slice);
    }
    if (done) return true;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (limit && Clock::now() >= deadline) return false;
  }
}

/// Runs `f` with the GIL released (a call that waits on the controller, within its timeout).
template <typename F>
auto released(F&& f) {
  const py::gil_scoped_release release;
  return f();
}

py::dict metadata_dict(const TaskMetadata& m) {
  py::dict d;
  d["msg_id"] = m.msg_id;
  d["engine_id"] = m.engine;
  const py::module_ datetime = py::module_::import("datetime");
  const py::object from_timestamp = datetime.attr("datetime").attr("fromtimestamp");
  const py::object utc = datetime.attr("timezone").attr("utc");
  const auto time = [&](std::int64_t us) -> py::object {
    if (us == 0) return py::none();
    return from_timestamp(static_cast<double>(us) / 1e6, utc);
  };
  d["submitted"] = time(m.submitted);
  d["started"] = time(m.started);
  d["completed"] = time(m.completed);
  d["received"] = time(m.received);
  d["stdout"] = m.stdout_text;
  d["stderr"] = m.stderr_text;
  d["elapsed"] = m.started != 0 && m.completed != 0 ? py::object(py::float_(m.elapsed()))
                                                    : py::object(py::none());
  return d;
}

/// The Python exception for an ipp error (classes of `ipp._errors`), with the fields of its
/// record as attributes.
py::object remote_error(const py::module_& errors, const ErrorRecord& r) {
  py::object e = errors.attr("error_from_record")(
      static_cast<int>(r.code), r.type, r.message, r.task, r.plugin, r.engine,
      r.element ? py::object(py::int_(*r.element)) : py::object(py::none()), r.line, r.column,
      r.describe());
  return e;
}

void raise(const py::object& e) {
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(e.ptr())), e.ptr());
}

void translate(std::exception_ptr p) {
  try {
    std::rethrow_exception(p);
  } catch (const RemoteError& e) {
    const auto errors = py::module_::import("ipp._errors");
    raise(remote_error(errors, e.record()));
  } catch (const CompositeError& e) {
    const auto errors = py::module_::import("ipp._errors");
    py::list records;
    for (const auto& r : e.records())
      records.append(remote_error(errors, r));
    raise(errors.attr("CompositeError")(e.what(), records));
  } catch (const Error& e) {
    const auto errors = py::module_::import("ipp._errors");
    raise(errors.attr("error_from_code")(static_cast<int>(e.code()), e.what()));
  }
}

}  // namespace

}  // namespace ipp::python

PYBIND11_MODULE(_core, m) {
  using namespace ipp;
  using namespace ipp::python;
  m.doc() = "The compiled core of the ipp Python client (use the ipp package).";
  py::register_exception_translator(&translate);

  py::class_<PyRef>(m, "Ref", "A name on the engines, passed in place of the value bound to it.")
      .def(py::init<std::string>(), py::arg("name"))
      .def_readonly("name", &PyRef::name)
      .def("__repr__", [](const PyRef& r) { return fmt::format("ipp.ref('{}')", r.name); })
      .def("__eq__", [](const PyRef& a, const PyRef& b) { return a.name == b.name; });

  m.def(
      "to_value_repr", [](py::handle o) { return to_value(o).repr(); },
      "How `o` travels, as ipp prints values (for tests and for checking what is sent).");
  m.def(
      "round_trip", [](py::handle o) { return to_python(to_value(o)); },
      "`o` converted to an ipp value and back, as a call's argument and result would be.");

  py::class_<AsyncResult>(m, "AsyncResult")
      .def(
          "get",
          [](const AsyncResult& r, std::optional<double> timeout) {
            if (!wait_interruptibly(timeout, [&](Duration d) { return r.wait(d); })) {
              throw TimeoutError(fmt::format("the result was not ready within {} s", *timeout));
            }
            const Value v = released([&] { return r.get(Duration(0)); });
            return to_python(v);
          },
          py::arg("timeout") = py::none())
      .def(
          "wait",
          [](const AsyncResult& r, std::optional<double> timeout) {
            return wait_interruptibly(timeout, [&](Duration d) { return r.wait(d); });
          },
          py::arg("timeout") = py::none())
      .def("ready", &AsyncResult::ready)
      .def("successful", &AsyncResult::successful)
      .def_property_readonly("msg_ids", &AsyncResult::msg_ids)
      .def("progress",
           [](const AsyncResult& r) {
             const auto p = r.progress();
             return py::make_tuple(p.done, p.total);
           })
      .def("metadata",
           [](const AsyncResult& r) {
             py::list out;
             for (const auto& task : r.metadata())
               out.append(metadata_dict(task));
             return out;
           })
      .def("abort", [](const AsyncResult& r) { released([&] { r.abort(); }); })
      .def("cancel", [](const AsyncResult& r) { released([&] { r.cancel(); }); });

  py::class_<DirectView>(m, "DirectView")
      .def_property_readonly("targets", &DirectView::targets)
      .def(
          "apply_async",
          [](const DirectView& v, const std::string& task, const py::iterable& args, bool pickle) {
            const auto a = to_list(args, pickle);
            return released([&] { return v.apply_async(task, a); });
          },
          py::arg("task"), py::arg("args"), py::arg("pickle") = false)
      .def("map_async",
           [](const DirectView& v, const std::string& task, const py::iterable& seqs) {
             const auto s = to_list(seqs);
             return released([&] { return v.map_async(task, s); });
           })
      .def("python_async",
           [](const DirectView& v, const py::bytes& function, const py::iterable& args, bool map) {
             const auto a = python_task(function, args, map);
             return released([&] { return v.apply_async(map ? "python.map" : "python.call", a); });
           })
      .def("apply_to_async",
           [](const DirectView& v, const std::string& name, const std::string& task,
              const py::iterable& args) {
             const auto a = to_list(args);
             return released([&] { return v.apply_to_async(name, task, a); });
           })
      .def("push_async",
           [](const DirectView& v, const py::dict& values) {
             Value::Map map;
             for (const auto [key, item] : values)
               map.emplace(py::str(key).cast<std::string>(), to_value_or_pickled(item));
             return released([&] { return v.push_async(map); });
           })
      .def("pull_async",
           [](const DirectView& v, const std::string& name) {
             return released([&] { return v.pull_async(name); });
           })
      .def("pull_async",
           [](const DirectView& v, const std::vector<std::string>& names) {
             return released([&] { return v.pull_async(names); });
           })
      .def("scatter_async",
           [](const DirectView& v, const std::string& name, py::handle seq) {
             const Value s = to_value(seq);
             return released([&] { return v.scatter_async(name, s); });
           })
      .def("gather_async",
           [](const DirectView& v, const std::string& name) {
             return released([&] { return v.gather_async(name); });
           })
      .def("clear_async",
           [](const DirectView& v) { return released([&] { return v.clear_async(); }); })
      .def("execute",
           [](const DirectView& v, const std::string& code) {
             return released([&] { return v.execute(code); });
           })
      .def("with_time_limit", [](const DirectView& v, std::optional<double> seconds) {
        TaskFlags f;
        f.time_limit = to_duration(seconds);
        return v.with(f);
      });

  py::class_<LoadBalancedView>(m, "LoadBalancedView")
      .def("with_flags",
           [](const LoadBalancedView& v, std::optional<double> timeout, int retries,
              std::vector<std::string> after, bool after_all, std::vector<std::string> follow,
              bool follow_all, std::vector<std::int64_t> targets, int priority,
              std::optional<double> time_limit) {
             TaskFlags f;
             f.timeout = to_duration(timeout);
             f.retries = retries;
             f.after = Dependency(std::move(after));
             f.after.all = after_all;
             f.follow = Dependency(std::move(follow));
             f.follow.all = follow_all;
             f.targets = std::move(targets);
             f.priority = priority;
             f.time_limit = to_duration(time_limit);
             return v.with(f);
           })
      .def(
          "apply_async",
          [](const LoadBalancedView& v, const std::string& task, const py::iterable& args,
             bool pickle) {
            const auto a = to_list(args, pickle);
            return released([&] { return v.apply_async(task, a); });
          },
          py::arg("task"), py::arg("args"), py::arg("pickle") = false)
      .def("python_async",
           [](const LoadBalancedView& v, const py::bytes& function, const py::iterable& args,
              bool map) {
             const auto a = python_task(function, args, map);
             return released([&] { return v.apply_async(map ? "python.map" : "python.call", a); });
           })
      .def("map_async", [](const LoadBalancedView& v, const std::string& task,
                           const py::iterable& seqs, std::uint64_t chunksize) {
        const auto s = to_list(seqs);
        return released([&] { return v.map_async(task, s, chunksize); });
      });

  py::class_<Client>(m, "Client")
      .def(py::init([](std::optional<std::filesystem::path> profile_dir,
                       std::optional<std::filesystem::path> connection_file, double timeout,
                       bool shared_memory) {
             ClientOptions o;
             o.profile_dir = std::move(profile_dir);
             o.connection_file = std::move(connection_file);
             o.timeout = Duration(static_cast<std::int64_t>(timeout * 1000.0));
             o.shared_memory = shared_memory;
             return released([&] { return std::make_unique<Client>(o); });
           }),
           py::arg("profile_dir") = py::none(), py::arg("connection_file") = py::none(),
           py::arg("timeout") = 10.0, py::arg("shared_memory") = true)
      .def("ids", [](const Client& c) { return released([&] { return c.ids(); }); })
      .def("view", [](const Client& c, const std::vector<std::int64_t>& targets,
                      bool single) { return DirectView(single ? c[targets.at(0)] : c[targets]); })
      .def("load_balanced_view", &Client::load_balanced_view)
      .def("push_plugin",
           [](const Client& c, const std::filesystem::path& file) {
             return to_python(released([&] { return c.push_plugin(file); }));
           })
      .def("unload_plugin",
           [](const Client& c, const std::string& name) {
             return to_python(released([&] { return c.unload_plugin(name); }));
           })
      .def("plugins",
           [](const Client& c) { return to_python(released([&] { return c.plugins(); })); })
      .def("queue_status",
           [](const Client& c) { return to_python(released([&] { return c.queue_status(); })); })
      .def("engines",
           [](const Client& c) { return to_python(released([&] { return c.engines(); })); })
      .def("wait",
           [](const Client& c, std::optional<double> timeout) {
             return wait_interruptibly(timeout, [&](Duration d) { return c.wait(d); });
           })
      .def("shutdown", [](const Client& c) { released([&] { c.shutdown(); }); })
      .def("abort",
           [](const Client& c, const std::vector<std::string>& ids) {
             const auto s = released([&] { return c.abort(ids); });
             return py::make_tuple(s.removed, s.signalled, s.not_pending);
           })
      .def("cancel",
           [](const Client& c, const std::vector<std::string>& ids) {
             const auto s = released([&] { return c.cancel(ids); });
             return py::make_tuple(s.removed, s.signalled, s.not_pending);
           })
      .def("get_result",
           [](const Client& c, const std::string& msg_id, std::optional<double> timeout) {
             return to_python(released([&] { return c.get_result(msg_id, to_duration(timeout)); }));
           })
      .def("result_status",
           [](const Client& c, const std::vector<std::string>& ids) {
             return to_python(released([&] { return c.result_status(ids); }));
           })
      .def("resubmit",
           [](const Client& c, const std::vector<std::string>& ids) {
             return released([&] { return c.resubmit(ids); });
           })
      .def("db_query",
           [](const Client& c, const py::list& conditions, const std::vector<std::string>& keys,
              std::int64_t limit) {
             std::vector<DbCondition> where;
             for (const auto item : conditions) {
               if (py::isinstance<py::str>(item)) {
                 where.push_back(DbCondition::parse(item.cast<std::string>()));
                 continue;
               }
               const auto t = item.cast<py::tuple>();
               where.push_back(
                   DbCondition{t[0].cast<std::string>(), t[1].cast<std::string>(), to_value(t[2])});
             }
             return to_python(released([&] { return c.db_query(where, keys, limit); }));
           })
      .def("hub_history",
           [](const Client& c, std::int64_t limit) {
             return released([&] { return c.hub_history(limit); });
           })
      .def("purge_results",
           [](const Client& c, const std::vector<std::string>& ids) {
             return released([&] { return c.purge_results(ids); });
           })
      .def("purge_all_results",
           [](const Client& c) { return released([&] { return c.purge_all_results(); }); });
}
