#include "ipp/context.hpp"

#include <fmt/format.h>

#include "ipp/codec.hpp"

namespace ipp {

std::optional<Value> Context::get(std::string_view name) const {
  std::optional<Value> out;
  auto deliver = [](void* sink, const ipp_payload_v1* p) {
    // The host hands over a buffer it encoded itself; decode copies, since the value
    // outlives this call.
    const auto* root = flatbuffers::GetRoot<fb::Value>(p->root.data);
    *static_cast<std::optional<Value>*>(sink) =
        decode(root, detail::FrameTable{p->frames, p->frame_count}, nullptr, {});
  };
  host_->ns_get(host_->self, name.data(), name.size(), &out, deliver);
  return out;
}

Value Context::at(std::string_view name) const {
  auto v = get(name);
  if (!v)
    throw ArgumentError(fmt::format("name '{}' is not defined on engine {}", name, engine_id()));
  return std::move(*v);
}

void Context::set(std::string_view name, const Value& value) {
  Payload p = encode(value);
  std::vector<ipp_bytes_v1> scratch;
  const ipp_payload_v1 view = p.abi_view(scratch);
  host_->ns_set(host_->self, name.data(), name.size(), &view);
}

bool Context::erase(std::string_view name) {
  return host_->ns_erase(host_->self, name.data(), name.size()) != 0;
}

}  // namespace ipp
