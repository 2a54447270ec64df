#pragma once

#include <pybind11/pybind11.h>

#include "ipp/value.hpp"

namespace ipp::python {

namespace py = pybind11;

/// A Python object as an ipp Value: None, bool, int (int64), float, str, bytes (and
/// bytearray), list and tuple (a list), dict with str keys (a map), range (a range, sent as
/// three numbers), ipp.Ref, numpy scalars, and numpy arrays or any C-contiguous buffer of
/// int8..uint64, float32 or float64 (a typed array that shares the object's memory: nothing
/// is copied, and the object is kept alive until the array is sent). Raises TypeError naming
/// what cannot be sent, and OverflowError for an int outside int64.
[[nodiscard]] Value to_value(py::handle object);

/// The key of the map {"__ipp_pickle__": bytes} that stands for a pickled Python object.
inline constexpr const char* kPickleKey = "__ipp_pickle__";

/// That map, over the bytes of a pickle.
[[nodiscard]] Value pickled(std::string_view data);

/// to_value(), or else the object pickled (with cloudpickle when it is installed) as the map
/// {"__ipp_pickle__": bytes} that the engines' python plugin and the client unpickle: how
/// namespace values and the arguments of Python functions travel.
[[nodiscard]] Value to_value_or_pickled(py::handle object);

/// An ipp Value as a Python object: arrays become read-only numpy arrays over the received
/// memory (no copy), ranges Python ranges, maps dicts.
[[nodiscard]] py::object to_python(const Value& value);

/// A name on the engines passed in place of its value (ipp::ref), as Python sees it.
struct PyRef {
  std::string name;
};

}  // namespace ipp::python
