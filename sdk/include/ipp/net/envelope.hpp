#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "ipp/buffer.hpp"
#include "ipp/net/shm.hpp"
#include "ipp/net/signer.hpp"

namespace ipp::net {

/// First frame after the delimiter of every ipp message: rejects strangers and old peers early.
/// Letters may follow it: `B`, the message is a batch; `M`, its sender maps shared memory
/// (it takes large parts of replies through it, see SharedMemory); `R`, a batch with parts
/// sent once for several of its messages (see send_batch).
inline constexpr std::string_view kProtocolTag = "IPP/1";
/// The tag of a batch: several messages for one peer in one ZeroMQ message, signed once.
inline constexpr std::string_view kBatchTag = "IPP/1B";

/// One message as it crosses a socket.
///
/// On the wire: `route... | "" | "IPP/1" | signature [| part mask] | part...`. `route` holds
/// ROUTER identities (empty when talking to a DEALER); `parts` are what the signature covers:
/// a header, a payload root, and the payload's side frames. A part sent through shared
/// memory is a 32-byte reference on the wire, marked in the part mask (a bit per part, in the
/// signature frame after the signature, and signed too); the receiver maps it and `parts`
/// holds the mapped bytes.
struct Envelope {
  std::vector<zmq::message_t> route;
  std::vector<Buffer> parts;
  /// Received: the Signer::key_id() of the key its signature verified with (which tells a
  /// client's message from an engine's where both arrive, see recv_either).
  std::uint64_t signed_with = 0;
  /// Received: its sender maps shared memory.
  bool peer_maps = false;
  /// Received with Unverified::answer: false when its signature did not verify. Then
  /// `unreadable` says so, and nothing in it may be trusted: a receiver that answers it reads
  /// only the header's ids, to fail the request they name rather than leave its caller waiting.
  bool verified = true;
  /// Received: why a part could not be read (a shared-memory part that is gone, or one this
  /// process cannot map); that part is empty. A receiver answers the message with an error
  /// saying so instead of reading it.
  std::string unreadable;
};

/// What recv_all() does with a message whose signature does not verify (a message changed on
/// the way, or sent by a stranger).
enum class Unverified {
  refuse,  ///< throws ProtocolError
  answer,  ///< delivers it with `verified` false and `unreadable` saying why (never a replay)
};

/// How a connection uses the cluster's shared memory.
struct SharedParts {
  /// This side's access to it (null: none; the tag of what it sends says so).
  const SharedMemory* shm = nullptr;
  /// The receiver maps it too: large parts go through it.
  bool peer_maps = false;
};

/// Sends `envelope`, signing its parts. Parts go out without copies: ZeroMQ holds a reference
/// to each Buffer until it is done with it. With `shared.peer_maps` and a `shared.shm`, parts
/// of SharedMemory::kThreshold bytes or more go through shared memory. Returns false when
/// `dontwait` is set and the message could not be queued (for a ROUTER: an unknown peer with
/// ZMQ_ROUTER_MANDATORY).
bool send(zmq::socket_ref socket, const Signer& signer, const Envelope& envelope,
          bool dontwait = false, SharedParts shared = {});

/// Sends `messages` (their parts; their own routes are ignored) to `route` as one batch:
/// `route... | "" | "IPP/1B" | signature | counts | parts of the first | parts of the second |
/// ...`, where `counts` holds each message's number of parts (uint32, little-endian) and the
/// signature covers `counts` and every part. A single message goes as a plain message. Batching
/// is how a busy peer pays one signature,
/// one ZeroMQ message and one wake-up of its receiver for many small messages. A large part
/// (4 KiB or more) that several messages of the batch share (the same storage: one payload for
/// many engines) crosses once: the tag gains `R`, `counts` becomes `n | n counts | (repeat,
/// original) pairs of part numbers`, and each repeat is an empty frame that the receiver fills
/// with the original. Returns false as send() does.
bool send_batch(zmq::socket_ref socket, const Signer& signer,
                const std::vector<zmq::message_t>& route, std::span<const Envelope> messages,
                bool dontwait = false, SharedParts shared = {});

/// Receives one whole message. Returns nullopt when none is waiting (timeout or dontwait).
/// Throws ProtocolError for a malformed, foreign or badly signed message, after consuming all
/// of its frames, so the socket stays usable. A batch is a ProtocolError here: peers that may
/// receive batches use recv_all(). Shared-memory parts are mapped from `shm` (without one,
/// such a part makes the message unreadable).
std::optional<Envelope> recv(zmq::socket_ref socket, const Signer& signer,
                             zmq::recv_flags flags = zmq::recv_flags::none,
                             const SharedMemory* shm = nullptr);

/// Receives one message as recv() does (without shared memory), signed with the key of
/// `first` or of `second`: its `signed_with` says which (a peer's role, where clients and
/// engines, holding different keys, share a socket).
std::optional<Envelope> recv_either(zmq::socket_ref socket, const Signer& first,
                                    const Signer& second,
                                    zmq::recv_flags flags = zmq::recv_flags::none);

/// Receives one ZeroMQ message, a plain message or a batch, and appends the messages it holds
/// to `out`, each with a copy of the route. Returns false when nothing is waiting.
/// Throws ProtocolError as recv() does; nothing of a rejected batch is appended.
bool recv_all(zmq::socket_ref socket, const Signer& signer, std::vector<Envelope>& out,
              zmq::recv_flags flags = zmq::recv_flags::none, const SharedMemory* shm = nullptr,
              Unverified unverified = Unverified::refuse);

/// The bytes of a received part as a Buffer that keeps the ZeroMQ message alive.
Buffer to_buffer(zmq::message_t&& message);
/// A message frame sharing `buffer`'s storage: ZeroMQ holds a reference until it has sent it
/// (tiny buffers are copied, which is cheaper).
zmq::message_t share(const Buffer& buffer);

/// Copies of routing frames (for replying to a peer more than once).
std::vector<zmq::message_t> copy_route(const std::vector<zmq::message_t>& route);

/// A message held for long (a task queued in a scheduler), packed into one allocation.
///
/// Parts smaller than `limit` bytes are copied into it, each 16-byte aligned; larger parts
/// (arrays in side frames) stay shared as they are. A received small part points into a
/// receive buffer that ZeroMQ shares between many messages and frees only when all of them
/// are gone: a queued task that held it would keep the whole buffer, and its parts vector,
/// Buffer handles and route would cost more than the bytes themselves. The route is not
/// kept. Copies share the packed bytes.
class PackedMessage {
 public:
  PackedMessage() = default;
  explicit PackedMessage(const Envelope& envelope, std::size_t limit = 4096);
  PackedMessage(const PackedMessage& other);
  PackedMessage& operator=(const PackedMessage& other);
  PackedMessage(PackedMessage&&) noexcept = default;
  PackedMessage& operator=(PackedMessage&&) noexcept = default;
  ~PackedMessage() = default;

  [[nodiscard]] bool empty() const noexcept { return block_ == nullptr; }
  /// The message again, without a route; its small parts share the packed storage.
  [[nodiscard]] Envelope unpack() const;

 private:
  struct alignas(16) Chunk {
    std::byte bytes[16];
  };
  std::shared_ptr<const Chunk[]> block_;
  std::unique_ptr<std::vector<Buffer>> large_;  // parts of `limit` bytes or more, in order
};

}  // namespace ipp::net
