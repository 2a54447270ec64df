#pragma once

// Strict conversions from values to C++ types, applied the same way to an ipp::Value and to
// an ipp.fb.Value read in place. The rules:
//   - lossless widening is allowed: an int to double when exact, an int that fits to int8,
//     an int array to std::vector<double> when every element is exact;
//   - narrowing (float -> int) and values that do not fit are errors that say which;
//   - kinds never mix otherwise (a bool is not an int, a string is not a number).
// Every failure throws ipp::ArgumentError with "expected X, got Y".

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ipp/detail/wire.hpp"
#include "ipp/value.hpp"

namespace ipp {
class Context;
}

namespace ipp::detail {

// ---- names of C++ types, for signatures and messages ------------------------------------

template <class T>
struct TypeName;

template <class T>
std::string type_name() {
  return TypeName<std::remove_cvref_t<T>>::get();
}

template <>
struct TypeName<bool> {
  static std::string get() { return "bool"; }
};
template <Numeric T>
struct TypeName<T> {
  static std::string get() { return std::string(to_string(dtype_v<T>)); }
};
template <>
struct TypeName<std::string> {
  static std::string get() { return "string"; }
};
template <>
struct TypeName<std::string_view> {
  static std::string get() { return "string"; }
};
template <>
struct TypeName<Value> {
  static std::string get() { return "value"; }
};
template <>
struct TypeName<Array> {
  static std::string get() { return "array"; }
};
template <>
struct TypeName<Range> {
  static std::string get() { return "range"; }
};
template <>
struct TypeName<Bytes> {
  static std::string get() { return "bytes"; }
};
template <>
struct TypeName<Context> {
  static std::string get() { return "context"; }
};
template <>
struct TypeName<void> {
  static std::string get() { return "null"; }
};
template <class E>
struct TypeName<std::vector<E>> {
  static std::string get() { return "list[" + type_name<E>() + "]"; }
};
template <class E>
struct TypeName<std::span<const E>> {
  static std::string get() { return "array[" + type_name<E>() + "]"; }
};
template <class E>
struct TypeName<std::map<std::string, E>> {
  static std::string get() { return "map[string, " + type_name<E>() + "]"; }
};
template <class... E>
struct TypeName<std::tuple<E...>> {
  static std::string get() {
    std::string s = "tuple[";
    bool first = true;
    ((s += (first ? "" : ", ") + type_name<E>(), first = false), ...);
    return s + "]";
  }
};
template <class A, class B>
struct TypeName<std::pair<A, B>> {
  static std::string get() { return "tuple[" + type_name<A>() + ", " + type_name<B>() + "]"; }
};

template <class T>
inline constexpr bool is_span_v = false;
template <class E>
inline constexpr bool is_span_v<std::span<const E>> = true;

// ---- failures -----------------------------------------------------------------------------

[[noreturn]] void throw_mismatch(std::string_view expected, std::string_view got);
[[noreturn]] void throw_narrowing(std::string_view expected, std::string_view got);
[[noreturn]] void throw_out_of_range(std::string_view expected, std::string_view value);
std::string number_text(std::int64_t v);
std::string number_text(std::uint64_t v);
std::string number_text(double v);
template <class S>
std::string number_text_of(S v) {
  if constexpr (std::is_floating_point_v<S>)
    return number_text(static_cast<double>(v));
  else if constexpr (std::is_signed_v<S>)
    return number_text(static_cast<std::int64_t>(v));
  else
    return number_text(static_cast<std::uint64_t>(v));
}
/// Rethrows the ArgumentError being handled with `prefix` in front of its message.
[[noreturn]] void rethrow_with_prefix(const ArgumentError& error, std::string_view prefix);
[[noreturn]] void rethrow_element(const ArgumentError& error, std::uint64_t index);

// ---- scalar rules ------------------------------------------------------------------------

/// Converts one number to T losslessly or throws. S is int64_t, uint64_t or double (or any
/// Numeric when reading arrays).
template <class T, class S>
T convert_number(S v) {
  if constexpr (std::is_same_v<T, S>) {
    return v;
  } else if constexpr (std::is_integral_v<T>) {
    if constexpr (std::is_floating_point_v<S>) {
      throw_narrowing(type_name<T>(), type_name<S>());
    } else {
      if (!std::in_range<T>(v)) throw_out_of_range(type_name<T>(), number_text_of(v));
      return static_cast<T>(v);
    }
  } else if constexpr (std::is_integral_v<S>) {
    // int -> float: exact when the integer survives the round trip. Compare in long double
    // range first, since casting an out-of-range float back to an integer is undefined.
    const T t = static_cast<T>(v);
    constexpr auto lo = static_cast<long double>(std::numeric_limits<S>::min());
    constexpr auto hi = static_cast<long double>(std::numeric_limits<S>::max());
    const auto lt = static_cast<long double>(t);
    if (lt < lo || lt > hi || static_cast<S>(t) != v) {
      throw_out_of_range(type_name<T>(), number_text_of(v) + " (not exact)");
    }
    return t;
  } else if constexpr (sizeof(T) >= sizeof(S)) {
    return static_cast<T>(v);
  } else {  // double -> float
    if (std::isnan(v) || std::isinf(v)) return static_cast<T>(v);
    if (std::fabs(v) > static_cast<S>(std::numeric_limits<T>::max()) ||
        static_cast<S>(static_cast<T>(v)) != v) {
      throw_out_of_range(type_name<T>(), number_text_of(v) + " (not exact)");
    }
    return static_cast<T>(v);
  }
}

template <class F>
decltype(auto) visit_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::int8:
      return f(std::int8_t{});
    case DType::int16:
      return f(std::int16_t{});
    case DType::int32:
      return f(std::int32_t{});
    case DType::int64:
      return f(std::int64_t{});
    case DType::uint8:
      return f(std::uint8_t{});
    case DType::uint16:
      return f(std::uint16_t{});
    case DType::uint32:
      return f(std::uint32_t{});
    case DType::uint64:
      return f(std::uint64_t{});
    case DType::float32:
      return f(float{});
    case DType::float64:
      break;
  }
  return f(double{});
}

/// Reads element i of a typed array of dtype S. Uses memcpy: the bytes may be misaligned.
template <class S>
S load(const std::byte* data, std::uint64_t i) noexcept {
  S s;
  std::memcpy(&s, data + i * sizeof(S), sizeof(S));
  return s;
}

/// Converts elements [0, n) of `a` into out[0..n).
template <Numeric T>
void convert_elements(const ArrayRef& a, T* out, std::uint64_t n) {
  if (a.dtype == dtype_v<T>) {
    if (n != 0) std::memcpy(out, a.data, n * sizeof(T));
    return;
  }
  visit_dtype(a.dtype, [&](auto tag) {
    using S = decltype(tag);
    for (std::uint64_t i = 0; i < n; ++i) {
      try {
        out[i] = convert_number<T>(load<S>(a.data, i));
      } catch (const ArgumentError& e) {
        rethrow_element(e, i);
      }
    }
  });
}

template <class T>
struct Convert;

/// Converts each element of a wire or in-memory sequence to E.
template <class E>
std::vector<E> convert_sequence_from_wire(const fb::Value* v, FrameTable frames);
template <class E>
std::vector<E> convert_sequence_from_value(const Value& v);

// ---- scalars -----------------------------------------------------------------------------

template <>
struct Convert<bool> {
  static bool from_value(const Value& v) {
    if (v.kind() != Value::Kind::boolean) throw_mismatch("bool", v.type_name());
    return v.as_bool();
  }
  static bool from_wire(const fb::Value* v, FrameTable) {
    const auto* b = v->data_as_Bool();
    if (b == nullptr) throw_mismatch("bool", wire_type_name(v));
    return b->v();
  }
};

template <Numeric T>
struct Convert<T> {
  static T from_value(const Value& v) {
    switch (v.kind()) {
      case Value::Kind::integer:
        return convert_number<T>(v.as_int());
      case Value::Kind::floating:
        return convert_number<T>(v.as_float());
      default:
        throw_mismatch(type_name<T>(), v.type_name());
    }
  }
  static T from_wire(const fb::Value* v, FrameTable) {
    switch (v->data_type()) {
      case fb::Data::Int:
        return convert_number<T>(v->data_as_Int()->v());
      case fb::Data::Float:
        return convert_number<T>(v->data_as_Float()->v());
      default:
        throw_mismatch(type_name<T>(), wire_type_name(v));
    }
  }
};

template <>
struct Convert<std::string> {
  static std::string from_value(const Value& v) {
    if (v.kind() != Value::Kind::string) throw_mismatch("string", v.type_name());
    return v.as_string();
  }
  static std::string from_wire(const fb::Value* v, FrameTable) {
    const auto* s = v->data_as_String();
    if (s == nullptr) throw_mismatch("string", wire_type_name(v));
    return s->v()->str();
  }
};

/// A view of the string where it lies: in the received buffer, or in the Value.
template <>
struct Convert<std::string_view> {
  static std::string_view from_value(const Value& v) {
    if (v.kind() != Value::Kind::string) throw_mismatch("string", v.type_name());
    return v.as_string();
  }
  static std::string_view from_wire(const fb::Value* v, FrameTable) {
    const auto* s = v->data_as_String();
    if (s == nullptr) throw_mismatch("string", wire_type_name(v));
    return s->v()->string_view();
  }
};

template <>
struct Convert<Value> {
  static Value from_value(const Value& v) { return v; }
  /// Decodes with copies: the result may outlive the buffer.
  static Value from_wire(const fb::Value* v, FrameTable frames);
};

template <>
struct Convert<Array> {
  static Array from_value(const Value& v) {
    if (v.kind() != Value::Kind::array) throw_mismatch("array", v.type_name());
    return v.as_array();
  }
  static Array from_wire(const fb::Value* v, FrameTable frames);
};

template <>
struct Convert<Range> {
  static Range from_value(const Value& v) {
    if (v.kind() != Value::Kind::range) throw_mismatch("range", v.type_name());
    return v.as_range();
  }
  static Range from_wire(const fb::Value* v, FrameTable) {
    const auto* r = v->data_as_Range();
    if (r == nullptr) throw_mismatch("range", wire_type_name(v));
    return Range{r->start(), r->stop(), r->step()};
  }
};

template <>
struct Convert<Bytes> {
  static Bytes from_value(const Value& v) {
    if (v.kind() != Value::Kind::bytes) throw_mismatch("bytes", v.type_name());
    return v.as_bytes();
  }
  static Bytes from_wire(const fb::Value* v, FrameTable frames) {
    if (v->data_type() != fb::Data::Bytes) throw_mismatch("bytes", wire_type_name(v));
    auto span = bytes_ref(v->data_as_Bytes(), frames);
    return Bytes{Buffer::copy(span.data(), span.size())};
  }
};

// ---- containers --------------------------------------------------------------------------

/// std::vector<E>: from a list (element-wise), a typed array (numeric E), or a range.
template <class E>
struct Convert<std::vector<E>> {
  static std::vector<E> from_value(const Value& v) { return convert_sequence_from_value<E>(v); }
  static std::vector<E> from_wire(const fb::Value* v, FrameTable frames) {
    return convert_sequence_from_wire<E>(v, frames);
  }
};

/// std::span<const E>: the elements of a typed array of exactly E, in place.
/// (Task parameters of this type also accept other sequences, converted; see TaskAdapter.)
template <Numeric E>
struct Convert<std::span<const E>> {
  static std::span<const E> from_value(const Value& v) {
    if (v.kind() != Value::Kind::array)
      throw_mismatch(type_name<std::span<const E>>(), v.type_name());
    return v.as_array().template view<E>();
  }
};

template <class E>
struct Convert<std::map<std::string, E>> {
  static std::map<std::string, E> from_value(const Value& v) {
    if (v.kind() != Value::Kind::map)
      throw_mismatch(type_name<std::map<std::string, E>>(), v.type_name());
    std::map<std::string, E> out;
    for (const auto& [k, item] : v.as_map()) {
      try {
        out.emplace(k, Convert<E>::from_value(item));
      } catch (const ArgumentError& e) {
        rethrow_with_prefix(e, "key '" + k + "': ");
      }
    }
    return out;
  }
  static std::map<std::string, E> from_wire(const fb::Value* v, FrameTable frames) {
    const auto* m = v->data_as_Map();
    if (m == nullptr) throw_mismatch(type_name<std::map<std::string, E>>(), wire_type_name(v));
    std::map<std::string, E> out;
    for (const auto* entry : *m->entries()) {
      try {
        out.emplace(entry->key()->str(), Convert<E>::from_wire(entry->value(), frames));
      } catch (const ArgumentError& e) {
        rethrow_with_prefix(e, "key '" + entry->key()->str() + "': ");
      }
    }
    return out;
  }
};

template <class... E>
struct Convert<std::tuple<E...>> {
  static std::tuple<E...> from_value(const Value& v) {
    if (v.kind() != Value::Kind::list || v.size() != sizeof...(E)) {
      throw_mismatch(type_name<std::tuple<E...>>(),
                     v.type_name() + " of " + std::to_string(v.size()));
    }
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::tuple<E...>{Convert<E>::from_value(v.as_list()[I])...};
    }
    (std::index_sequence_for<E...>{});
  }
};
template <class A, class B>
struct Convert<std::pair<A, B>> {
  static std::pair<A, B> from_value(const Value& v) {
    auto t = Convert<std::tuple<A, B>>::from_value(v);
    return {std::move(std::get<0>(t)), std::move(std::get<1>(t))};
  }
};

template <class E>
std::vector<E> convert_sequence_from_value(const Value& v) {
  std::vector<E> out;
  switch (v.kind()) {
    case Value::Kind::list: {
      const auto& items = v.as_list();
      out.reserve(items.size());
      for (std::size_t i = 0; i < items.size(); ++i) {
        try {
          out.push_back(Convert<E>::from_value(items[i]));
        } catch (const ArgumentError& e) {
          rethrow_element(e, i);
        }
      }
      return out;
    }
    case Value::Kind::array:
      if constexpr (Numeric<E>) {
        const auto& a = v.as_array();
        out.resize(a.size());
        convert_elements(ArrayRef{a.dtype(), a.buffer().data(), a.size(), 0}, out.data(), a.size());
        return out;
      }
      break;
    case Value::Kind::range:
      if constexpr (Numeric<E>) {
        const auto& r = v.as_range();
        const auto n = r.size();
        out.reserve(n);
        for (std::uint64_t i = 0; i < n; ++i)
          out.push_back(convert_number<E>(r[i]));
        return out;
      }
      break;
    default:
      break;
  }
  throw_mismatch(type_name<std::vector<E>>(), v.type_name());
}

template <class E>
std::vector<E> convert_sequence_from_wire(const fb::Value* v, FrameTable frames) {
  std::vector<E> out;
  switch (v->data_type()) {
    case fb::Data::List: {
      const auto* items = v->data_as_List()->items();
      out.reserve(items->size());
      for (flatbuffers::uoffset_t i = 0; i < items->size(); ++i) {
        try {
          out.push_back(Convert<E>::from_wire(items->Get(i), frames));
        } catch (const ArgumentError& e) {
          rethrow_element(e, i);
        }
      }
      return out;
    }
    case fb::Data::Array:
      if constexpr (Numeric<E>) {
        const ArrayRef a = array_ref(v->data_as_Array(), frames);
        out.resize(a.size);
        convert_elements(a, out.data(), a.size);
        return out;
      }
      break;
    case fb::Data::Range:
      if constexpr (Numeric<E>) {
        const auto* r = v->data_as_Range();
        const Range range{r->start(), r->stop(), r->step()};
        const auto n = range.size();
        out.reserve(n);
        for (std::uint64_t i = 0; i < n; ++i)
          out.push_back(convert_number<E>(range[i]));
        return out;
      }
      break;
    default:
      break;
  }
  throw_mismatch(type_name<std::vector<E>>(), wire_type_name(v));
}

}  // namespace ipp::detail
