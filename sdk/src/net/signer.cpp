#include "ipp/net/signer.hpp"

#include <sodium.h>

#include <algorithm>
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

namespace {

void put_length(crypto_auth_hmacsha256_state& state, std::uint64_t n) {
  std::uint8_t len[8];
  for (auto& b : len) {
    b = static_cast<std::uint8_t>(n & 0xff);
    n >>= 8;
  }
  crypto_auth_hmacsha256_update(&state, len, sizeof len);
}

void init(crypto_auth_hmacsha256_state& state, const std::string& key) {
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()),
                              key.size());
}

/// The tag of one message given its nonce.
std::array<std::uint8_t, Signer::kTagSize> tag(const std::string& key, const std::uint8_t* nonce,
                                               std::span<const std::span<const std::byte>> parts) {
  crypto_auth_hmacsha256_state state;
  init(state, key);
  crypto_auth_hmacsha256_update(&state, nonce, Signer::kNonceSize);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const auto& part = parts[i];
    put_length(state, part.size());
    if (part.size() < Signer::kLargePart) {
      crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(part.data()),
                                    part.size());
      continue;
    }
    // One-time Poly1305 key for part i of this message: HMAC(key, "ipp/part" | nonce | i).
    unsigned char one_time[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state derive;
    init(derive, key);
    static constexpr unsigned char kLabel[] = {'i', 'p', 'p', '/', 'p', 'a', 'r', 't'};
    crypto_auth_hmacsha256_update(&derive, kLabel, sizeof kLabel);
    crypto_auth_hmacsha256_update(&derive, nonce, Signer::kNonceSize);
    put_length(derive, i);
    crypto_auth_hmacsha256_final(&derive, one_time);
    static_assert(sizeof one_time >= crypto_onetimeauth_KEYBYTES);
    unsigned char part_tag[crypto_onetimeauth_BYTES];
    crypto_onetimeauth(part_tag, reinterpret_cast<const unsigned char*>(part.data()), part.size(),
                       one_time);
    sodium_memzero(one_time, sizeof one_time);
    crypto_auth_hmacsha256_update(&state, part_tag, sizeof part_tag);
  }
  std::array<std::uint8_t, Signer::kTagSize> out{};
  crypto_auth_hmacsha256_final(&state, out.data());
  return out;
}

}  // namespace

Signer::Signature Signer::sign(std::span<const std::span<const std::byte>> parts) const {
  Signature out;
  randombytes_buf(out.data(), kNonceSize);
  const auto t = tag(key_, out.data(), parts);
  std::copy(t.begin(), t.end(), out.begin() + kNonceSize);
  return out;
}

bool Signer::verify(std::span<const std::byte> signature,
                    std::span<const std::span<const std::byte>> parts) const {
  if (signature.size() != kSignatureSize) return false;
  const auto* nonce = reinterpret_cast<const std::uint8_t*>(signature.data());
  const auto expected = tag(key_, nonce, parts);
  return sodium_memcmp(expected.data(), nonce + kNonceSize, kTagSize) == 0;
}

}  // namespace ipp::net
