#include "ipp/net/envelope.hpp"

#include <cstring>
#include <memory>
#include <unordered_map>

#include <fmt/format.h>
#include <zmq_addon.hpp>

#include "ipp/error.hpp"
#include "ipp/net/replay.hpp"
#include "ipp/net/shm.hpp"
#include "random.hpp"

namespace ipp::net {

zmq::message_t share(const Buffer& b) {
  // Small: one copy (one allocation in ZeroMQ) is cheaper than a reference (two).
  if (b.size() < 1024) return zmq::message_t(b.data(), b.size());
  auto* hold = new Buffer(b);
  return zmq::message_t(
      const_cast<std::byte*>(b.data()), b.size(),
      [](void*, void* hint) noexcept { delete static_cast<Buffer*>(hint); }, hold);
}

Buffer to_buffer(zmq::message_t&& message) {
  auto owner = std::make_shared<zmq::message_t>(std::move(message));
  const auto* data = static_cast<const std::byte*>(owner->data());
  const std::size_t size = owner->size();
  return Buffer(std::shared_ptr<const void>(std::move(owner)), data, size);
}

namespace {

/// This thread's streams of messages, one per socket it sends on: each signature's nonce is
/// the socket's stream and the next number in it (see ReplayWindow).
class SendStreams {
 public:
  Signer::Signature sign(zmq::socket_ref socket, const Signer& signer,
                         std::span<const std::span<const std::byte>> parts) {
    // Sockets closed long ago leave entries: past a bound, every socket starts a new stream.
    if (streams_.size() >= 4096 && !streams_.contains(socket.handle())) streams_.clear();
    auto [it, fresh] = streams_.try_emplace(socket.handle());
    if (fresh)
      random_bytes(reinterpret_cast<unsigned char*>(&it->second.id), sizeof(std::uint64_t));
    return signer.sign(parts, it->second.id, it->second.next++);
  }

 private:
  struct Stream {
    std::uint64_t id = 0;
    std::uint64_t next = 1;
  };
  std::unordered_map<void*, Stream> streams_;
};

SendStreams& send_streams() {
  thread_local SendStreams streams;
  return streams;
}

/// Parts of a batch at least this large that several of its messages send cross once.
constexpr std::size_t kRepeatFrom = 4096;

/// This thread's replay windows, one per socket it receives on.
ReplayWindow& replay_window(zmq::socket_ref socket) {
  thread_local std::unordered_map<void*, ReplayWindow> windows;
  if (windows.size() >= 4096 && !windows.contains(socket.handle())) windows.clear();
  return windows[socket.handle()];
}

/// Empties a reused vector of frames when it goes out of scope.
struct ClearFrames {
  std::vector<zmq::message_t>& frames;
  ~ClearFrames() { frames.clear(); }
};

/// Sends `route | "" | tag | signature [| mask] | [counts |] parts...`, turning large parts
/// into shared-memory references when the peer maps them. The signature's nonce is the next of
/// this thread's stream on `socket` (see SendStreams).
bool send_frames(zmq::socket_ref socket, const Signer& signer,
                 const std::vector<zmq::message_t>& route, bool batch, const Buffer* counts,
                 const std::vector<const Buffer*>& parts, bool dontwait, SharedParts shared,
                 bool repeats = false) {
  const SharedMemory* shm = shared.shm;
  const bool peer_maps = shared.peer_maps;
  // Reused from call to call (a batch's would otherwise be a large allocation each time);
  // sending leaves the frames empty.
  thread_local std::vector<zmq::message_t> frames;
  frames.clear();
  frames.reserve(route.size() + 4 + parts.size() + (counts != nullptr ? 1 : 0));
  for (const auto& r : route)
    frames.emplace_back(r.data(), r.size());
  frames.emplace_back();
  std::string tag(batch ? kBatchTag : kProtocolTag);
  if (shm != nullptr) tag += 'M';
  if (repeats) tag += 'R';
  frames.emplace_back(tag.data(), tag.size());
  frames.emplace_back();  // the signature, once the parts are known
  const std::size_t signature_frame = frames.size() - 1;
  thread_local std::vector<std::span<const std::byte>> signed_parts;
  signed_parts.clear();
  std::vector<std::uint8_t> mask;
  std::vector<SharedMemory::Ref> refs;  // stable: signed_parts and frames point into it
  if (peer_maps && shm != nullptr) refs.reserve(parts.size());
  if (counts != nullptr) {
    signed_parts.push_back(counts->bytes());
    frames.push_back(share(*counts));
  }
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const Buffer& p = *parts[i];
    if (peer_maps && shm != nullptr && p.size() >= SharedMemory::kThreshold) {
      if (auto ref = shm->export_part(p)) {
        if (mask.empty()) mask.resize((parts.size() + 7) / 8);
        mask[i / 8] = static_cast<std::uint8_t>(mask[i / 8] | (1u << (i % 8)));
        refs.push_back(*ref);
        signed_parts.emplace_back(refs.back().data(), refs.back().size());
        frames.emplace_back(refs.back().data(), refs.back().size());
        continue;
      }
    }
    signed_parts.push_back(p.bytes());
    frames.push_back(share(p));
  }
  if (!mask.empty()) {
    signed_parts.insert(signed_parts.begin(), std::as_bytes(std::span(mask)));
    const auto sig = send_streams().sign(socket, signer, signed_parts);
    zmq::message_t frame(sig.size() + mask.size());
    std::memcpy(frame.data(), sig.data(), sig.size());
    std::memcpy(static_cast<char*>(frame.data()) + sig.size(), mask.data(), mask.size());
    frames[signature_frame] = std::move(frame);
  } else {
    const auto sig = send_streams().sign(socket, signer, signed_parts);
    frames[signature_frame] = zmq::message_t(sig.data(), sig.size());
  }
  const auto flags = dontwait ? zmq::send_flags::dontwait : zmq::send_flags::none;
  const ClearFrames clear{frames};  // what was not sent goes now: it holds the parts
  try {
    return zmq::send_multipart(socket, frames, flags).has_value();
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return false;
    throw;
  }
}

}  // namespace

bool send(zmq::socket_ref socket, const Signer& signer, const Envelope& envelope, bool dontwait,
          SharedParts shared) {
  std::vector<const Buffer*> parts;
  parts.reserve(envelope.parts.size());
  for (const auto& p : envelope.parts)
    parts.push_back(&p);
  return send_frames(socket, signer, envelope.route, false, nullptr, parts, dontwait, shared);
}

namespace {

// The packed layout: [count u32 | unused u32 | sizes u32... | parts...], each part 16-byte
// aligned; a size of kLargePart marks a part kept in `large_`.
constexpr std::uint32_t kLargePart = 0xffffffff;
constexpr std::size_t round16(std::size_t n) {
  return (n + 15) / 16 * 16;
}

}  // namespace

PackedMessage::PackedMessage(const PackedMessage& other)
    : block_(other.block_),
      large_(other.large_ ? std::make_unique<std::vector<Buffer>>(*other.large_) : nullptr) {}

PackedMessage& PackedMessage::operator=(const PackedMessage& other) {
  if (this != &other) *this = PackedMessage(other);
  return *this;
}

PackedMessage::PackedMessage(const Envelope& envelope, std::size_t limit) {
  const std::size_t n = envelope.parts.size();
  constexpr std::size_t sizes = 8;
  const std::size_t table = round16(sizes + 4 * n);
  std::size_t total = table;
  for (const auto& p : envelope.parts) {
    if (p.size() < limit) total += round16(p.size());
  }
  auto block = std::make_shared<Chunk[]>(total / 16);
  auto* out = block[0].bytes;
  auto put32 = [&](std::size_t at, std::uint32_t v) { std::memcpy(out + at, &v, 4); };
  put32(0, static_cast<std::uint32_t>(n));
  put32(4, 0);
  std::size_t offset = table;
  for (std::size_t i = 0; i < n; ++i) {
    const Buffer& p = envelope.parts[i];
    if (p.size() >= limit) {
      put32(sizes + 4 * i, kLargePart);
      if (!large_) large_ = std::make_unique<std::vector<Buffer>>();
      large_->push_back(p);
      continue;
    }
    put32(sizes + 4 * i, static_cast<std::uint32_t>(p.size()));
    if (!p.empty()) std::memcpy(out + offset, p.data(), p.size());
    offset += round16(p.size());
  }
  block_ = std::move(block);
}

Envelope PackedMessage::unpack() const {
  Envelope env;
  if (!block_) return env;
  const auto* in = block_[0].bytes;
  auto get32 = [&](std::size_t at) {
    std::uint32_t v = 0;
    std::memcpy(&v, in + at, 4);
    return v;
  };
  const std::size_t n = get32(0);
  constexpr std::size_t sizes = 8;
  const std::shared_ptr<const void> owner = block_;
  env.parts.reserve(n);
  std::size_t offset = round16(sizes + 4 * n);
  std::size_t large = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t size = get32(sizes + 4 * i);
    if (size == kLargePart) {
      env.parts.push_back(large_->at(large++));
      continue;
    }
    env.parts.emplace_back(owner, in + offset, size);
    offset += round16(size);
  }
  return env;
}

namespace {

/// One received ZeroMQ message, checked and verified: its route, whether it is a batch, and
/// its signed parts (shared-memory parts mapped; `unreadable[i]` says why part i is not).
struct Received {
  std::vector<zmq::message_t> route;
  bool batch = false;
  bool peer_maps = false;
  bool repeats = false;  // a batch whose counts list parts sent once for several messages
  std::vector<Buffer> parts;
  std::vector<std::string> unreadable;  // empty, or one entry per part
  bool verified = true;
  Signer::Signature signature{};
  std::uint64_t signed_with = 0;
};

/// Parts smaller than this are copied out of their frames into one block per received
/// message, 16-byte aligned: one allocation for all of a batch's small parts, where keeping
/// each frame costs one per part. Larger parts keep their frames (no copy).
constexpr std::size_t kPackBelow = 4096;

struct alignas(16) Block {
  std::byte bytes[16];
};

/// Moves the parts `frames[from...]` into `parts`: the small ones copied into one block, the
/// large ones keeping their frames.
void take_parts(std::vector<zmq::message_t>& frames, std::size_t from, std::vector<Buffer>& parts) {
  std::size_t total = 0;
  for (std::size_t i = from; i < frames.size(); ++i) {
    if (frames[i].size() < kPackBelow) total += round16(frames[i].size());
  }
  std::shared_ptr<Block[]> block;
  std::byte* out = nullptr;
  if (total != 0) {
    block = std::make_shared_for_overwrite<Block[]>(total / 16);
    out = block[0].bytes;
  }
  const std::shared_ptr<const void> owner = block;
  parts.reserve(frames.size() - from);
  for (std::size_t i = from; i < frames.size(); ++i) {
    const std::size_t size = frames[i].size();
    if (size >= kPackBelow || size == 0) {
      parts.push_back(to_buffer(std::move(frames[i])));
    } else {
      std::memcpy(out, frames[i].data(), size);
      parts.emplace_back(owner, out, size);
      out += round16(size);
    }
  }
}

/// The address of the peer that sent `frames` ("" when the transport has none, as inproc).
std::string peer_address(const std::vector<zmq::message_t>& frames) {
  for (const auto& f : frames) {
    // Frames a router made (routing ids) or that were moved out carry no metadata.
    if (const char* a = zmq_msg_gets(f.handle(), "Peer-Address"); a != nullptr && *a != '\0')
      return a;
  }
  return {};
}

/// The signers a message may be signed by, tried in order.
using Signers = std::span<const Signer* const>;

std::optional<Received> receive_frames(std::vector<zmq::message_t>& frames, Signers signers,
                                       const SharedMemory* shm, Unverified unverified);

std::optional<Received> receive(zmq::socket_ref socket, Signers signers, zmq::recv_flags flags,
                                const SharedMemory* shm,
                                Unverified unverified = Unverified::refuse) {
  // Reused from call to call: a batch's frames would otherwise cost a large allocation each.
  thread_local std::vector<zmq::message_t> frames;
  frames.clear();
  if (!zmq::recv_multipart(socket, std::back_inserter(frames), flags)) return std::nullopt;
  const ClearFrames clear{frames};  // the frames of a refused message do not stay
  try {
    auto in = receive_frames(frames, signers, shm, unverified);
    if (!in || !in->verified) return in;
    // After the signature: only a message that verified says truly which stream it is of.
    const auto [stream, sequence] = Signer::sequence_of(std::as_bytes(std::span(in->signature)));
    std::uint64_t last = 0;
    if (!replay_window(socket).accept(stream, sequence, ReplayWindow::Clock::now(), last)) {
      throw ProtocolError(fmt::format(
          "a message received before, sent again: number {} of its sender's stream, which is "
          "at {}",
          sequence, last));
    }
    return in;
  } catch (const ProtocolError& e) {
    // Name the sender, so that a flood of bad messages can be traced to its source.
    const std::string peer = peer_address(frames);
    if (peer.empty()) throw;
    throw ProtocolError(fmt::format("{} (from {})", e.what(), peer));
  }
}

std::optional<Received> receive_frames(std::vector<zmq::message_t>& frames, Signers signers,
                                       const SharedMemory* shm, Unverified unverified) {
  std::size_t delimiter = 0;
  while (delimiter < frames.size() && frames[delimiter].size() != 0)
    ++delimiter;
  if (delimiter == frames.size()) {
    throw ProtocolError(
        fmt::format("message of {} frame(s) has no delimiter frame", frames.size()));
  }
  Received in;
  std::string_view tag =
      frames.size() >= delimiter + 3 ? frames[delimiter + 1].to_string_view() : std::string_view();
  if (tag.substr(0, kProtocolTag.size()) != kProtocolTag)
    throw ProtocolError("message is not an ipp message (missing or unknown protocol tag)");
  for (const char c : tag.substr(kProtocolTag.size())) {
    if (c == 'B')
      in.batch = true;
    else if (c == 'M')
      in.peer_maps = true;
    else if (c == 'R')
      in.repeats = true;
    else
      throw ProtocolError(fmt::format("unknown protocol tag '{}'", tag.substr(0, 16)));
  }
  in.route.reserve(delimiter);
  for (std::size_t i = 0; i < delimiter; ++i)
    in.route.push_back(std::move(frames[i]));
  const zmq::message_t& signature = frames[delimiter + 2];
  take_parts(frames, delimiter + 3, in.parts);
  if (in.parts.empty())
    throw ProtocolError("message without a header (no parts after the signature)");
  // The signature, then the mask of shared-memory parts (signed first), if any.
  const auto* sig = static_cast<const std::byte*>(signature.data());
  const std::size_t mask_size =
      signature.size() > Signer::kSignatureSize ? signature.size() - Signer::kSignatureSize : 0;
  std::span<const std::byte> mask(sig + Signer::kSignatureSize, mask_size);
  const std::size_t first = in.batch ? 1 : 0;  // a batch's counts are never in the mask
  const std::size_t nparts = in.parts.size() - std::min(in.parts.size(), first);
  if (mask_size != 0 && mask_size != (nparts + 7) / 8)
    throw ProtocolError("message with a malformed shared-memory part mask");
  thread_local std::vector<std::span<const std::byte>> signed_parts;
  signed_parts.clear();
  if (mask_size != 0) signed_parts.push_back(mask);
  for (const auto& p : in.parts)
    signed_parts.push_back(p.bytes());
  if (signature.size() >= Signer::kSignatureSize) {
    for (const Signer* signer : signers) {
      if (signer->verify({sig, Signer::kSignatureSize}, signed_parts)) {
        in.signed_with = signer->key_id();
        break;
      }
    }
  }
  if (in.signed_with == 0) {
    static constexpr const char* kWhy = "message signature is missing or wrong";
    if (unverified == Unverified::refuse) throw ProtocolError(kWhy);
    // Delivered to be answered: nothing of it is read beyond its ids, and none of its
    // shared-memory references is followed.
    in.verified = false;
    std::string why = std::string(kWhy) + " (changed on the way, or not from this cluster)";
    if (const char* peer = zmq_msg_gets(signature.handle(), "Peer-Address");
        peer != nullptr && *peer != '\0')
      why += fmt::format(" (from {})", peer);
    in.unreadable.assign(in.parts.size(), why);
    return in;
  }
  std::memcpy(in.signature.data(), sig, Signer::kSignatureSize);
  if (mask_size == 0) return in;
  for (std::size_t i = 0; i < nparts; ++i) {
    if ((static_cast<unsigned>(mask[i / 8]) & (1u << (i % 8))) == 0) continue;
    Buffer& part = in.parts[first + i];
    std::string why;
    if (shm == nullptr) {
      why = "a part came through shared memory, which this process does not map";
    } else {
      try {
        part = shm->import_part(part.bytes());
        continue;
      } catch (const ProtocolError& e) {
        why = e.what();
      }
    }
    if (in.unreadable.empty()) in.unreadable.resize(in.parts.size());
    in.unreadable[first + i] = why;
    part = Buffer();
  }
  return in;
}

/// The message of a plain (not batched) received ZeroMQ message.
Envelope whole(Received&& in) {
  Envelope env;
  env.route = std::move(in.route);
  env.parts = std::move(in.parts);
  env.signed_with = in.signed_with;
  env.peer_maps = in.peer_maps;
  env.verified = in.verified;
  for (const auto& why : in.unreadable) {
    if (!why.empty()) {
      env.unreadable = why;
      break;
    }
  }
  return env;
}

/// The first reason in `why` for the parts [from, from + n), or "".
std::string first_reason(const std::vector<std::string>& why, std::size_t from, std::size_t n) {
  for (std::size_t i = from; i < from + n && i < why.size(); ++i) {
    if (!why[i].empty()) return why[i];
  }
  return {};
}

/// The one message `in` holds (none when nothing was waiting); a batch is refused.
std::optional<Envelope> single(std::optional<Received>&& in) {
  if (!in) return std::nullopt;
  if (in->batch) throw ProtocolError("a batch of messages arrived where one message was expected");
  if (in->repeats) throw ProtocolError("a message that is not a batch lists repeated parts");
  return whole(std::move(*in));
}

}  // namespace

std::optional<Envelope> recv(zmq::socket_ref socket, const Signer& signer, zmq::recv_flags flags,
                             const SharedMemory* shm) {
  const Signer* const signers[] = {&signer};
  return single(receive(socket, signers, flags, shm));
}

std::optional<Envelope> recv_either(zmq::socket_ref socket, const Signer& first,
                                    const Signer& second, zmq::recv_flags flags) {
  const Signer* const signers[] = {&first, &second};
  return single(receive(socket, signers, flags, nullptr));
}

bool recv_all(zmq::socket_ref socket, const Signer& signer, std::vector<Envelope>& out,
              zmq::recv_flags flags, const SharedMemory* shm, Unverified unverified) {
  const Signer* const signers[] = {&signer};
  auto in = receive(socket, signers, flags, shm, unverified);
  if (!in) return false;
  if (!in->batch) {
    if (in->repeats) throw ProtocolError("a message that is not a batch lists repeated parts");
    out.push_back(whole(std::move(*in)));
    return true;
  }
  // counts | parts...: every message has a header, and the counts add up to the parts.
  if (in->parts.empty() || in->parts[0].empty() ||
      in->parts[0].size() % sizeof(std::uint32_t) != 0) {
    throw ProtocolError("a batch without a valid list of part counts");
  }
  const Buffer& counts = in->parts[0];
  const auto word = [&](std::size_t i) {
    std::uint32_t c = 0;
    for (std::size_t b = 0; b < 4; ++b)
      c |= static_cast<std::uint32_t>(counts.data()[i * 4 + b]) << (8 * b);
    return c;
  };
  const std::size_t words = counts.size() / sizeof(std::uint32_t);
  // With repeats: n | n counts | (repeat, original) pairs of part numbers.
  std::size_t n = words, from = 0;
  if (in->repeats) {
    n = word(0);
    from = 1;
    if (n + 1 > words || (words - n - 1) % 2 != 0)
      throw ProtocolError("a batch with a malformed list of repeated parts");
  }
  std::vector<std::uint32_t> sizes(n);
  std::size_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t c = word(from + i);
    if (c == 0) throw ProtocolError(fmt::format("message {} of a batch has no parts", i));
    sizes[i] = c;
    total += c;
  }
  if (total != in->parts.size() - 1) {
    throw ProtocolError(
        fmt::format("a batch announces {} parts and holds {}", total, in->parts.size() - 1));
  }
  // A repeat is an empty frame standing for an earlier part of the batch (after the
  // signature, which covers the list and the empty frame: nothing unsigned is read).
  for (std::size_t w = from + n; w + 1 < words; w += 2) {
    const std::uint32_t repeat = word(w), original = word(w + 1);
    if (original >= repeat || repeat >= total || !in->parts[1 + repeat].empty())
      throw ProtocolError(fmt::format("a batch repeats part {} as part {}", original, repeat));
    in->parts[1 + repeat] = in->parts[1 + original];
    if (!in->unreadable.empty()) in->unreadable[1 + repeat] = in->unreadable[1 + original];
  }
  out.reserve(out.size() + n);
  std::size_t next = 1;
  for (std::size_t i = 0; i < n; ++i) {
    Envelope env;
    env.route = copy_route(in->route);
    env.peer_maps = in->peer_maps;
    env.signed_with = in->signed_with;
    env.verified = in->verified;
    env.unreadable = first_reason(in->unreadable, next, sizes[i]);
    const auto first = in->parts.begin() + static_cast<std::ptrdiff_t>(next);
    env.parts.assign(std::make_move_iterator(first), std::make_move_iterator(first + sizes[i]));
    next += sizes[i];
    out.push_back(std::move(env));
  }
  return true;
}

bool send_batch(zmq::socket_ref socket, const Signer& signer,
                const std::vector<zmq::message_t>& route, std::span<const Envelope> messages,
                bool dontwait, SharedParts shared) {
  if (messages.empty()) return true;
  std::vector<const Buffer*> parts;
  if (messages.size() == 1) {
    for (const auto& p : messages[0].parts)
      parts.push_back(&p);
    return send_frames(socket, signer, route, false, nullptr, parts, dontwait, shared);
  }
  // A large part that an earlier message of the batch sends too (one payload for several
  // engines) crosses once: later ones go as empty frames, listed as repeats.
  static const Buffer kEmpty;
  std::vector<std::uint32_t> repeats;  // (repeat, original) pairs
  std::unordered_map<const std::byte*, std::uint32_t> first;
  for (const auto& m : messages) {
    for (const auto& p : m.parts) {
      const auto at = static_cast<std::uint32_t>(parts.size());
      if (p.size() >= kRepeatFrom) {
        const auto [it, fresh] = first.try_emplace(p.data(), at);
        if (!fresh && parts[it->second]->size() == p.size()) {
          repeats.insert(repeats.end(), {at, it->second});
          parts.push_back(&kEmpty);
          continue;
        }
      }
      parts.push_back(&p);
    }
  }
  const std::size_t header = repeats.empty() ? 0 : 1;
  std::byte* out = nullptr;
  const Buffer counts =
      Buffer::allocate((header + messages.size() + repeats.size()) * sizeof(std::uint32_t), &out);
  const auto put = [&](std::uint32_t c) {
    for (int b = 0; b < 4; ++b, c >>= 8)
      *out++ = static_cast<std::byte>(c & 0xff);
  };
  if (header != 0) put(static_cast<std::uint32_t>(messages.size()));
  for (const auto& m : messages)
    put(static_cast<std::uint32_t>(m.parts.size()));
  for (const std::uint32_t r : repeats)
    put(r);
  return send_frames(socket, signer, route, true, &counts, parts, dontwait, shared,
                     !repeats.empty());
}

std::vector<zmq::message_t> copy_route(const std::vector<zmq::message_t>& route) {
  std::vector<zmq::message_t> out;
  out.reserve(route.size());
  for (const auto& m : route)
    out.emplace_back(m.data(), m.size());
  return out;
}

}  // namespace ipp::net
