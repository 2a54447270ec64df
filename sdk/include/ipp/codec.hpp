#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <flatbuffers/flatbuffers.h>

#include "ipp/abi.h"
#include "ipp/buffer.hpp"
#include "ipp/fb/value_generated.h"
#include "ipp/value.hpp"

namespace ipp {

/// A value ready for the wire: one FlatBuffers buffer (root ipp.fb.Value) plus the side
/// frames its large arrays live in. Each part is a Buffer, so a Payload built from received
/// frames reads them in place and one built from a Value shares its arrays' storage.
struct Payload {
  Buffer root;
  std::vector<Buffer> frames;

  /// The ABI view of this payload. `scratch` receives the frame table and must outlive the
  /// returned view.
  [[nodiscard]] ipp_payload_v1 abi_view(std::vector<ipp_bytes_v1>& scratch) const;
};

/// How values are laid out on the wire.
struct EncodeOptions {
  /// Arrays and bytes at least this large travel as their own frames, without being copied
  /// into the FlatBuffers buffer. Anything over 2 GiB always does (the FlatBuffers limit).
  std::size_t side_frame_threshold = 256 * 1024;
};

/// Builds ipp.fb.Value trees in one FlatBufferBuilder, collecting side frames.
/// Not thread-safe; one Encoder per message.
///
///     ipp::Encoder enc;
///     auto root = enc.encode(ipp::Value::list({5, 6}));
///     ipp::Payload p = enc.finish(root);
class Encoder {
 public:
  explicit Encoder(EncodeOptions options = {}, std::size_t initial_size = 256);

  /// Encodes `value`; its large arrays become side frames that share its storage.
  flatbuffers::Offset<fb::Value> encode(const Value& value);
  /// Encodes a typed array of `count` elements whose storage is `data` (not copied when it
  /// becomes a side frame).
  flatbuffers::Offset<fb::Value> encode_array(DType dtype, std::span<const std::uint64_t> shape,
                                              const Buffer& data);
  /// Encodes a typed array by copying `count` elements from `data`.
  flatbuffers::Offset<fb::Value> encode_array_copy(DType dtype, const void* data,
                                                   std::uint64_t count);
  flatbuffers::Offset<fb::Value> encode_null();
  flatbuffers::Offset<fb::Value> encode_bool(bool b);
  flatbuffers::Offset<fb::Value> encode_int(std::int64_t i);
  flatbuffers::Offset<fb::Value> encode_float(double d);
  flatbuffers::Offset<fb::Value> encode_string(std::string_view s);
  flatbuffers::Offset<fb::Value> encode_range(const Range& r);
  flatbuffers::Offset<fb::Value> encode_list(std::span<const flatbuffers::Offset<fb::Value>> items);

  /// Finishes the buffer with `root` as its root and hands out the result.
  [[nodiscard]] Payload finish(flatbuffers::Offset<fb::Value> root);

  [[nodiscard]] flatbuffers::FlatBufferBuilder& builder() noexcept { return builder_; }

 private:
  std::uint32_t add_frame(Buffer frame);
  flatbuffers::Offset<fb::Value> wrap(fb::Data type, flatbuffers::Offset<void> data);

  EncodeOptions options_;
  flatbuffers::FlatBufferBuilder builder_;
  std::vector<Buffer> frames_;
};

/// Encodes one value.
[[nodiscard]] Payload encode(const Value& value, const EncodeOptions& options = {});

/// Checks a received payload before anything reads it: runs the FlatBuffers verifier over
/// the root buffer (which must be 8-byte aligned: see Buffer::aligned) and returns its root.
/// Side-frame references are checked where they are read. Throws ProtocolError.
const fb::Value* verify(std::span<const std::byte> root);
inline const fb::Value* verify(const Payload& payload) {
  return verify(payload.root.bytes());
}

/// Verifies and decodes a payload. Arrays and bytes share the payload's storage.
[[nodiscard]] Value decode(const Payload& payload);

/// Decodes a verified wire value. When `root` and `frames` are given, arrays and bytes share
/// their storage; otherwise they are copied.
[[nodiscard]] Value decode(const fb::Value* value, detail::FrameTable table, const Buffer* root,
                           std::span<const Buffer> frames);

}  // namespace ipp
