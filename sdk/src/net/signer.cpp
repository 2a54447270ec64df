#include "ipp/net/signer.hpp"

#include <sodium.h>

#include <algorithm>

#include "ipp/error.hpp"
#include "random.hpp"

namespace ipp::net {

namespace {

void ensure_sodium() {
  static const int rc = sodium_init();
  if (rc < 0) throw Error(ErrorCode::unknown, "libsodium failed to initialise");
}

}  // namespace

static_assert(Signer::kTagSize == crypto_onetimeauth_BYTES);

struct Signer::Keyed {
  unsigned char stream_key[crypto_stream_chacha20_KEYBYTES];
};

Signer::Signer(std::string key, Coverage coverage) : coverage_(coverage) {
  ensure_sodium();
  // The ChaCha20 key that makes each message's one-time key: HMAC-SHA256 of a label under
  // the cluster key, once.
  static constexpr unsigned char kLabel[] = {'i', 'p', 'p', '/', 'c', 'h', 'a', 'c', 'h', 'a'};
  static_assert(crypto_auth_hmacsha256_BYTES == crypto_stream_chacha20_KEYBYTES);
  std::unique_ptr<Keyed, Wipe> keyed(new Keyed{});
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()),
                              key.size());
  crypto_auth_hmacsha256_update(&state, kLabel, sizeof kLabel);
  crypto_auth_hmacsha256_final(&state, keyed->stream_key);
  static constexpr unsigned char kIdLabel[] = {'i', 'p', 'p', '/', 'k', 'e', 'y', '-', 'i', 'd'};
  unsigned char id[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()),
                              key.size());
  crypto_auth_hmacsha256_update(&state, kIdLabel, sizeof kIdLabel);
  crypto_auth_hmacsha256_final(&state, id);
  for (std::size_t i = 0; i < sizeof key_id_; ++i)
    key_id_ |= static_cast<std::uint64_t>(id[i]) << (8 * i);
  key_id_ |= 1;  // never 0: 0 is "no signer"
  sodium_memzero(&state, sizeof state);
  sodium_memzero(key.data(), key.size());
  keyed_ = std::move(keyed);
}

void Signer::Wipe::operator()(const Keyed* keyed) const noexcept {
  auto* k = const_cast<Keyed*>(keyed);
  sodium_memzero(k, sizeof(Keyed));
  delete k;
}

Signer::~Signer() = default;
Signer::Signer(Signer&&) noexcept = default;
Signer& Signer::operator=(Signer&&) noexcept = default;

std::string Signer::new_key() {
  ensure_sodium();
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  std::string hex(2 * sizeof raw + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), raw, sizeof raw);
  hex.pop_back();
  return hex;
}

std::array<std::uint8_t, Signer::kTagSize> Signer::tag(
    const std::uint8_t* nonce, std::span<const std::span<const std::byte>> parts) const {
  // The one-time key: the first 32 bytes of the ChaCha20 block that the nonce names (its
  // first 8 bytes the ChaCha20 nonce, the other 8 the block counter), as RFC 8439 makes a
  // Poly1305 key. Each nonce, so each message, has a key of its own.
  static_assert(kNonceSize == crypto_stream_chacha20_NONCEBYTES + sizeof(std::uint64_t));
  std::uint64_t block = 0;
  for (std::size_t i = 0; i < sizeof block; ++i)
    block |= static_cast<std::uint64_t>(nonce[crypto_stream_chacha20_NONCEBYTES + i]) << (8 * i);
  unsigned char one_time[crypto_onetimeauth_KEYBYTES] = {};
  crypto_stream_chacha20_xor_ic(one_time, one_time, sizeof one_time, nonce, block,
                                keyed_->stream_key);
  crypto_onetimeauth_state state;
  crypto_onetimeauth_init(&state, one_time);
  sodium_memzero(one_time, sizeof one_time);
  const bool small_parts = coverage_ == Coverage::small_parts;
  if (small_parts) {
    // Set apart from every tag over whole parts, whose first 8 bytes are a part's length.
    static constexpr unsigned char kSmallParts[8] = {'i', 'p', 'p', '/', 's', 'm', 'a', 'l'};
    crypto_onetimeauth_update(&state, kSmallParts, sizeof kSmallParts);
  }
  for (const auto& part : parts) {
    std::uint8_t len[8];
    std::uint64_t n = part.size();
    for (auto& b : len) {
      b = static_cast<std::uint8_t>(n & 0xff);
      n >>= 8;
    }
    crypto_onetimeauth_update(&state, len, sizeof len);
    if (small_parts && part.size() > kCoveredPartBytes) continue;  // CURVE authenticated it
    crypto_onetimeauth_update(&state, reinterpret_cast<const unsigned char*>(part.data()),
                              part.size());
  }
  std::array<std::uint8_t, kTagSize> out{};
  crypto_onetimeauth_final(&state, out.data());
  return out;
}

Signer::Signature Signer::sign(std::span<const std::span<const std::byte>> parts) const {
  Signature out;
  random_bytes(out.data(), kNonceSize);
  const auto t = tag(out.data(), parts);
  std::copy(t.begin(), t.end(), out.begin() + kNonceSize);
  return out;
}

Signer::Signature Signer::sign(std::span<const std::span<const std::byte>> parts,
                               std::uint64_t stream, std::uint64_t sequence) const {
  Signature out{};
  for (std::size_t i = 0; i < 8; ++i) {
    out[i] = static_cast<std::uint8_t>(stream >> (8 * i));
    out[8 + i] = static_cast<std::uint8_t>(sequence >> (8 * i));
  }
  const auto t = tag(out.data(), parts);
  std::copy(t.begin(), t.end(), out.begin() + kNonceSize);
  return out;
}

std::pair<std::uint64_t, std::uint64_t> Signer::sequence_of(
    std::span<const std::byte> signature) noexcept {
  std::uint64_t stream = 0;
  std::uint64_t sequence = 0;
  for (std::size_t i = 0; i < 8 && 8 + i < signature.size(); ++i) {
    stream |= static_cast<std::uint64_t>(signature[i]) << (8 * i);
    sequence |= static_cast<std::uint64_t>(signature[8 + i]) << (8 * i);
  }
  return {stream, sequence};
}

bool Signer::verify(std::span<const std::byte> signature,
                    std::span<const std::span<const std::byte>> parts) const {
  if (signature.size() != kSignatureSize) return false;
  const auto* nonce = reinterpret_cast<const std::uint8_t*>(signature.data());
  const auto expected = tag(nonce, parts);
  return sodium_memcmp(expected.data(), nonce + kNonceSize, kTagSize) == 0;
}

}  // namespace ipp::net
