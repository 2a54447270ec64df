#include "ipp/value.hpp"

#include <cmath>
#include <cstring>
#include <iterator>
#include <ostream>
#include <stdexcept>

#include <fmt/format.h>

namespace ipp {

std::size_t dtype_size(DType dtype) noexcept {
  switch (dtype) {
    case DType::int8:
    case DType::uint8:
      return 1;
    case DType::int16:
    case DType::uint16:
      return 2;
    case DType::int32:
    case DType::uint32:
    case DType::float32:
      return 4;
    case DType::int64:
    case DType::uint64:
    case DType::float64:
      return 8;
  }
  return 8;
}

std::string_view to_string(DType dtype) noexcept {
  switch (dtype) {
    case DType::int8:
      return "int8";
    case DType::int16:
      return "int16";
    case DType::int32:
      return "int32";
    case DType::int64:
      return "int64";
    case DType::uint8:
      return "uint8";
    case DType::uint16:
      return "uint16";
    case DType::uint32:
      return "uint32";
    case DType::uint64:
      return "uint64";
    case DType::float32:
      return "float32";
    case DType::float64:
      return "float64";
  }
  return "float64";
}

bool operator==(const Bytes& a, const Bytes& b) noexcept {
  return a.data.size() == b.data.size() &&
         (a.data.size() == 0 || std::memcmp(a.data.data(), b.data.data(), a.data.size()) == 0);
}

// ---- Range ---------------------------------------------------------------------------------

std::uint64_t Range::size() const {
  if (step == 0) throw ArgumentError("range step must not be zero");
  // Differences are taken in unsigned arithmetic: stop - start can exceed int64's range.
  if (step > 0) {
    if (stop <= start) return 0;
    const std::uint64_t span = static_cast<std::uint64_t>(stop) - static_cast<std::uint64_t>(start);
    return (span - 1) / static_cast<std::uint64_t>(step) + 1;
  }
  if (stop >= start) return 0;
  const std::uint64_t span = static_cast<std::uint64_t>(start) - static_cast<std::uint64_t>(stop);
  const std::uint64_t magnitude = static_cast<std::uint64_t>(-(step + 1)) + 1;
  return (span - 1) / magnitude + 1;
}

Range Range::inclusive(std::int64_t first, std::int64_t last, std::int64_t step) {
  if (step == 0) throw ArgumentError("range step must not be zero");
  if (step > 0) {
    if (last == INT64_MAX) throw ArgumentError("range end is too large");
    return Range{first, last + 1, step};
  }
  if (last == INT64_MIN) throw ArgumentError("range end is too small");
  return Range{first, last - 1, step};
}

// ---- Array ---------------------------------------------------------------------------------

namespace {
std::uint64_t shape_product(const std::vector<std::uint64_t>& shape) {
  std::uint64_t n = 1;
  for (auto d : shape) {
    if (d != 0 && n > UINT64_MAX / d) throw ArgumentError("array shape overflows");
    n *= d;
  }
  return n;
}
}  // namespace

Array::Array(DType dtype, std::vector<std::uint64_t> shape, Buffer data)
    : dtype_(dtype), shape_(std::move(shape)), data_(std::move(data)) {
  if (shape_.empty()) throw ArgumentError("array shape must have at least one dimension");
  size_ = shape_product(shape_);
  const auto elem = dtype_size(dtype_);
  if (size_ > UINT64_MAX / elem || size_ * elem != data_.size()) {
    throw ArgumentError(fmt::format("array of shape {} and dtype {} needs {} bytes, got {}",
                                    fmt::join(shape_, "x"), to_string(dtype_), size_ * elem,
                                    data_.size()));
  }
}

void Array::check_view(DType wanted, std::size_t alignment) const {
  if (wanted != dtype_) {
    throw ArgumentError(
        fmt::format("expected array[{}], got array[{}]", to_string(wanted), to_string(dtype_)));
  }
  if (size_ != 0 && !data_.is_aligned(alignment)) {
    throw ArgumentError("array storage is not aligned for its element type");
  }
}

Array Array::slice(std::uint64_t begin, std::uint64_t end) const {
  if (begin > end || end > shape_[0]) throw std::out_of_range("ipp::Array::slice: bad range");
  const std::uint64_t row = shape_[0] == 0 ? 0 : size_ / shape_[0];
  const std::size_t elem = dtype_size(dtype_);
  auto shape = shape_;
  shape[0] = end - begin;
  return Array(dtype_, std::move(shape),
               data_.slice(begin * row * elem, (end - begin) * row * elem));
}

bool operator==(const Array& a, const Array& b) noexcept {
  return a.dtype_ == b.dtype_ && a.shape_ == b.shape_ &&
         (a.data_.size() == 0 || std::memcmp(a.data_.data(), b.data_.data(), a.data_.size()) == 0);
}

// ---- Value ---------------------------------------------------------------------------------

void Value::throw_uint_overflow(std::uint64_t i) {
  throw ArgumentError(fmt::format("{} does not fit in int64", i));
}

Value::Value(const std::vector<std::string>& v) {
  List items;
  items.reserve(v.size());
  for (const auto& s : v)
    items.emplace_back(s);
  v_ = std::move(items);
}

Value::Value(const std::vector<bool>& v) {
  List items;
  items.reserve(v.size());
  for (bool b : v)
    items.emplace_back(b);
  v_ = std::move(items);
}

std::string Value::type_name() const {
  switch (kind()) {
    case Kind::null:
      return "null";
    case Kind::boolean:
      return "bool";
    case Kind::integer:
      return "int";
    case Kind::floating:
      return "float";
    case Kind::string:
      return "string";
    case Kind::bytes:
      return "bytes";
    case Kind::array:
      return fmt::format("array[{}]", to_string(std::get<Array>(v_).dtype()));
    case Kind::list:
      return "list";
    case Kind::map:
      return "map";
    case Kind::range:
      return "range";
    case Kind::ref:
      return "ref";
  }
  return "value";
}

namespace {
[[noreturn]] void wrong_kind(std::string_view wanted, const Value& v) {
  throw ArgumentError(fmt::format("expected {}, got {}", wanted, v.type_name()));
}
}  // namespace

bool Value::as_bool() const {
  if (const auto* p = std::get_if<bool>(&v_)) return *p;
  wrong_kind("bool", *this);
}
std::int64_t Value::as_int() const {
  if (const auto* p = std::get_if<std::int64_t>(&v_)) return *p;
  wrong_kind("int", *this);
}
double Value::as_float() const {
  if (const auto* p = std::get_if<double>(&v_)) return *p;
  wrong_kind("float", *this);
}
const std::string& Value::as_string() const {
  if (const auto* p = std::get_if<std::string>(&v_)) return *p;
  wrong_kind("string", *this);
}
const Bytes& Value::as_bytes() const {
  if (const auto* p = std::get_if<Bytes>(&v_)) return *p;
  wrong_kind("bytes", *this);
}
const Array& Value::as_array() const {
  if (const auto* p = std::get_if<Array>(&v_)) return *p;
  wrong_kind("array", *this);
}
const Value::List& Value::as_list() const {
  if (const auto* p = std::get_if<List>(&v_)) return *p;
  wrong_kind("list", *this);
}
Value::List& Value::as_list() {
  if (auto* p = std::get_if<List>(&v_)) return *p;
  wrong_kind("list", *this);
}
const Value::Map& Value::as_map() const {
  if (const auto* p = std::get_if<Map>(&v_)) return *p;
  wrong_kind("map", *this);
}
Value::Map& Value::as_map() {
  if (auto* p = std::get_if<Map>(&v_)) return *p;
  wrong_kind("map", *this);
}
const Range& Value::as_range() const {
  if (const auto* p = std::get_if<Range>(&v_)) return *p;
  wrong_kind("range", *this);
}
const Ref& Value::as_ref() const {
  if (const auto* p = std::get_if<Ref>(&v_)) return *p;
  wrong_kind("ref", *this);
}

std::uint64_t Value::size() const noexcept {
  switch (kind()) {
    case Kind::list:
      return std::get<List>(v_).size();
    case Kind::map:
      return std::get<Map>(v_).size();
    case Kind::array:
      return std::get<Array>(v_).size();
    case Kind::range: {
      const auto& r = std::get<Range>(v_);
      return r.step == 0 ? 0 : r.size();
    }
    default:
      return 0;
  }
}

const Value& Value::operator[](std::size_t i) const {
  const auto& items = as_list();
  if (i >= items.size()) {
    throw std::out_of_range(fmt::format("list index {} out of range (size {})", i, items.size()));
  }
  return items[i];
}

const Value& Value::operator[](std::string_view key) const {
  const auto& entries = as_map();
  auto it = entries.find(key);
  if (it == entries.end()) throw ArgumentError(fmt::format("map has no key '{}'", key));
  return it->second;
}

bool operator==(const Value& a, const Value& b) noexcept {
  return a.v_ == b.v_;
}

// ---- repr ----------------------------------------------------------------------------------

namespace {

using Out = fmt::memory_buffer;

void put_float(Out& out, double d) {
  if (std::isnan(d)) {
    fmt::format_to(fmt::appender(out), "nan");
    return;
  }
  if (std::isinf(d)) {
    fmt::format_to(fmt::appender(out), "{}", d > 0 ? "inf" : "-inf");
    return;
  }
  const auto start = out.size();
  fmt::format_to(fmt::appender(out), "{}", d);
  std::string_view text(out.data() + start, out.size() - start);
  if (text.find_first_of(".e") == std::string_view::npos) {
    fmt::format_to(fmt::appender(out), ".0");
  }
}

void put_quoted(Out& out, std::string_view s, char prefix) {
  const bool use_double =
      s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos;
  const char quote = use_double ? '"' : '\'';
  if (prefix != 0) out.push_back(prefix);
  out.push_back(quote);
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '\\':
        fmt::format_to(fmt::appender(out), "\\\\");
        break;
      case '\n':
        fmt::format_to(fmt::appender(out), "\\n");
        break;
      case '\r':
        fmt::format_to(fmt::appender(out), "\\r");
        break;
      case '\t':
        fmt::format_to(fmt::appender(out), "\\t");
        break;
      default:
        if (c == quote) {
          out.push_back('\\');
          out.push_back(c);
        } else if (u < 0x20 || u == 0x7f || (prefix != 0 && u >= 0x80)) {
          fmt::format_to(fmt::appender(out), "\\x{:02x}", u);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back(quote);
}

// Text beyond this goes to the stream of write_repr as it is made, not kept whole in memory.
constexpr std::size_t kSpill = 1 << 16;

void spill(Out& out, std::ostream* sink) {
  if (sink == nullptr || out.size() < kSpill) return;
  sink->write(out.data(), static_cast<std::streamsize>(out.size()));
  out.clear();
}

void put_array(Out& out, const Array& a, std::ostream* sink) {
  const auto& shape = a.shape();
  const std::byte* data = a.buffer().data();
  std::uint64_t index = 0;
  // Nested lists, one level per dimension, like numpy's tolist().
  auto rec = [&](auto& self, std::size_t dim) -> void {
    out.push_back('[');
    for (std::uint64_t i = 0; i < shape[dim]; ++i) {
      if (i != 0) out.append(std::string_view(", "));
      spill(out, sink);
      if (dim + 1 < shape.size()) {
        self(self, dim + 1);
        continue;
      }
      detail::visit_dtype(a.dtype(), [&](auto tag) {
        using S = decltype(tag);
        const S v = detail::load<S>(data, index);
        if constexpr (std::is_floating_point_v<S>) {
          put_float(out, static_cast<double>(v));
        } else {
          const fmt::format_int text(v);
          out.append(text.data(), text.data() + text.size());
        }
      });
      ++index;
    }
    out.push_back(']');
  };
  rec(rec, 0);
}

void put(Out& out, const Value& v, std::ostream* sink) {
  switch (v.kind()) {
    case Value::Kind::null:
      fmt::format_to(fmt::appender(out), "None");
      return;
    case Value::Kind::boolean:
      fmt::format_to(fmt::appender(out), "{}", v.as_bool() ? "True" : "False");
      return;
    case Value::Kind::integer:
      fmt::format_to(fmt::appender(out), "{}", v.as_int());
      return;
    case Value::Kind::floating:
      put_float(out, v.as_float());
      return;
    case Value::Kind::string:
      put_quoted(out, v.as_string(), 0);
      return;
    case Value::Kind::bytes: {
      const auto& b = v.as_bytes().data;
      put_quoted(out, std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), 'b');
      return;
    }
    case Value::Kind::array:
      put_array(out, v.as_array(), sink);
      return;
    case Value::Kind::list: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v.as_list()) {
        if (!first) fmt::format_to(fmt::appender(out), ", ");
        first = false;
        spill(out, sink);
        put(out, item, sink);
      }
      out.push_back(']');
      return;
    }
    case Value::Kind::map: {
      out.push_back('{');
      bool first = true;
      for (const auto& [k, item] : v.as_map()) {
        if (!first) fmt::format_to(fmt::appender(out), ", ");
        first = false;
        put_quoted(out, k, 0);
        fmt::format_to(fmt::appender(out), ": ");
        put(out, item, sink);
      }
      out.push_back('}');
      return;
    }
    case Value::Kind::range: {
      const auto& r = v.as_range();
      if (r.step == 1)
        fmt::format_to(fmt::appender(out), "range({}, {})", r.start, r.stop);
      else
        fmt::format_to(fmt::appender(out), "range({}, {}, {})", r.start, r.stop, r.step);
      return;
    }
    case Value::Kind::ref:
      fmt::format_to(fmt::appender(out), "ref(");
      put_quoted(out, v.as_ref().name, 0);
      out.push_back(')');
      return;
  }
}

}  // namespace

std::string Value::repr() const {
  Out out;
  put(out, *this, nullptr);
  return fmt::to_string(out);
}

void Value::write_repr(std::ostream& os) const {
  Out out;
  put(out, *this, &os);
  os.write(out.data(), static_cast<std::streamsize>(out.size()));
}

}  // namespace ipp
