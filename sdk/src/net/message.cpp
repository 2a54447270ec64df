#include "ipp/net/message.hpp"

namespace ipp::net {

Envelope make_message(const Header& header, Payload payload) {
  Envelope env;
  env.parts.reserve(2 + payload.frames.size());
  env.parts.push_back(encode_header(header));
  if (!payload.root.empty()) {
    env.parts.push_back(std::move(payload.root));
    for (auto& f : payload.frames)
      env.parts.push_back(std::move(f));
  }
  return env;
}

Payload payload_of(const Envelope& envelope) {
  Payload p;
  if (envelope.parts.size() > 1) p.root = envelope.parts[1];
  for (std::size_t i = 2; i < envelope.parts.size(); ++i)
    p.frames.push_back(envelope.parts[i]);
  return p;
}

}  // namespace ipp::net
