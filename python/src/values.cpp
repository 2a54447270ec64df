#include "values.hpp"

#include <Python.h>
#include <pybind11/numpy.h>

#include <cstring>
#include <memory>
#include <string>

#include <fmt/format.h>

namespace ipp::python {

namespace {

/// A Python buffer (a numpy array's memory) that a Buffer shares: released with the GIL held,
/// on whichever thread lets go of the last Buffer (the client's I/O thread, once it is sent).
struct HeldView {
  Py_buffer view{};
  ~HeldView() {
    // After the interpreter finished there is nothing left to release.
    if (Py_IsInitialized() == 0 || _Py_IsFinalizing() != 0) return;
    const py::gil_scoped_acquire gil;
    PyBuffer_Release(&view);
  }
};

[[noreturn]] void cannot_send(py::handle object, const std::string& why = {}) {
  throw py::type_error(fmt::format(
      "cannot send a value of type '{}' to the engines{}: ipp values are None, bool, int, float, "
      "str, bytes, "
      "list, tuple, dict with str keys, range, ipp.ref, and numpy arrays (or C-contiguous "
      "buffers) of int8 to uint64, float32 or float64",
      py::str(py::type::of(object).attr("__name__")).cast<std::string>(),
      why.empty() ? "" : " (" + why + ")"));
}

/// The dtype of a buffer's element format (struct module letters, with an optional byte
/// order mark for native order), or nullopt.
std::optional<DType> dtype_of(const char* format, Py_ssize_t itemsize) {
  std::string f = format != nullptr ? format : "B";
  if (!f.empty() && (f[0] == '@' || f[0] == '=' || f[0] == '<')) f = f.substr(1);
  if (f.size() != 1) return std::nullopt;
  const char c = f[0];
  if (c == 'f' && itemsize == 4) return DType::float32;
  if (c == 'd' && itemsize == 8) return DType::float64;
  const bool is_signed = c == 'b' || c == 'h' || c == 'i' || c == 'l' || c == 'q' || c == 'n';
  const bool is_unsigned = c == 'B' || c == 'H' || c == 'I' || c == 'L' || c == 'Q' || c == 'N';
  if (!is_signed && !is_unsigned) return std::nullopt;
  switch (itemsize) {
    case 1:
      return is_signed ? DType::int8 : DType::uint8;
    case 2:
      return is_signed ? DType::int16 : DType::uint16;
    case 4:
      return is_signed ? DType::int32 : DType::uint32;
    case 8:
      return is_signed ? DType::int64 : DType::uint64;
    default:
      return std::nullopt;
  }
}

/// A buffer-protocol object (numpy array, memoryview, array.array) as a typed array sharing
/// its memory.
Value from_buffer(py::handle object) {
  auto held = std::make_shared<HeldView>();
  constexpr int kFlags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
  if (PyObject_GetBuffer(object.ptr(), &held->view, kFlags) != 0) {
    PyErr_Clear();
    // Strided (a slice with a step, a transpose): numpy makes a contiguous copy.
    py::object contiguous;
    try {
      contiguous = py::module_::import("numpy").attr("ascontiguousarray")(object);
    } catch (const py::error_already_set&) {
      cannot_send(object, "a buffer that is not C-contiguous");
    }
    if (PyObject_GetBuffer(contiguous.ptr(), &held->view, kFlags) != 0) {
      PyErr_Clear();
      cannot_send(object, "a buffer that is not C-contiguous");
    }
  }
  const Py_buffer& v = held->view;
  const auto dtype = dtype_of(v.format, v.itemsize);
  if (!dtype) {  // `held` releases the view as this throws
    const std::string format = v.format != nullptr ? v.format : "?";
    cannot_send(object, fmt::format("elements of format '{}'; convert it with astype()", format));
  }
  std::vector<std::uint64_t> shape;
  if (v.ndim == 0) {
    shape.push_back(1);
  } else {
    for (int i = 0; i < v.ndim; ++i)
      shape.push_back(
          static_cast<std::uint64_t>(v.shape != nullptr ? v.shape[i] : v.len / v.itemsize));
  }
  const auto* data = static_cast<const std::byte*>(v.buf);
  const auto size = static_cast<std::size_t>(v.len);
  Buffer buffer(std::shared_ptr<const void>(held, data), data, size);
  return Value(Array(*dtype, std::move(shape), std::move(buffer)));
}

}  // namespace

Value to_value(py::handle object) {
  PyObject* o = object.ptr();
  if (o == Py_None) return Value();
  if (PyBool_Check(o)) return Value(o == Py_True);
  if (PyLong_Check(o)) {
    int overflow = 0;
    const long long i = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow != 0) {
      PyErr_SetString(PyExc_OverflowError, fmt::format("int {} is outside ipp's int64",
                                                       py::str(object).cast<std::string>())
                                               .c_str());
      throw py::error_already_set();
    }
    return Value(static_cast<std::int64_t>(i));
  }
  if (PyFloat_Check(o)) return Value(PyFloat_AS_DOUBLE(o));
  if (PyUnicode_Check(o)) return Value(object.cast<std::string>());
  if (PyBytes_Check(o)) {
    const std::string_view b(PyBytes_AS_STRING(o), static_cast<std::size_t>(PyBytes_GET_SIZE(o)));
    return Value(Bytes{Buffer::copy(b.data(), b.size())});
  }
  if (PyByteArray_Check(o)) {
    return Value(Bytes{
        Buffer::copy(PyByteArray_AS_STRING(o), static_cast<std::size_t>(PyByteArray_GET_SIZE(o)))});
  }
  if (PyList_Check(o) || PyTuple_Check(o)) {
    Value::List items;
    const py::sequence seq = py::reinterpret_borrow<py::sequence>(object);
    items.reserve(seq.size());
    for (const auto item : seq)
      items.push_back(to_value(item));
    return Value(std::move(items));
  }
  if (PyDict_Check(o)) {
    Value::Map map;
    for (const auto [key, item] : py::reinterpret_borrow<py::dict>(object)) {
      if (!PyUnicode_Check(key.ptr())) {
        throw py::type_error(
            fmt::format("cannot send a dict with a key of type {}: ipp maps have str keys",
                        py::str(py::type::of(key).attr("__name__")).cast<std::string>()));
      }
      map.emplace(key.cast<std::string>(), to_value(item));
    }
    return Value(std::move(map));
  }
  if (PyRange_Check(o)) {
    return Value(Range{object.attr("start").cast<std::int64_t>(),
                       object.attr("stop").cast<std::int64_t>(),
                       object.attr("step").cast<std::int64_t>()});
  }
  // PyRef is a class of the client's module, not of an engine's embedded interpreter.
  if (py::detail::get_type_info(typeid(PyRef)) != nullptr && py::isinstance<PyRef>(object))
    return Value(Ref{object.cast<const PyRef&>().name});
  // numpy scalars (numpy.int64 is no int): their Python value.
  if (py::hasattr(object, "dtype") && py::hasattr(object, "item") && py::hasattr(object, "ndim") &&
      object.attr("ndim").cast<int>() == 0)
    return to_value(object.attr("item")());
  if (PyObject_CheckBuffer(o) != 0) return from_buffer(object);
  cannot_send(object);
}

Value to_value_or_pickled(py::handle object) {
  try {
    return to_value(object);
  } catch (const py::type_error&) {
  } catch (const py::error_already_set& e) {
    if (!e.matches(PyExc_OverflowError)) throw;
  }
  py::object pickler;
  try {
    pickler = py::module_::import("cloudpickle");
  } catch (const py::error_already_set&) {
    pickler = py::module_::import("pickle");
  }
  const py::bytes data = pickler.attr("dumps")(object);
  return pickled(std::string_view(data));
}

Value pickled(std::string_view data) {
  return Value::map({{kPickleKey, Bytes{Buffer::copy(data.data(), data.size())}}});
}

namespace {

py::object array_to_python(const Array& a) {
  const py::module_ numpy = py::module_::import("numpy");
  const py::dtype dtype = py::dtype(std::string(to_string(a.dtype())));
  std::vector<py::ssize_t> shape(a.shape().begin(), a.shape().end());
  // The numpy array views the received memory; a capsule keeps it alive.
  auto* hold = new Buffer(a.buffer());
  const py::capsule owner(hold, [](void* p) { delete static_cast<Buffer*>(p); });
  const void* data = hold->data();
  static const std::byte kNone[16]{};
  if (data == nullptr) data = kNone;  // an empty array still needs an address
  py::array out(dtype, shape, {}, data, owner);
  // Read-only: the memory may be shared with other values, or mapped read-only.
  out.attr("flags").attr("writeable") = false;
  return out;
}

}  // namespace

py::object to_python(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::null:
      return py::none();
    case Value::Kind::boolean:
      return py::bool_(v.as_bool());
    case Value::Kind::integer:
      return py::int_(v.as_int());
    case Value::Kind::floating:
      return py::float_(v.as_float());
    case Value::Kind::string: {
      const std::string& s = v.as_string();
      PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
      if (o == nullptr) throw py::error_already_set();
      return py::reinterpret_steal<py::object>(o);
    }
    case Value::Kind::bytes: {
      const Buffer& b = v.as_bytes().data;
      return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
    }
    case Value::Kind::array:
      return array_to_python(v.as_array());
    case Value::Kind::list: {
      const auto& items = v.as_list();
      py::list out(items.size());
      for (std::size_t i = 0; i < items.size(); ++i)
        out[i] = to_python(items[i]);
      return out;
    }
    case Value::Kind::map: {
      py::dict out;
      for (const auto& [key, item] : v.as_map())
        out[py::str(key)] = to_python(item);
      return out;
    }
    case Value::Kind::range: {
      const Range& r = v.as_range();
      return py::module_::import("builtins").attr("range")(r.start, r.stop, r.step);
    }
    case Value::Kind::ref:
      if (py::detail::get_type_info(typeid(PyRef)) == nullptr)
        throw py::type_error("ipp.ref('" + v.as_ref().name + "') where a value was expected");
      return py::cast(PyRef{v.as_ref().name});
  }
  return py::none();
}

}  // namespace ipp::python
