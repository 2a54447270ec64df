#include "ipp/net/signer.hpp"

#include <sodium.h>

#include <vector>

#include "ipp/error.hpp"

namespace ipp::net {

namespace {
void ensure_sodium() {
  static const int rc = sodium_init();
  if (rc < 0) throw Error(ErrorCode::unknown, "libsodium failed to initialise");
}
}  // namespace

Signer::Signer(std::string key) : key_(std::move(key)) {
  ensure_sodium();
}

std::string Signer::new_key() {
  ensure_sodium();
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  std::string hex(2 * sizeof raw + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), raw, sizeof raw);
  hex.pop_back();
  return hex;
}

Signer::Signature Signer::sign(std::span<const std::span<const std::byte>> parts) const {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key_.data()),
                              key_.size());
  for (const auto& part : parts) {
    std::uint8_t len[8];
    std::uint64_t n = part.size();
    for (auto& b : len) {
      b = static_cast<std::uint8_t>(n & 0xff);
      n >>= 8;
    }
    crypto_auth_hmacsha256_update(&state, len, sizeof len);
    crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(part.data()),
                                  part.size());
  }
  Signature out;
  crypto_auth_hmacsha256_final(&state, out.data());
  return out;
}

bool Signer::verify(std::span<const std::byte> signature,
                    std::span<const std::span<const std::byte>> parts) const {
  if (signature.size() != kSignatureSize) return false;
  const Signature expected = sign(parts);
  return sodium_memcmp(expected.data(), signature.data(), kSignatureSize) == 0;
}

}  // namespace ipp::net
