// python: Python functions and statements on engines, in a CPython interpreter embedded in the
// engine when a Python task first runs (an engine that never runs one starts none).
//
// Tasks (the Python client calls them; see docs/python.md):
//   python.call(function, args)      a pickled function applied to args; its result
//   python.map(function, columns)    the function over the rows of equal-length columns
//   python.execute(code)             statements in the engine's namespace
//
// One namespace: the engine's ipp namespace holds every value of the Python one that is an
// ipp value (numbers, strings, lists, dicts, arrays, ...) or that pickles (as a map
// {"__ipp_pickle__": bytes}), so `view["a"]`, push, pull and compiled tasks' ipp.ref see what
// Python code bound, and Python code sees what was pushed. Objects that are neither (modules,
// functions, open files) stay in the interpreter's own dictionary.
//
// A Python exception fails the task with the exception's own type name (`ModuleNotFoundError`)
// and message.
#include <dlfcn.h>
#include <pybind11/embed.h>
#include <pybind11/stl.h>

#include <cstdio>
#include <mutex>
#include <string>

#include <ipp/error.hpp>
#include <ipp/plugin.hpp>

#include "../src/values.hpp"

namespace py = pybind11;
using ipp::python::kPickleKey;
using ipp::python::pickled;
using ipp::python::to_python;
using ipp::python::to_value;
using ipp::python::to_value_or_pickled;

namespace {

/// The task running on this thread (its namespace is the one Python code reads and binds).
thread_local ipp::Context* t_context = nullptr;

struct Running {
  explicit Running(ipp::Context& ctx) : previous(t_context) { t_context = &ctx; }
  ~Running() { t_context = previous; }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;
  ipp::Context* previous;
};

ipp::Context& context() {
  if (t_context == nullptr) throw std::logic_error("no ipp task is running on this thread");
  return *t_context;
}

/// A value from the engine's namespace as Python sees it: pickled objects unpickled, names
/// (ipp.ref) replaced by their values.
py::object to_object(const ipp::Value& v) {
  if (v.kind() == ipp::Value::Kind::map && v.size() == 1 && v.as_map().contains(kPickleKey) &&
      v[kPickleKey].kind() == ipp::Value::Kind::bytes) {
    const ipp::Buffer& b = v[kPickleKey].as_bytes().data;
    return py::module_::import("pickle").attr("loads")(
        py::memoryview::from_memory(b.data(), static_cast<py::ssize_t>(b.size())));
  }
  if (v.kind() == ipp::Value::Kind::ref) return to_object(context().at(v.as_ref().name));
  if (v.kind() == ipp::Value::Kind::list) {
    py::list out;
    for (const auto& item : v.as_list())
      out.append(to_object(item));
    return out;
  }
  return to_python(v);
}

// The helpers the embedded interpreter runs, in Python.
constexpr const char* kHelpers = R"PY(
import builtins, pickle, sys, threading, types
from _ipp_engine import lookup, bind, bind_pickled, write


class _Stream:
    """sys.stdout and sys.stderr: what a task prints comes back with its result."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, fd, name):
        self._fd = fd
        self.name = name

    def write(self, text):
        write(self._fd, text)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def fileno(self):
        return self._fd


sys.stdout = _Stream(1, "<stdout>")
sys.stderr = _Stream(2, "<stderr>")

_local = threading.local()
_ABSENT = object()
_LOCAL_ONLY = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type,
               types.MethodType)
_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), range, tuple, frozenset)


class Namespace(dict):
    """Names Python binds and cannot publish (modules, functions); any other name is looked up
    in the engine's namespace, once per task."""

    def __missing__(self, name):
        cache = getattr(_local, "cache", None)
        if cache is None:
            raise KeyError(name)
        value = cache.get(name, _ABSENT)
        if value is _ABSENT:
            found, value = lookup(name)
            cache[name] = value if found else _ABSENT
            if not found:
                raise KeyError(name)
        elif value is _ABSENT:
            raise KeyError(name)
        return value


ns = Namespace()
dict.__setitem__(ns, "__builtins__", builtins)
dict.__setitem__(ns, "__name__", "__ipp__")


def _publish(name, obj):
    """Binds obj in the engine's namespace; False when it can only stay here."""
    if isinstance(obj, _LOCAL_ONLY):
        return False
    if bind(name, obj):
        return True
    try:
        data = pickle.dumps(obj)
    except Exception:
        return False
    bind_pickled(name, data)
    return True


def _settle(cache):
    for name in [n for n in dict.keys(ns) if not n.startswith("__")]:
        if _publish(name, dict.__getitem__(ns, name)):
            dict.__delitem__(ns, name)
    # What the code read from the engine's namespace and may have changed in place.
    for name, obj in cache.items():
        if obj is _ABSENT or isinstance(obj, _IMMUTABLE) or dict.__contains__(ns, name):
            continue
        flags = getattr(obj, "flags", None)
        if flags is not None and not getattr(flags, "writeable", True):
            continue
        _publish(name, obj)


def execute(code):
    _local.cache = cache = {}
    try:
        exec(compile(code, "<execute>", "exec"), ns)
    finally:
        _local.cache = None
    _settle(cache)


_functions = {}


def _function(data):
    f = _functions.get(data)
    if f is None:
        f = pickle.loads(data)
        if len(_functions) >= 256:
            _functions.clear()
        _functions[data] = f
    return f


def call(data, args):
    f = _function(data)
    _local.cache = {}
    try:
        return f(*args)
    finally:
        _local.cache = None


def map_rows(data, columns):
    f = _function(data)
    _local.cache = {}
    try:
        return [f(*row) for row in zip(*columns)]
    finally:
        _local.cache = None
)PY";

std::once_flag g_started;
py::object* g_helpers = nullptr;  // the helpers' module, alive for the process's life

/// Starts the interpreter (once), and leaves the GIL released for the pool's threads.
py::object& helpers() {
  std::call_once(g_started, [] {
    // Extension modules (numpy) expect libpython's symbols to be global; a plugin's libraries
    // are loaded local. And this plugin stays loaded: the interpreter points into it.
    Dl_info info{};
    if (dladdr(reinterpret_cast<void*>(&Py_InitializeEx), &info) != 0 && info.dli_fname != nullptr)
      (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
    if (dladdr(reinterpret_cast<void*>(&helpers), &info) != 0 && info.dli_fname != nullptr)
      (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    // Signals stay the engine's.
    py::initialize_interpreter(false);
    {
      py::module_ module = py::module_::import("types").attr("ModuleType")("_ipp_python");
      py::exec(kHelpers, module.attr("__dict__"));
      g_helpers = new py::object(std::move(module));
    }
    // Released for good: each task takes it (gil_scoped_acquire) for as long as it runs Python.
    PyEval_SaveThread();
  });
  return *g_helpers;
}

/// Runs `f` with the GIL, turning a Python exception into a task failure under its own type.
template <typename F>
ipp::Value with_python(ipp::Context& ctx, F&& f) {
  py::object& h = helpers();
  const py::gil_scoped_acquire gil;
  const Running running(ctx);
  try {
    return f(h);
  } catch (py::error_already_set& e) {
    const std::string type = py::str(e.type().attr("__name__"));
    std::string message = py::str(e.value());
    py::object tb =
        py::module_::import("traceback").attr("format_exception")(e.type(), e.value(), e.trace());
    const std::string trace = py::str(py::str("").attr("join")(tb));
    if (!trace.empty()) message += "\n" + trace;
    throw ipp::ForeignError(type, message);
  }
}

ipp::Bytes function_bytes(const ipp::Value& function) {
  if (function.kind() != ipp::Value::Kind::bytes)
    throw ipp::ArgumentError("a pickled function (bytes), got " + function.type_name());
  return function.as_bytes();
}

ipp::Value call(ipp::Context& ctx, ipp::Value function, ipp::Value args) {
  const ipp::Bytes f = function_bytes(function);
  return with_python(ctx, [&](py::object& h) {
    const py::bytes data(reinterpret_cast<const char*>(f.data.data()), f.data.size());
    py::object result = h.attr("call")(data, to_object(args));
    return to_value_or_pickled(result);
  });
}

ipp::Value map(ipp::Context& ctx, ipp::Value function, ipp::Value columns) {
  const ipp::Bytes f = function_bytes(function);
  if (columns.kind() != ipp::Value::Kind::list)
    throw ipp::ArgumentError("the columns as a list, got " + columns.type_name());
  return with_python(ctx, [&](py::object& h) {
    const py::bytes data(reinterpret_cast<const char*>(f.data.data()), f.data.size());
    py::list rows = h.attr("map_rows")(data, to_object(columns));
    ipp::Value::List out;
    out.reserve(rows.size());
    for (const auto row : rows)
      out.push_back(to_value_or_pickled(row));
    return ipp::Value(std::move(out));
  });
}

ipp::Value execute(ipp::Context& ctx, std::string code) {
  return with_python(ctx, [&](py::object& h) {
    h.attr("execute")(code);
    return ipp::Value();
  });
}

}  // namespace

// The namespace functions the helpers call, for the task running on the calling thread.
PYBIND11_EMBEDDED_MODULE(_ipp_engine, m) {
  m.def("lookup", [](const std::string& name) -> py::tuple {
    const auto v = context().get(name);
    if (!v) return py::make_tuple(false, py::none());
    return py::make_tuple(true, to_object(*v));
  });
  m.def("bind", [](const std::string& name, py::handle object) {
    ipp::Value v;
    try {
      v = to_value(object);
    } catch (const py::type_error&) {
      return false;
    } catch (const py::error_already_set& e) {
      if (!e.matches(PyExc_OverflowError)) throw;
      return false;
    }
    context().set(name, v);
    return true;
  });
  m.def("write", [](int fd, const std::string& text) {
    // Through the C streams, which the engine routes to the task running on this thread.
    std::fwrite(text.data(), 1, text.size(), fd == 2 ? stderr : stdout);
  });
  m.def("bind_pickled", [](const std::string& name, const py::bytes& data) {
    context().set(name, pickled(std::string_view(data)));
  });
}

IPP_TASK(call, "Applies a pickled Python function to a list of arguments.")
IPP_TASK(map, "Applies a pickled Python function to the rows of equal-length columns.")
IPP_TASK(execute, "Runs Python statements in the engine's namespace.")
