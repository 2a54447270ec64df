#pragma once

// Reading ipp.fb.Value buffers in place. Shared by the plugin side (task arguments) and the
// host side (decoding into ipp::Value), so both apply the same checks.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "ipp/abi.h"
#include "ipp/dtype.hpp"
#include "ipp/error.hpp"
#include "ipp/fb/value_generated.h"

namespace ipp::detail {

/// The side frames of one message, as the ABI passes them.
struct FrameTable {
  const ipp_bytes_v1* frames = nullptr;
  std::size_t count = 0;
};

/// A typed array's elements wherever they live (inline or in a side frame), checked:
/// the byte count matches the shape, and the frame index exists.
struct ArrayRef {
  DType dtype = DType::float64;
  const std::byte* data = nullptr;
  std::uint64_t size = 0;   // elements
  std::uint32_t frame = 0;  // 0 inline, else the side frame it lives in
};

/// Resolves an fb::Array. Throws ProtocolError when its bytes do not match its shape.
ArrayRef array_ref(const fb::Array* array, FrameTable frames);
/// Resolves fb::Bytes the same way.
std::span<const std::byte> bytes_ref(const fb::Bytes* bytes, FrameTable frames);

/// `"int"`, `"array[float64]"`, ... the same names Value::type_name gives.
std::string wire_type_name(const fb::Value* value);

/// Root of a payload that has already been verified (see ipp::verify).
inline const fb::Value* wire_root(const ipp_payload_v1& payload) noexcept {
  return flatbuffers::GetRoot<fb::Value>(payload.root.data);
}

/// Number of elements in a sequence (list, array, range); throws ArgumentError otherwise.
std::uint64_t wire_sequence_size(const fb::Value* value, FrameTable frames);

}  // namespace ipp::detail
