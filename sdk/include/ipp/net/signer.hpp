#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace ipp::net {

/// HMAC-SHA256 signatures over the parts of a message, with the cluster's shared key.
///
/// Each part is fed as its 8-byte little-endian length followed by its bytes, so moving a
/// boundary between parts changes the signature. Thread-safe (the key is immutable).
class Signer {
 public:
  static constexpr std::size_t kSignatureSize = 32;
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
