#include "ipp/detail/convert.hpp"

#include <fmt/format.h>

#include "ipp/codec.hpp"

namespace ipp::detail {

void throw_mismatch(std::string_view expected, std::string_view got) {
  throw ArgumentError(fmt::format("expected {}, got {}", expected, got));
}

void throw_narrowing(std::string_view expected, std::string_view got) {
  throw ArgumentError(
      fmt::format("expected {}, got {} (narrowing conversions are not allowed)", expected, got));
}

void throw_out_of_range(std::string_view expected, std::string_view value) {
  throw ArgumentError(fmt::format("{} does not fit in {}", value, expected));
}

std::string number_text(std::int64_t v) {
  return fmt::format("{}", v);
}
std::string number_text(std::uint64_t v) {
  return fmt::format("{}", v);
}
std::string number_text(double v) {
  return fmt::format("{}", v);
}

void rethrow_with_prefix(const ArgumentError& error, std::string_view prefix) {
  throw ArgumentError(fmt::format("{}{}", prefix, error.what()));
}

void rethrow_element(const ArgumentError& error, std::uint64_t index) {
  throw ArgumentError(fmt::format("element {}: {}", index, error.what()));
}

Value Convert<Value>::from_wire(const fb::Value* v, FrameTable frames) {
  return decode(v, frames, nullptr, {});
}

Array Convert<Array>::from_wire(const fb::Value* v, FrameTable frames) {
  if (v->data_type() != fb::Data::Array) throw_mismatch("array", wire_type_name(v));
  return decode(v, frames, nullptr, {}).as_array();
}

}  // namespace ipp::detail
