// Value decoding (every task's arguments and results): a root buffer and side frames from a
// peer either verify and decode, or are a ProtocolError; a decoded value can be printed and
// encoded again.
#include <cstdint>

#include "fuzz_input.hpp"
#include "ipp/codec.hpp"
#include "ipp/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ipp::fuzz::Input in(data, size);
  ipp::Payload p;
  const std::string_view frames = in.piece();  // its first byte: how many side frames
  const std::size_t n = frames.empty() ? 0 : static_cast<std::uint8_t>(frames[0]) % 4;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string_view f = in.piece();
    p.frames.push_back(ipp::Buffer::copy(f.data(), f.size()));
  }
  const std::string_view root = in.rest();
  p.root = ipp::Buffer::copy(root.data(), root.size());
  try {
    const ipp::Value v = ipp::decode(p);
    (void)v.repr();
    (void)ipp::decode(ipp::encode(v));
  } catch (const ipp::Error&) {
  }
  return 0;
}
