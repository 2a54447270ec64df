#include "ipp/detail/wire.hpp"

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "ipp/value.hpp"

namespace ipp::detail {

namespace {
/// Empty lists an array with no elements may print as (its dimensions before the first 0).
constexpr std::uint64_t kMaxEmptyLists = std::uint64_t{1} << 20;

std::uint64_t checked_elements(const flatbuffers::Vector<std::uint64_t>* shape) {
  if (shape->size() == 0) throw ProtocolError("array has an empty shape");
  // The verifier checks a vector's length, not that its 8-byte elements are aligned (a
  // builder always aligns them): reading a misaligned one would be undefined.
  if (reinterpret_cast<std::uintptr_t>(shape->data()) % alignof(std::uint64_t) != 0)
    throw ProtocolError("array shape is misaligned");
  std::uint64_t n = 1;
  std::uint64_t before_zero = 1;  // the product of the dimensions before the first 0
  bool zero = false;
  for (auto d : *shape) {
    if (d != 0 && n > UINT64_MAX / d) throw ProtocolError("array shape overflows");
    n *= d;
    if (d == 0) zero = true;
    if (!zero) {
      if (before_zero > kMaxEmptyLists / std::max<std::uint64_t>(d, 1))
        before_zero = kMaxEmptyLists + 1;
      else
        before_zero *= d;
    }
  }
  // [10^9, 0] holds nothing, but reads as a billion empty lists.
  if (n == 0 && before_zero > kMaxEmptyLists)
    throw ProtocolError("an array with no elements whose shape makes more than 2^20 empty lists");
  return n;
}
}  // namespace

ArrayRef array_ref(const fb::Array* array, FrameTable frames) {
  const auto raw_dtype = static_cast<std::uint8_t>(array->dtype());
  if (raw_dtype > static_cast<std::uint8_t>(fb::DType::MAX)) {
    throw ProtocolError(fmt::format("array has unknown dtype {}", raw_dtype));
  }
  ArrayRef ref;
  ref.dtype = static_cast<DType>(raw_dtype);
  ref.size = checked_elements(array->shape());
  const std::size_t elem = dtype_size(ref.dtype);
  if (ref.size > UINT64_MAX / elem) throw ProtocolError("array size overflows");
  const std::uint64_t bytes = ref.size * elem;
  ref.frame = array->frame();
  if (ref.frame == 0) {
    const auto* data = array->data();
    const std::uint64_t have = data == nullptr ? 0 : data->size();
    if (have != bytes) {
      throw ProtocolError(fmt::format("array of {} {} elements carries {} bytes, expected {}",
                                      ref.size, to_string(ref.dtype), have, bytes));
    }
    ref.data = data == nullptr ? nullptr : reinterpret_cast<const std::byte*>(data->data());
    return ref;
  }
  if (ref.frame > frames.count) {
    throw ProtocolError(fmt::format("array refers to frame {} but the message has {} side frames",
                                    ref.frame, frames.count));
  }
  const auto& frame = frames.frames[ref.frame - 1];
  if (frame.size != bytes) {
    throw ProtocolError(fmt::format("array of {} {} elements: frame {} holds {} bytes, expected {}",
                                    ref.size, to_string(ref.dtype), ref.frame, frame.size, bytes));
  }
  ref.data = static_cast<const std::byte*>(frame.data);
  return ref;
}

std::span<const std::byte> bytes_ref(const fb::Bytes* bytes, FrameTable frames) {
  if (bytes->frame() == 0) {
    const auto* data = bytes->data();
    if (data == nullptr) return {};
    return {reinterpret_cast<const std::byte*>(data->data()), data->size()};
  }
  if (bytes->frame() > frames.count) {
    throw ProtocolError(fmt::format("bytes refer to frame {} but the message has {} side frames",
                                    bytes->frame(), frames.count));
  }
  const auto& frame = frames.frames[bytes->frame() - 1];
  return {static_cast<const std::byte*>(frame.data), frame.size};
}

std::string wire_type_name(const fb::Value* value) {
  switch (value->data_type()) {
    case fb::Data::Null:
      return "null";
    case fb::Data::Bool:
      return "bool";
    case fb::Data::Int:
      return "int";
    case fb::Data::Float:
      return "float";
    case fb::Data::String:
      return "string";
    case fb::Data::Bytes:
      return "bytes";
    case fb::Data::Array: {
      const auto raw = static_cast<std::uint8_t>(value->data_as_Array()->dtype());
      if (raw > static_cast<std::uint8_t>(fb::DType::MAX)) return "array[?]";
      return fmt::format("array[{}]", to_string(static_cast<DType>(raw)));
    }
    case fb::Data::List:
      return "list";
    case fb::Data::Map:
      return "map";
    case fb::Data::Range:
      return "range";
    case fb::Data::Ref:
      return "ref";
    default:
      return fmt::format("unknown kind {}", static_cast<int>(value->data_type()));
  }
}

std::uint64_t wire_sequence_size(const fb::Value* value, FrameTable frames) {
  switch (value->data_type()) {
    case fb::Data::List:
      return value->data_as_List()->items()->size();
    case fb::Data::Array: {
      const auto* shape = value->data_as_Array()->shape();
      if (shape->size() != 1) {
        throw ArgumentError(
            fmt::format("expected a one-dimensional sequence, got a {}-d array", shape->size()));
      }
      return array_ref(value->data_as_Array(), frames).size;
    }
    case fb::Data::Range: {
      const auto* r = value->data_as_Range();
      return Range{r->start(), r->stop(), r->step()}.size();
    }
    default:
      throw ArgumentError(
          fmt::format("expected a sequence (list, array or range), got {}", wire_type_name(value)));
  }
}

}  // namespace ipp::detail
