// What arrives on any socket: frames from a peer that holds the key (the signature is made
// here, so that everything after the check is reached), as a plain message or a batch, with or
// without a shared-memory part mask. recv_all takes it or throws ProtocolError, and every
// message it returns has its header and payload read as a scheduler or engine reads them.
#include <cstdint>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "fuzz_input.hpp"
#include "ipp/codec.hpp"
#include "ipp/error.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"
#include "ipp/net/signer.hpp"

namespace {

struct Pair {
  zmq::context_t ctx{1};
  zmq::socket_t in{ctx, zmq::socket_type::pair};
  zmq::socket_t out{ctx, zmq::socket_type::pair};
  ipp::net::Signer signer{ipp::net::Signer::new_key()};
  Pair() {
    in.bind("inproc://fuzz");
    out.connect("inproc://fuzz");
  }
};

std::span<const std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Pair pair;
  ipp::fuzz::Input input(data, size);
  const std::string_view shape = input.piece();  // tag and mask choices
  const std::uint8_t how = shape.empty() ? 0 : static_cast<std::uint8_t>(shape[0]);
  static constexpr std::string_view kTags[] = {"IPP/1",   "IPP/1B",  "IPP/1M",
                                               "IPP/1BM", "IPP/1BR", "IPP/1BMR"};
  std::string tag(kTags[how % std::size(kTags)]);
  if ((how & 0x80) != 0) tag = std::string(input.piece());  // any tag at all
  const std::string mask((how & 0x40) != 0 ? input.piece() : std::string_view());
  std::vector<std::string> parts;
  while (!input.done() && parts.size() < 16)
    parts.emplace_back(input.piece());

  std::vector<std::span<const std::byte>> signed_parts;
  if (!mask.empty()) signed_parts.push_back(bytes(mask));
  for (const auto& p : parts)
    signed_parts.push_back(bytes(p));
  const auto sig = pair.signer.sign(signed_parts);
  std::string signature(reinterpret_cast<const char*>(sig.data()), sig.size());
  signature += mask;

  std::vector<zmq::message_t> frames;
  frames.emplace_back();  // the delimiter
  frames.emplace_back(tag);
  frames.emplace_back(signature);
  for (const auto& p : parts)
    frames.emplace_back(p);
  for (std::size_t i = 0; i < frames.size(); ++i)
    (void)pair.out.send(frames[i],
                        i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  std::vector<ipp::net::Envelope> got;
  try {
    (void)ipp::net::recv_all(pair.in, pair.signer, got, zmq::recv_flags::dontwait);
  } catch (const ipp::Error&) {
    return 0;
  }
  for (const auto& env : got) {
    try {
      const ipp::net::Header h = ipp::net::decode_header(env.parts.at(0));
      (void)h;
      if (env.parts.size() > 1) (void)ipp::decode(ipp::net::payload_of(env));
    } catch (const ipp::Error&) {
    }
  }
  return 0;
}
