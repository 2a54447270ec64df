#include "ipp/net/envelope.hpp"

#include <cstring>
#include <memory>

#include <fmt/format.h>
#include <zmq_addon.hpp>

#include "ipp/error.hpp"

namespace ipp::net {

namespace {

std::vector<std::span<const std::byte>> spans(const std::vector<Buffer>& parts) {
  std::vector<std::span<const std::byte>> out;
  out.reserve(parts.size());
  for (const auto& p : parts)
    out.push_back(p.bytes());
  return out;
}

}  // namespace

zmq::message_t share(const Buffer& b) {
  if (b.size() < 64) return zmq::message_t(b.data(), b.size());  // small: a copy is cheaper
  auto* hold = new Buffer(b);
  return zmq::message_t(
      const_cast<std::byte*>(b.data()), b.size(),
      [](void*, void* hint) noexcept { delete static_cast<Buffer*>(hint); }, hold);
}

Buffer to_buffer(zmq::message_t&& message) {
  auto owner = std::make_shared<zmq::message_t>(std::move(message));
  const auto* data = static_cast<const std::byte*>(owner->data());
  const std::size_t size = owner->size();
  return Buffer(std::shared_ptr<const void>(std::move(owner)), data, size);
}

bool send(zmq::socket_ref socket, const Signer& signer, const Envelope& envelope, bool dontwait) {
  const auto signature =
      envelope.signature ? *envelope.signature : signer.sign(spans(envelope.parts));
  std::vector<zmq::message_t> frames;
  frames.reserve(envelope.route.size() + 3 + envelope.parts.size());
  for (const auto& r : envelope.route)
    frames.emplace_back(r.data(), r.size());
  frames.emplace_back();
  frames.emplace_back(kProtocolTag.data(), kProtocolTag.size());
  frames.emplace_back(signature.data(), signature.size());
  for (const auto& p : envelope.parts)
    frames.push_back(share(p));
  const auto flags = dontwait ? zmq::send_flags::dontwait : zmq::send_flags::none;
  try {
    return zmq::send_multipart(socket, frames, flags).has_value();
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return false;
    throw;
  }
}

void compact(Envelope& envelope, std::size_t limit) {
  auto round = [](std::size_t n) {
    return (n + Buffer::kAlignment - 1) / Buffer::kAlignment * Buffer::kAlignment;
  };
  std::size_t total = 0;
  for (const auto& p : envelope.parts) {
    if (p.size() < limit) total += round(p.size());
  }
  if (total == 0) return;
  std::byte* out = nullptr;
  const Buffer block = Buffer::allocate(total, &out);
  std::size_t offset = 0;
  for (auto& p : envelope.parts) {
    if (p.size() >= limit) continue;
    if (!p.empty()) std::memcpy(out + offset, p.data(), p.size());
    p = block.slice(offset, p.size());
    offset += round(p.size());
  }
}

std::optional<Envelope> recv(zmq::socket_ref socket, const Signer& signer, zmq::recv_flags flags) {
  std::vector<zmq::message_t> frames;
  if (!zmq::recv_multipart(socket, std::back_inserter(frames), flags)) return std::nullopt;
  std::size_t delimiter = 0;
  while (delimiter < frames.size() && frames[delimiter].size() != 0)
    ++delimiter;
  if (delimiter == frames.size()) {
    throw ProtocolError(
        fmt::format("message of {} frame(s) has no delimiter frame", frames.size()));
  }
  if (frames.size() < delimiter + 3 || frames[delimiter + 1].to_string_view() != kProtocolTag) {
    throw ProtocolError("message is not an ipp message (missing or unknown protocol tag)");
  }
  Envelope env;
  env.route.reserve(delimiter);
  for (std::size_t i = 0; i < delimiter; ++i)
    env.route.push_back(std::move(frames[i]));
  const zmq::message_t& signature = frames[delimiter + 2];
  for (std::size_t i = delimiter + 3; i < frames.size(); ++i) {
    env.parts.push_back(to_buffer(std::move(frames[i])));
  }
  if (!signer.verify({static_cast<const std::byte*>(signature.data()), signature.size()},
                     spans(env.parts))) {
    throw ProtocolError("message signature is missing or wrong");
  }
  env.signature.emplace();
  std::memcpy(env.signature->data(), signature.data(), Signer::kSignatureSize);
  return env;
}

}  // namespace ipp::net
