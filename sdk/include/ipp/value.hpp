#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "ipp/buffer.hpp"
#include "ipp/dtype.hpp"
#include "ipp/error.hpp"

namespace ipp {

/// Raw bytes, shared without copying.
struct Bytes {
  Buffer data;
  friend bool operator==(const Bytes& a, const Bytes& b) noexcept;
};

/// The integers start, start + step, ... up to but excluding stop, like Python's range.
/// Travels as three numbers, never materialised unless a task asks for the elements.
struct Range {
  std::int64_t start = 0;
  std::int64_t stop = 0;
  std::int64_t step = 1;

  /// Number of elements; 0 when empty. Throws ArgumentError when step is 0.
  [[nodiscard]] std::uint64_t size() const;
  /// Element i (no bounds check).
  [[nodiscard]] std::int64_t operator[](std::uint64_t i) const noexcept {
    return start + static_cast<std::int64_t>(i) * step;
  }
  /// The inclusive range `first..last` as the command line spells it (step may be negative).
  static Range inclusive(std::int64_t first, std::int64_t last, std::int64_t step = 1);
  friend bool operator==(const Range&, const Range&) noexcept = default;
};

/// An n-dimensional typed array (row-major), sharing its storage without copying.
///
///     auto a = ipp::Array::from(std::vector<double>{1.0, 2.0, 3.0});  // adopts the vector
///     std::span<const double> xs = a.view<double>();                   // reads in place
class Array {
 public:
  /// An empty one-dimensional float64 array.
  Array() = default;
  /// An array over `data`. Throws ArgumentError when data.size() is not the shape's product
  /// times the element size.
  Array(DType dtype, std::vector<std::uint64_t> shape, Buffer data);

  /// A one-dimensional array that adopts `values` without copying.
  template <Numeric T>
  static Array from(std::vector<T>&& values) {
    const auto n = static_cast<std::uint64_t>(values.size());
    return Array(dtype_v<T>, {n}, Buffer::adopt(std::move(values)));
  }
  /// A one-dimensional array holding a copy of `values`.
  template <Numeric T>
  static Array from(std::span<const T> values) {
    return Array(dtype_v<T>, {values.size()}, Buffer::copy(values.data(), values.size_bytes()));
  }
  template <Numeric T>
  static Array from(const std::vector<T>& values) {
    return from(std::span<const T>(values));
  }

  [[nodiscard]] DType dtype() const noexcept { return dtype_; }
  [[nodiscard]] const std::vector<std::uint64_t>& shape() const noexcept { return shape_; }
  /// Number of elements (the product of the shape).
  [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
  [[nodiscard]] const Buffer& buffer() const noexcept { return data_; }

  /// The elements in place. Throws ArgumentError unless dtype() is exactly T's.
  template <Numeric T>
  [[nodiscard]] std::span<const T> view() const {
    check_view(dtype_v<T>, alignof(T));
    return {reinterpret_cast<const T*>(data_.data()), static_cast<std::size_t>(size_)};
  }
  /// Elements [begin, end) along the first axis, sharing storage. Throws std::out_of_range.
  [[nodiscard]] Array slice(std::uint64_t begin, std::uint64_t end) const;

  friend bool operator==(const Array& a, const Array& b) noexcept;

 private:
  void check_view(DType wanted, std::size_t alignment) const;

  DType dtype_ = DType::float64;
  std::vector<std::uint64_t> shape_{0};
  std::uint64_t size_ = 0;
  Buffer data_;
};

/// A name in an engine's namespace, passed as an argument instead of the value it is bound
/// to: the engine that runs the task substitutes its own value, so nothing moves through the
/// client. Made with ipp::ref().
struct Ref {
  std::string name;
  friend bool operator==(const Ref&, const Ref&) noexcept = default;
};

class Value;
namespace detail {
template <class T>
struct Convert;
}  // namespace detail

/// A dynamic value: what every argument, result and namespace entry is.
///
/// Kinds: null, bool, int (int64), float (float64), string, bytes, typed array, list, map
/// (string keys), range, ref (a name on an engine, see ipp::ref). Construct from ordinary C++
/// values; read back with as<T>(), which converts strictly: lossless widening (int -> double, an
/// int that fits -> int8) is allowed, anything that would lose information throws ArgumentError
/// saying what and why.
///
///     ipp::Value v = std::vector<std::int64_t>{1, 2, 3};   // an int64 array
///     auto xs = v.as<std::vector<double>>();               // {1.0, 2.0, 3.0}
///     ipp::Value m = ipp::Value::map({{"n", 4}, {"name", "x"}});
///     std::int64_t n = m["n"].as<std::int64_t>();
class Value {
 public:
  using List = std::vector<Value>;
  using Map = std::map<std::string, Value, std::less<>>;
  enum class Kind : std::uint8_t {
    null,
    boolean,
    integer,
    floating,
    string,
    bytes,
    array,
    list,
    map,
    range,
    ref
  };

  Value() noexcept = default;
  Value(std::nullptr_t) noexcept {}  // NOLINT(google-explicit-constructor)
  Value(bool b) noexcept : v_(b) {}  // NOLINT(google-explicit-constructor)
  template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>) Value(T i)
      : v_(checked_int(i)) {}                              // NOLINT(google-explicit-constructor)
  Value(double d) noexcept : v_(d) {}                      // NOLINT(google-explicit-constructor)
  Value(float f) noexcept : v_(static_cast<double>(f)) {}  // NOLINT(google-explicit-constructor)
  Value(const char* s) : v_(std::string(s)) {}             // NOLINT(google-explicit-constructor)
  Value(std::string s) noexcept : v_(std::move(s)) {}      // NOLINT(google-explicit-constructor)
  Value(std::string_view s) : v_(std::string(s)) {}        // NOLINT(google-explicit-constructor)
  Value(Bytes b) noexcept : v_(std::move(b)) {}            // NOLINT(google-explicit-constructor)
  Value(Array a) noexcept : v_(std::move(a)) {}            // NOLINT(google-explicit-constructor)
  Value(List l) noexcept : v_(std::move(l)) {}             // NOLINT(google-explicit-constructor)
  Value(Map m) noexcept : v_(std::move(m)) {}              // NOLINT(google-explicit-constructor)
  Value(Range r) noexcept : v_(r) {}                       // NOLINT(google-explicit-constructor)
  Value(Ref r) noexcept : v_(std::move(r)) {}              // NOLINT(google-explicit-constructor)
  /// A numeric vector becomes a typed array, adopting the storage.
  template <Numeric T>
  Value(std::vector<T> v) : v_(Array::from(std::move(v))) {}  // NOLINT(google-explicit-constructor)
  /// A numeric span becomes a typed array holding a copy.
  template <Numeric T>
  Value(std::span<const T> v) : v_(Array::from(v)) {}  // NOLINT(google-explicit-constructor)
  Value(const std::vector<std::string>& v);            // NOLINT(google-explicit-constructor)
  Value(const std::vector<bool>& v);                   // NOLINT(google-explicit-constructor)

  /// A list: `Value::list({1, "two", 3.0})`.
  static Value list(std::initializer_list<Value> items) { return Value(List(items)); }
  /// A map: `Value::map({{"a", 1}, {"b", "x"}})`.
  static Value map(std::initializer_list<std::pair<const std::string, Value>> entries) {
    return Value(Map(entries));
  }

  [[nodiscard]] Kind kind() const noexcept { return static_cast<Kind>(v_.index()); }
  [[nodiscard]] bool is_null() const noexcept { return kind() == Kind::null; }
  /// `"int"`, `"array[float64]"`, ... for messages.
  [[nodiscard]] std::string type_name() const;

  /// Strict conversion to T (see the class comment). Throws ArgumentError.
  template <class T>
  [[nodiscard]] T as() const;
  /// Same as as<T>().
  template <class T>
  [[nodiscard]] T get() const {
    return as<T>();
  }

  // Direct access to a kind's payload. Each throws ArgumentError when the kind differs.
  [[nodiscard]] bool as_bool() const;
  [[nodiscard]] std::int64_t as_int() const;
  [[nodiscard]] double as_float() const;
  [[nodiscard]] const std::string& as_string() const;
  [[nodiscard]] const Bytes& as_bytes() const;
  [[nodiscard]] const Array& as_array() const;
  [[nodiscard]] const List& as_list() const;
  [[nodiscard]] List& as_list();
  [[nodiscard]] const Map& as_map() const;
  [[nodiscard]] Map& as_map();
  [[nodiscard]] const Range& as_range() const;
  [[nodiscard]] const Ref& as_ref() const;

  /// Elements of a list, array, range or map; characters are not counted (0 otherwise).
  [[nodiscard]] std::uint64_t size() const noexcept;
  /// List element i. Throws ArgumentError on another kind, std::out_of_range past the end.
  [[nodiscard]] const Value& operator[](std::size_t i) const;
  /// Map entry `key`. Throws ArgumentError on another kind or a missing key.
  [[nodiscard]] const Value& operator[](std::string_view key) const;

  /// Python-like text: `None`, `True`, `42`, `2.5`, `'text'`, `[1, 2]`, `{'a': 1}`,
  /// `array([1., 2.], dtype=float64)`, `range(0, 10)`, `b'..'`.
  [[nodiscard]] std::string repr() const;
  /// Writes repr() to `os` as it is made: a large value's text is never held whole.
  void write_repr(std::ostream& os) const;

  friend bool operator==(const Value& a, const Value& b) noexcept;

 private:
  template <std::integral T>
  static std::int64_t checked_int(T i) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
      if (i > static_cast<T>(INT64_MAX)) throw_uint_overflow(static_cast<std::uint64_t>(i));
    }
    return static_cast<std::int64_t>(i);
  }
  [[noreturn]] static void throw_uint_overflow(std::uint64_t i);

  std::variant<std::monostate, bool, std::int64_t, double, std::string, Bytes, Array, List, Map,
               Range, Ref>
      v_;
};

}  // namespace ipp

#include "ipp/detail/convert.hpp"

namespace ipp {
/// An argument that names a value in the namespace of the engine running the task:
///
///     view.push({{"x", big_array}});
///     view.apply("sum", {ipp::ref("x")});    // each engine passes its own x; nothing is sent
///
/// A name the engine does not have fails the task with NameError naming it.
inline Value ref(std::string name) {
  return Value(Ref{std::move(name)});
}

template <class T>
T Value::as() const {
  return detail::Convert<std::remove_cvref_t<T>>::from_value(*this);
}
}  // namespace ipp
