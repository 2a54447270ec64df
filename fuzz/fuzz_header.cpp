// Message headers from any peer: verified and decoded, or a ProtocolError.
#include <cstdint>

#include "ipp/error.hpp"
#include "ipp/net/header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const ipp::net::Header h = ipp::net::decode_header(ipp::Buffer::copy(data, size));
    (void)ipp::net::decode_header(ipp::net::encode_header(h));
  } catch (const ipp::Error&) {
  }
  return 0;
}
