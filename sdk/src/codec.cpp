#include "ipp/codec.hpp"

#include <limits>

#include <fmt/format.h>

namespace ipp {

namespace {
// FlatBuffers cannot address more than 2 GiB; anything near that goes to a side frame.
constexpr std::size_t kMaxInlineBytes = std::size_t{1} << 30;
// Inline array data is aligned for SIMD loads; also enough for every scalar type.
constexpr std::size_t kArrayAlignment = 16;
// Alignment a received root buffer must have before any scalar in it is read.
constexpr std::size_t kRootAlignment = 8;
}  // namespace

ipp_payload_v1 Payload::abi_view(std::vector<ipp_bytes_v1>& scratch) const {
  scratch.clear();
  scratch.reserve(frames.size());
  for (const auto& f : frames)
    scratch.push_back({f.data(), f.size()});
  return ipp_payload_v1{{root.data(), root.size()}, scratch.data(), scratch.size()};
}

Encoder::Encoder(EncodeOptions options, std::size_t initial_size)
    : options_(options), builder_(initial_size) {}

std::uint32_t Encoder::add_frame(Buffer frame) {
  frames_.push_back(std::move(frame));
  return static_cast<std::uint32_t>(frames_.size());
}

flatbuffers::Offset<fb::Value> Encoder::wrap(fb::Data type, flatbuffers::Offset<void> data) {
  fb::ValueBuilder vb(builder_);
  vb.add_data(data);
  vb.add_data_type(type);
  return vb.Finish();
}

flatbuffers::Offset<fb::Value> Encoder::encode_null() {
  return wrap(fb::Data::Null, fb::CreateNull(builder_).Union());
}
flatbuffers::Offset<fb::Value> Encoder::encode_bool(bool b) {
  return wrap(fb::Data::Bool, fb::CreateBool(builder_, b).Union());
}
flatbuffers::Offset<fb::Value> Encoder::encode_int(std::int64_t i) {
  return wrap(fb::Data::Int, fb::CreateInt(builder_, i).Union());
}
flatbuffers::Offset<fb::Value> Encoder::encode_float(double d) {
  return wrap(fb::Data::Float, fb::CreateFloat(builder_, d).Union());
}
flatbuffers::Offset<fb::Value> Encoder::encode_string(std::string_view s) {
  if (s.size() > kMaxInlineBytes) {
    throw ArgumentError(fmt::format("string of {} bytes is too large; send it as bytes", s.size()));
  }
  const auto str = builder_.CreateString(s.data(), s.size());
  return wrap(fb::Data::String, fb::CreateString(builder_, str).Union());
}
flatbuffers::Offset<fb::Value> Encoder::encode_range(const Range& r) {
  return wrap(fb::Data::Range, fb::CreateRange(builder_, r.start, r.stop, r.step).Union());
}
flatbuffers::Offset<fb::Value> Encoder::encode_list(
    std::span<const flatbuffers::Offset<fb::Value>> items) {
  const auto vec = builder_.CreateVector(items.data(), items.size());
  return wrap(fb::Data::List, fb::CreateList(builder_, vec).Union());
}

flatbuffers::Offset<fb::Value> Encoder::encode_array(DType dtype,
                                                     std::span<const std::uint64_t> shape,
                                                     const Buffer& data) {
  const bool side = data.size() >= options_.side_frame_threshold || data.size() > kMaxInlineBytes;
  flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> inline_data;
  std::uint32_t frame = 0;
  if (side) {
    frame = add_frame(data);
  } else {
    builder_.ForceVectorAlignment(data.size(), 1, kArrayAlignment);
    inline_data =
        builder_.CreateVector(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  }
  const auto shape_vec = builder_.CreateVector(shape.data(), shape.size());
  fb::ArrayBuilder ab(builder_);
  ab.add_dtype(static_cast<fb::DType>(dtype));
  ab.add_shape(shape_vec);
  if (!side) ab.add_data(inline_data);
  ab.add_frame(frame);
  return wrap(fb::Data::Array, ab.Finish().Union());
}

flatbuffers::Offset<fb::Value> Encoder::encode_array_copy(DType dtype, const void* data,
                                                          std::uint64_t count) {
  const std::uint64_t shape[] = {count};
  const std::size_t bytes = count * dtype_size(dtype);
  if (bytes >= options_.side_frame_threshold || bytes > kMaxInlineBytes) {
    return encode_array(dtype, shape, Buffer::copy(data, bytes));
  }
  // Small: copy straight into the FlatBuffers buffer, no intermediate Buffer.
  builder_.ForceVectorAlignment(bytes, 1, kArrayAlignment);
  const auto inline_data = builder_.CreateVector(static_cast<const std::uint8_t*>(data), bytes);
  const auto shape_vec = builder_.CreateVector(shape, 1);
  fb::ArrayBuilder ab(builder_);
  ab.add_dtype(static_cast<fb::DType>(dtype));
  ab.add_shape(shape_vec);
  ab.add_data(inline_data);
  return wrap(fb::Data::Array, ab.Finish().Union());
}

flatbuffers::Offset<fb::Value> Encoder::encode(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::null:
      return encode_null();
    case Value::Kind::boolean:
      return encode_bool(value.as_bool());
    case Value::Kind::integer:
      return encode_int(value.as_int());
    case Value::Kind::floating:
      return encode_float(value.as_float());
    case Value::Kind::string:
      return encode_string(value.as_string());
    case Value::Kind::range:
      return encode_range(value.as_range());
    case Value::Kind::ref:
      return wrap(fb::Data::Ref,
                  fb::CreateRef(builder_, builder_.CreateString(value.as_ref().name)).Union());
    case Value::Kind::bytes: {
      const Buffer& data = value.as_bytes().data;
      if (data.size() >= options_.side_frame_threshold || data.size() > kMaxInlineBytes) {
        const auto frame = add_frame(data);
        return wrap(fb::Data::Bytes, fb::CreateBytes(builder_, 0, frame).Union());
      }
      const auto vec =
          builder_.CreateVector(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
      return wrap(fb::Data::Bytes, fb::CreateBytes(builder_, vec, 0).Union());
    }
    case Value::Kind::array: {
      const Array& a = value.as_array();
      return encode_array(a.dtype(), a.shape(), a.buffer());
    }
    case Value::Kind::list: {
      const auto& items = value.as_list();
      std::vector<flatbuffers::Offset<fb::Value>> offsets;
      offsets.reserve(items.size());
      for (const auto& item : items)
        offsets.push_back(encode(item));
      return encode_list(offsets);
    }
    case Value::Kind::map: {
      const auto& entries = value.as_map();
      std::vector<flatbuffers::Offset<fb::MapEntry>> offsets;
      offsets.reserve(entries.size());
      for (const auto& [k, v] : entries) {
        const auto val = encode(v);
        const auto key = builder_.CreateString(k);
        offsets.push_back(fb::CreateMapEntry(builder_, key, val));
      }
      const auto vec = builder_.CreateVector(offsets);
      return wrap(fb::Data::Map, fb::CreateMap(builder_, vec).Union());
    }
  }
  return encode_null();
}

Payload Encoder::finish(flatbuffers::Offset<fb::Value> root) {
  builder_.Finish(root);
  auto detached = std::make_shared<flatbuffers::DetachedBuffer>(builder_.Release());
  const auto* data = reinterpret_cast<const std::byte*>(detached->data());
  const std::size_t size = detached->size();
  Payload p;
  p.root = Buffer(std::shared_ptr<const void>(std::move(detached)), data, size);
  p.frames = std::move(frames_);
  frames_.clear();
  return p;
}

Payload encode(const Value& value, const EncodeOptions& options) {
  Encoder enc(options);
  return enc.finish(enc.encode(value));
}

const fb::Value* verify(std::span<const std::byte> root) {
  if (root.size() < 8) {
    throw ProtocolError(fmt::format("value buffer of {} bytes is too short", root.size()));
  }
  if (root.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    throw ProtocolError(
        fmt::format("value buffer of {} bytes exceeds the 2 GiB limit", root.size()));
  }
  if ((reinterpret_cast<std::uintptr_t>(root.data()) & (kRootAlignment - 1)) != 0) {
    throw ProtocolError("value buffer is not 8-byte aligned (use Buffer::aligned on receipt)");
  }
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(root.data());
  // Every table is at least a few bytes, so this bound never rejects a genuine buffer while
  // still capping the verifier's work on a hostile one.
  flatbuffers::Verifier verifier(bytes, root.size(), /*max_depth=*/128,
                                 /*max_tables=*/root.size() / 4 + 64);
  if (!fb::VerifyValueBuffer(verifier)) {
    throw ProtocolError(fmt::format(
        "value buffer of {} bytes failed verification (corrupt, truncated or too deeply nested)",
        root.size()));
  }
  return flatbuffers::GetRoot<fb::Value>(bytes);
}

namespace {

Buffer share_or_copy(const std::byte* data, std::size_t size, std::uint32_t frame,
                     const Buffer* root, std::span<const Buffer> frames) {
  if (frame != 0 && frame <= frames.size()) return frames[frame - 1];
  if (frame == 0 && root != nullptr && size != 0) return Buffer(root->owner(), data, size);
  return Buffer::copy(data, size);
}

}  // namespace

Value decode(const fb::Value* v, detail::FrameTable table, const Buffer* root,
             std::span<const Buffer> frames) {
  switch (v->data_type()) {
    case fb::Data::Null:
      return Value();
    case fb::Data::Bool:
      return Value(v->data_as_Bool()->v());
    case fb::Data::Int:
      return Value(v->data_as_Int()->v());
    case fb::Data::Float:
      return Value(v->data_as_Float()->v());
    case fb::Data::String:
      return Value(v->data_as_String()->v()->str());
    case fb::Data::Range: {
      const auto* r = v->data_as_Range();
      return Value(Range{r->start(), r->stop(), r->step()});
    }
    case fb::Data::Ref:
      return Value(Ref{v->data_as_Ref()->name()->str()});
    case fb::Data::Bytes: {
      const auto* b = v->data_as_Bytes();
      const auto span = detail::bytes_ref(b, table);
      return Value(Bytes{share_or_copy(span.data(), span.size(), b->frame(), root, frames)});
    }
    case fb::Data::Array: {
      const auto* a = v->data_as_Array();
      const detail::ArrayRef ref = detail::array_ref(a, table);
      const std::size_t bytes = ref.size * dtype_size(ref.dtype);
      Buffer data = share_or_copy(ref.data, bytes, ref.frame, root, frames);
      // Shared storage that is misaligned for the element type gets copied once, here.
      if (!data.is_aligned(dtype_size(ref.dtype))) data = Buffer::copy(data.data(), data.size());
      std::vector<std::uint64_t> shape(a->shape()->begin(), a->shape()->end());
      return Value(Array(ref.dtype, std::move(shape), std::move(data)));
    }
    case fb::Data::List: {
      const auto* items = v->data_as_List()->items();
      Value::List out;
      out.reserve(items->size());
      for (const auto* item : *items)
        out.push_back(decode(item, table, root, frames));
      return Value(std::move(out));
    }
    case fb::Data::Map: {
      Value::Map out;
      for (const auto* entry : *v->data_as_Map()->entries()) {
        out.insert_or_assign(entry->key()->str(), decode(entry->value(), table, root, frames));
      }
      return Value(std::move(out));
    }
    default:
      throw ProtocolError(
          fmt::format("value of unknown kind {}", static_cast<int>(v->data_type())));
  }
}

Value decode(const Payload& payload) {
  const Buffer root = payload.root.aligned(kRootAlignment);
  const fb::Value* v = verify(root.bytes());
  std::vector<ipp_bytes_v1> scratch;
  scratch.reserve(payload.frames.size());
  for (const auto& f : payload.frames)
    scratch.push_back({f.data(), f.size()});
  return decode(v, detail::FrameTable{scratch.data(), scratch.size()}, &root, payload.frames);
}

}  // namespace ipp
