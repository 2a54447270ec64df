#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace ipp::net {

/// Signatures over the parts of a message, with the cluster's shared key.
///
/// A signature is a fresh 16-byte random nonce followed by a 16-byte Poly1305 tag. The tag's
/// one-time key is HMAC-SHA256(shared key, "ipp/msg" | nonce), so every message has a key of
/// its own and the shared key never meets the data directly. The tag covers every part, each
/// fed as its 8-byte little-endian length and then its bytes, so moving a boundary between
/// parts changes it. Poly1305 runs at several GB/s where HMAC-SHA256 over the data would run
/// at a few hundred MB/s: a batch of hundreds of tasks, or a gigabyte array, costs one key
/// derivation and one pass at memory speed. Thread-safe (the key state is immutable).
///
/// On a connection CURVE encrypts, every frame is already authenticated by its connection and
/// the keys already tell clients from engines; there a signature need not read large parts
/// again (Coverage::small_parts), which saves a pass over every payload at each hop. The
/// signature still numbers messages (replays) and names the sender's key.
class Signer {
 public:
  /// What a tag covers: every part in full, or (where CURVE authenticates every frame) parts
  /// of at most kCoveredPartBytes in full and larger ones by their length only. Tags of the two
  /// never verify as each other.
  enum class Coverage { all, small_parts };
  static constexpr std::size_t kCoveredPartBytes = 64 * 1024;
  /// The coverage for connections that are encrypted or not.
  [[nodiscard]] static constexpr Coverage for_connection(bool encrypted) noexcept {
    return encrypted ? Coverage::small_parts : Coverage::all;
  }

  static constexpr std::size_t kNonceSize = 16;
  static constexpr std::size_t kTagSize = 16;  // Poly1305
  static constexpr std::size_t kSignatureSize = kNonceSize + kTagSize;
  using Signature = std::array<std::uint8_t, kSignatureSize>;

  /// Signs with `key` (any length; a key from new_key() is 32 random bytes, hex-encoded).
  explicit Signer(std::string key, Coverage coverage = Coverage::all);
  ~Signer();
  Signer(Signer&&) noexcept;
  Signer& operator=(Signer&&) noexcept;

  /// A fresh random key, hex-encoded, for a new cluster.
  static std::string new_key();

  /// Names the key without revealing it (a keyed hash of a label), never 0: which key a
  /// received message verified with (see Envelope::signed_with).
  [[nodiscard]] std::uint64_t key_id() const noexcept { return key_id_; }

  /// Signs with a fresh random nonce.
  [[nodiscard]] Signature sign(std::span<const std::span<const std::byte>> parts) const;
  /// Signs with the nonce `stream | sequence` (8 bytes each, little-endian): a sender's
  /// stream of messages, numbered, so that a receiver can tell a replay (see ReplayWindow).
  /// Each (stream, sequence) must be used once.
  [[nodiscard]] Signature sign(std::span<const std::span<const std::byte>> parts,
                               std::uint64_t stream, std::uint64_t sequence) const;
  /// The stream and sequence of a signature's nonce.
  [[nodiscard]] static std::pair<std::uint64_t, std::uint64_t> sequence_of(
      std::span<const std::byte> signature) noexcept;
  /// Constant-time check of `signature` against the parts.
  [[nodiscard]] bool verify(std::span<const std::byte> signature,
                            std::span<const std::span<const std::byte>> parts) const;

 private:
  /// The tag of `parts` under the one-time key of `nonce`.
  [[nodiscard]] std::array<std::uint8_t, kTagSize> tag(
      const std::uint8_t* nonce, std::span<const std::span<const std::byte>> parts) const;

  // The ChaCha20 key the one-time keys come from (derived once from the cluster key), wiped
  // wherever it is freed: on destruction and when a move assignment replaces it.
  struct Keyed;
  struct Wipe {
    void operator()(const Keyed* keyed) const noexcept;
  };
  std::unique_ptr<const Keyed, Wipe> keyed_;
  std::uint64_t key_id_ = 0;
  Coverage coverage_ = Coverage::all;
};

}  // namespace ipp::net
