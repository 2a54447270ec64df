#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ipp::net {

/// Signatures over the parts of a message, with the cluster's shared key.
///
/// A signature is a fresh 16-byte random nonce followed by an HMAC-SHA256 tag. The tag covers
/// the nonce and every part, each fed as its 8-byte little-endian length and then its bytes,
/// so moving a boundary between parts changes it. A part of kLargePart bytes or more is fed
/// as its Poly1305 tag instead of its bytes, under a one-time key derived from the shared key,
/// the nonce and the part's index (HMAC-SHA256): gigabyte arrays are authenticated at
/// Poly1305's speed rather than SHA-256's, and each one-time key serves one part of one
/// message only. Thread-safe (the key is immutable).
class Signer {
 public:
  static constexpr std::size_t kNonceSize = 16;
  static constexpr std::size_t kTagSize = 32;
  static constexpr std::size_t kSignatureSize = kNonceSize + kTagSize;
  static constexpr std::size_t kLargePart = 64 * 1024;
  using Signature = std::array<std::uint8_t, kSignatureSize>;

  /// Signs with `key` (any length; a key from new_key() is 32 random bytes, hex-encoded).
  explicit Signer(std::string key);

  /// A fresh random key, hex-encoded, for a new cluster.
  static std::string new_key();

  [[nodiscard]] Signature sign(std::span<const std::span<const std::byte>> parts) const;
  /// Constant-time check of `signature` against the parts.
  [[nodiscard]] bool verify(std::span<const std::byte> signature,
                            std::span<const std::span<const std::byte>> parts) const;

 private:
  std::string key_;
};

}  // namespace ipp::net
