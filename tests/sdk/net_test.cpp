#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sodium.h>
#include <zmq_addon.hpp>

#include "ipp/codec.hpp"
#include "ipp/net/address.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/engine_exit.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/poll.hpp"
#include "ipp/net/replay.hpp"
#include "ipp/net/signer.hpp"
#include "support/paths.hpp"

namespace ipp::net {
namespace {

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s));
}

TEST(Signer, TagsArePoly1305UnderAKeyDerivedFromTheNonceOverLengthPrefixedParts) {
  Signer signer("Jefe");
  const std::span<const std::byte> parts[] = {bytes("what do ya"), bytes(" want for nothing?")};
  const auto sig = signer.sign(parts);
  // The same construction, by hand: the ChaCha20 key is HMAC-SHA256(key, "ipp/chacha"); the
  // nonce's first 8 bytes are the ChaCha20 nonce and its last 8 the block counter; the first
  // 32 bytes of that block key a Poly1305 over each part's 8-byte little-endian length and
  // bytes.
  unsigned char stream_key[32];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>("Jefe"), 4);
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>("ipp/chacha"), 10);
  crypto_auth_hmacsha256_final(&st, stream_key);
  std::uint64_t counter = 0;
  std::memcpy(&counter, sig.data() + 8, 8);  // little-endian (x86, arm64)
  unsigned char block[64] = {};
  crypto_stream_chacha20_xor_ic(block, block, sizeof block, sig.data(), counter, stream_key);
  const unsigned char* one_time = block;
  std::string flat;
  for (std::string_view p :
       {std::string_view("what do ya"), std::string_view(" want for nothing?")}) {
    std::uint64_t n = p.size();
    for (int i = 0; i < 8; ++i, n >>= 8)
      flat.push_back(static_cast<char>(n & 0xff));
    flat += p;
  }
  unsigned char expected[16];
  crypto_onetimeauth(expected, reinterpret_cast<const unsigned char*>(flat.data()), flat.size(),
                     one_time);
  ASSERT_EQ(sig.size(), Signer::kNonceSize + 16);
  EXPECT_EQ(std::memcmp(sig.data() + Signer::kNonceSize, expected, 16), 0);
  // A fresh nonce each time: the same parts never sign the same way twice.
  const auto again = signer.sign(parts);
  EXPECT_NE(again, sig);
  EXPECT_TRUE(signer.verify(std::as_bytes(std::span(again)), parts));
}

TEST(Signer, RejectsTamperingWrongKeysAndMovedBoundaries) {
  Signer signer(Signer::new_key());
  const std::span<const std::byte> parts[] = {bytes("header"), bytes("payload")};
  const auto sig = signer.sign(parts);
  EXPECT_TRUE(signer.verify(std::as_bytes(std::span(sig)), parts));
  const std::span<const std::byte> tampered[] = {bytes("header"), bytes("pAyload")};
  EXPECT_FALSE(signer.verify(std::as_bytes(std::span(sig)), tampered));
  const std::span<const std::byte> moved[] = {bytes("headerp"), bytes("ayload")};
  EXPECT_FALSE(signer.verify(std::as_bytes(std::span(sig)), moved));
  EXPECT_FALSE(Signer(Signer::new_key()).verify(std::as_bytes(std::span(sig)), parts));
  EXPECT_FALSE(
      signer.verify(std::as_bytes(std::span(sig)).first(Signer::kSignatureSize - 1), parts));
  auto other_nonce = sig;
  other_nonce[0] ^= 1;
  EXPECT_FALSE(signer.verify(std::as_bytes(std::span(other_nonce)), parts));
  EXPECT_NE(Signer::new_key(), Signer::new_key());
  EXPECT_EQ(Signer::new_key().size(), 64u);
}

TEST(Signer, OverEncryptedConnectionsLargePartsAreCoveredByTheirLengthOnly) {
  const std::string key = Signer::new_key();
  const Signer small(key, Signer::Coverage::small_parts), all(key);
  std::string big(Signer::kCoveredPartBytes + 1, 'x');
  const std::span<const std::byte> parts[] = {bytes("header"), std::as_bytes(std::span(big))};
  const auto sig = small.sign(parts);
  EXPECT_TRUE(small.verify(std::as_bytes(std::span(sig)), parts));
  // CURVE authenticated the large part's bytes on its connection: they are not read again.
  big[7] = 'y';
  EXPECT_TRUE(small.verify(std::as_bytes(std::span(sig)), parts));
  // Small parts (headers) and every part's length still are.
  const std::span<const std::byte> header_changed[] = {bytes("heaDer"),
                                                       std::as_bytes(std::span(big))};
  EXPECT_FALSE(small.verify(std::as_bytes(std::span(sig)), header_changed));
  const std::string longer = big + "z";
  const std::span<const std::byte> length_changed[] = {bytes("header"),
                                                       std::as_bytes(std::span(longer))};
  EXPECT_FALSE(small.verify(std::as_bytes(std::span(sig)), length_changed));
  // A part at the limit is read whole.
  std::string edge(Signer::kCoveredPartBytes, 'x');
  const std::span<const std::byte> at_limit[] = {std::as_bytes(std::span(edge))};
  const auto edge_sig = small.sign(at_limit);
  edge[0] = 'y';
  EXPECT_FALSE(small.verify(std::as_bytes(std::span(edge_sig)), at_limit));
  // The two coverages never pass for each other, even where they read the same bytes.
  const std::span<const std::byte> tiny[] = {bytes("header")};
  const auto by_small = small.sign(tiny), by_all = all.sign(tiny);
  EXPECT_FALSE(all.verify(std::as_bytes(std::span(by_small)), tiny));
  EXPECT_FALSE(small.verify(std::as_bytes(std::span(by_all)), tiny));
}

TEST(Signer, AMovedSignerSignsWithTheKeyItWasGiven) {
  const std::string key_a = Signer::new_key(), key_b = Signer::new_key();
  Signer a(key_a), b(key_b);
  const std::span<const std::byte> parts[] = {bytes("header"), bytes("payload")};
  a = std::move(b);  // a's old key is freed here (and wiped)
  const auto sig = a.sign(parts);
  EXPECT_TRUE(Signer(key_b).verify(std::as_bytes(std::span(sig)), parts));
  EXPECT_FALSE(Signer(key_a).verify(std::as_bytes(std::span(sig)), parts));
  Signer c(std::move(a));
  const auto sig_c = c.sign(parts);
  EXPECT_TRUE(Signer(key_b).verify(std::as_bytes(std::span(sig_c)), parts));
}

TEST(Signer, LargePartsAreCoveredByteForByte) {
  Signer signer(Signer::new_key());
  std::vector<std::byte> big((1 << 18) + 5, std::byte{7});
  const std::span<const std::byte> header = bytes("header");
  std::span<const std::byte> parts[] = {header, std::span<const std::byte>(big)};
  const auto sig = signer.sign(parts);
  EXPECT_TRUE(signer.verify(std::as_bytes(std::span(sig)), parts));
  // Flipping any one byte (first, middle, last) or dropping the last breaks the signature.
  for (std::size_t at : {std::size_t{0}, big.size() / 2, big.size() - 1}) {
    big[at] ^= std::byte{1};
    EXPECT_FALSE(signer.verify(std::as_bytes(std::span(sig)), parts)) << "byte " << at;
    big[at] ^= std::byte{1};
  }
  parts[1] = std::span<const std::byte>(big).first(big.size() - 1);
  EXPECT_FALSE(signer.verify(std::as_bytes(std::span(sig)), parts));
  // Parts in another order sign differently.
  std::span<const std::byte> two[] = {std::span<const std::byte>(big),
                                      std::span<const std::byte>(big).first(1 << 16)};
  const auto sig2 = signer.sign(two);
  std::span<const std::byte> swapped[] = {two[1], two[0]};
  EXPECT_FALSE(signer.verify(std::as_bytes(std::span(sig2)), swapped));
}

class EnvelopeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.bind("tcp://127.0.0.1:*");
    dealer_.connect(router_.get(zmq::sockopt::last_endpoint));
    router_.set(zmq::sockopt::rcvtimeo, 5000);
    dealer_.set(zmq::sockopt::rcvtimeo, 5000);
  }
  /// Sends a header, a payload root and one side frame from the dealer; the router's copy.
  std::optional<Envelope> send_sample(const Payload& payload) {
    Envelope out;
    out.parts = {Buffer::copy("header", 6), payload.root, payload.frames.at(0)};
    if (!send(dealer_, signer_, out)) return std::nullopt;
    return recv(router_, signer_);
  }
  zmq::context_t ctx_;
  zmq::socket_t router_{ctx_, zmq::socket_type::router};
  zmq::socket_t dealer_{ctx_, zmq::socket_type::dealer};
  Signer signer_{Signer::new_key()};
};

TEST_F(EnvelopeTest, CarriesPartsBothWays) {
  const Payload payload =
      encode(std::vector<double>(100000, 2.0), EncodeOptions{.side_frame_threshold = 1024});
  auto in = send_sample(payload);
  ASSERT_TRUE(in);
  ASSERT_EQ(in->route.size(), 1u);  // the dealer's identity
  ASSERT_EQ(in->parts.size(), 3u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(in->parts[0].data()), in->parts[0].size()),
            "header");
  Payload received{in->parts[1], {in->parts[2]}};
  EXPECT_EQ(decode(received), decode(payload));

  Envelope reply;
  reply.route = std::move(in->route);
  reply.parts = {Buffer::copy("ok", 2)};
  ASSERT_TRUE(send(router_, signer_, reply));
  auto back = recv(dealer_, signer_);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->route.empty());
  EXPECT_EQ(back->parts.at(0).size(), 2u);
}

TEST_F(EnvelopeTest, PackedMessagesKeepTheirBytesAndTheSignatureStillHolds) {
  const Payload payload =
      encode(std::vector<double>(100000, 2.0), EncodeOptions{.side_frame_threshold = 1024});
  auto in = send_sample(payload);
  ASSERT_TRUE(in);
  const std::vector<Buffer> before = in->parts;
  const std::byte* big = in->parts[2].data();
  const PackedMessage packed(*in);
  in.reset();  // the packed message stands on its own
  const Envelope back = packed.unpack();
  ASSERT_EQ(back.parts.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(back.parts[i].size(), before[i].size());
    EXPECT_EQ(std::memcmp(back.parts[i].data(), before[i].data(), before[i].size()), 0) << i;
  }
  // The small parts now share one allocation of their own, aligned; the side frame is untouched.
  EXPECT_EQ(back.parts[0].owner(), back.parts[1].owner());
  EXPECT_NE(back.parts[0].owner(), before[0].owner());
  EXPECT_TRUE(back.parts[0].is_aligned(Buffer::kAlignment));
  EXPECT_TRUE(back.parts[1].is_aligned(Buffer::kAlignment));
  EXPECT_EQ(back.parts[2].data(), big);
  EXPECT_EQ(decode(Payload{back.parts[1], {back.parts[2]}}), decode(payload));
  // Sent on, it verifies.
  auto routed = send_sample(payload);  // the dealer's route, to send the packed one back on
  ASSERT_TRUE(routed);
  Envelope out = packed.unpack();
  out.route = std::move(routed->route);
  ASSERT_TRUE(send(router_, signer_, out));
  auto echoed = recv(dealer_, signer_);
  ASSERT_TRUE(echoed);
  EXPECT_EQ(echoed->parts.at(0).size(), 6u);
  // Empty parts pack too; an empty message unpacks to nothing.
  Envelope plain;
  plain.parts = {Buffer::copy("x", 1), Buffer()};
  const Envelope again = PackedMessage(plain).unpack();
  ASSERT_EQ(again.parts.size(), 2u);
  EXPECT_EQ(again.parts[1].size(), 0u);
  EXPECT_TRUE(PackedMessage().unpack().parts.empty());
}

TEST_F(EnvelopeTest, AMessageSentOnWithAnotherKeyIsSignedAnewAndEitherKeyIsTold) {
  const Signer other(Signer::new_key());
  ASSERT_NE(other.key_id(), signer_.key_id());
  auto in = send_sample(
      encode(std::vector<double>(1000, 2.0), EncodeOptions{.side_frame_threshold = 1024}));
  ASSERT_TRUE(in);
  EXPECT_EQ(in->signed_with, signer_.key_id());
  // Sent on under another key, as a relay forwards a client's task to an engine (also after
  // packing, as a scheduler queues it).
  for (const bool packed : {false, true}) {
    Envelope out = packed ? PackedMessage(*in).unpack() : Envelope{};
    if (!packed) out.parts = in->parts;
    out.route = copy_route(in->route);
    ASSERT_TRUE(send(router_, other, out));
    auto got = recv_either(dealer_, signer_, other);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->signed_with, other.key_id()) << "verified with the second key";
  }
  // A message of neither key is refused.
  const Signer stranger(Signer::new_key());
  Envelope out;
  out.route = copy_route(in->route);
  out.parts = {Buffer::copy("x", 1)};
  ASSERT_TRUE(send(router_, stranger, out));
  EXPECT_THROW((void)recv_either(dealer_, signer_, other), ProtocolError);
}

TEST_F(EnvelopeTest, AMessageSentAgainIsRefusedAsAReplayAndTheSocketGoesOn) {
  // What a recorder of the traffic would send: the frames of a message as they crossed.
  zmq::socket_t tap(ctx_, zmq::socket_type::dealer);
  tap.connect(router_.get(zmq::sockopt::last_endpoint));
  Envelope out;
  out.parts = {Buffer::copy("task", 4)};
  ASSERT_TRUE(send(dealer_, signer_, out));
  auto first = recv(router_, signer_);
  ASSERT_TRUE(first);
  // The same signed frames, again, from another connection, and from the same one.
  std::vector<zmq::message_t> frames;
  {
    zmq::socket_t sink(ctx_, zmq::socket_type::router);
    sink.bind("inproc://replay-sink");
    zmq::socket_t from(ctx_, zmq::socket_type::dealer);
    from.connect("inproc://replay-sink");
    ASSERT_TRUE(send(from, signer_, out));
    ASSERT_TRUE(zmq::recv_multipart(sink, std::back_inserter(frames)));
    frames.erase(frames.begin());  // the route the sink added
    // Once: it is new to the router (a stream it has not heard).
    std::vector<zmq::message_t> copy;
    for (const auto& f : frames)
      copy.emplace_back(f.data(), f.size());
    ASSERT_TRUE(zmq::send_multipart(tap, copy));
    EXPECT_TRUE(recv(router_, signer_));
  }
  for (int i = 0; i < 2; ++i) {
    std::vector<zmq::message_t> copy;
    for (const auto& f : frames)
      copy.emplace_back(f.data(), f.size());
    ASSERT_TRUE(zmq::send_multipart(i == 0 ? tap : dealer_, copy));
    try {
      (void)recv(router_, signer_);
      ADD_FAILURE() << "a replay was taken";
    } catch (const ProtocolError& e) {
      EXPECT_NE(std::string(e.what()).find("sent again"), std::string::npos) << e.what();
    }
  }
  // The sender's next message is taken.
  ASSERT_TRUE(send(dealer_, signer_, out));
  EXPECT_TRUE(recv(router_, signer_));
}

TEST_F(EnvelopeTest, AMessageThatDoesNotVerifyIsDeliveredToBeAnsweredOnlyWhenAsked) {
  const Signer stranger(Signer::new_key());
  std::vector<Envelope> two(2);
  two[0].parts = {Buffer::copy("h0", 2)};
  two[1].parts = {Buffer::copy("h1", 2), Buffer::copy("p1", 2)};
  ASSERT_TRUE(send_batch(dealer_, stranger, {}, two));
  ASSERT_TRUE(send(dealer_, stranger, two[1]));
  std::vector<Envelope> in;
  ASSERT_TRUE(recv_all(router_, signer_, in, zmq::recv_flags::none, nullptr, Unverified::answer));
  ASSERT_EQ(in.size(), 2u) << "each message of the batch, to answer each";
  for (const auto& env : in) {
    EXPECT_FALSE(env.verified);
    EXPECT_NE(env.unreadable.find("signature"), std::string::npos) << env.unreadable;
    EXPECT_EQ(env.route.size(), 1u) << "its sender's route, to answer on";
  }
  EXPECT_THROW((void)recv_all(router_, signer_, in), ProtocolError) << "refused by default";
  // A verified message is as ever.
  ASSERT_TRUE(send(dealer_, signer_, two[0]));
  in.clear();
  ASSERT_TRUE(recv_all(router_, signer_, in, zmq::recv_flags::none, nullptr, Unverified::answer));
  ASSERT_EQ(in.size(), 1u);
  EXPECT_TRUE(in[0].verified);
  EXPECT_TRUE(in[0].unreadable.empty());
}

TEST_F(EnvelopeTest, ForgedMessagesAreRejectedAndTheSocketGoesOn) {
  Signer forger(Signer::new_key());
  Envelope out;
  out.parts = {Buffer::copy("evil", 4)};
  ASSERT_TRUE(send(dealer_, forger, out));
  EXPECT_THROW((void)recv(router_, signer_), ProtocolError);
  // Garbage frames: no delimiter, then a delimiter with a wrong tag.
  dealer_.send(zmq::str_buffer("random"), zmq::send_flags::sndmore);
  dealer_.send(zmq::str_buffer("bytes"), zmq::send_flags::none);
  EXPECT_THROW((void)recv(router_, signer_), ProtocolError);
  dealer_.send(zmq::message_t(), zmq::send_flags::sndmore);
  dealer_.send(zmq::str_buffer("HTTP/1.1"), zmq::send_flags::none);
  EXPECT_THROW((void)recv(router_, signer_), ProtocolError);
  // A good message after all that still arrives.
  out.parts = {Buffer::copy("good", 4)};
  ASSERT_TRUE(send(dealer_, signer_, out));
  auto in = recv(router_, signer_);
  ASSERT_TRUE(in);
  EXPECT_EQ(in->parts.at(0).size(), 4u);
}

std::string text(const Buffer& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

TEST_F(EnvelopeTest, ABatchArrivesAsItsMessagesInOrder) {
  const Payload big =
      encode(std::vector<double>(100000, 2.0), EncodeOptions{.side_frame_threshold = 1024});
  std::vector<Envelope> out(3);
  out[0].parts = {Buffer::copy("h0", 2)};
  out[1].parts = {Buffer::copy("h1", 2), big.root, big.frames.at(0)};
  out[2].parts = {Buffer::copy("h2", 2), Buffer::copy("p2", 2)};
  ASSERT_TRUE(send_batch(dealer_, signer_, {}, out));
  std::vector<Envelope> in;
  ASSERT_TRUE(recv_all(router_, signer_, in));
  ASSERT_EQ(in.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(in[i].parts.size(), out[i].parts.size()) << i;
    EXPECT_EQ(text(in[i].parts[0]), "h" + std::to_string(i));
    ASSERT_EQ(in[i].route.size(), 1u);  // each keeps the sender's route
  }
  EXPECT_EQ(decode(Payload{in[1].parts[1], {in[1].parts[2]}}), decode(big));
  EXPECT_EQ(text(in[2].parts[1]), "p2");
  // Back the other way, routed, and a batch of one is a plain message.
  std::vector<Envelope> replies(2);
  replies[0].parts = {Buffer::copy("r0", 2)};
  replies[1].parts = {Buffer::copy("r1", 2)};
  ASSERT_TRUE(send_batch(router_, signer_, in[0].route, replies));
  ASSERT_TRUE(send_batch(router_, signer_, in[0].route, std::span(replies).first(1)));
  std::vector<Envelope> back;
  ASSERT_TRUE(recv_all(dealer_, signer_, back));
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(text(back[1].parts.at(0)), "r1");
  auto single = recv(dealer_, signer_);
  ASSERT_TRUE(single);
  EXPECT_EQ(text(single->parts.at(0)), "r0");
}

TEST_F(EnvelopeTest, ReceivedPartsKeepTheirBytesAlignedWhetherCopiedTogetherOrKept) {
  // Small parts of a received message are copied into one block together, each 16-byte
  // aligned; large ones keep their frames. Sizes on both sides of the line, and odd ones.
  std::vector<Envelope> out(2);
  std::vector<std::string> texts;
  for (const std::size_t size : {1, 15, 17, 1023, 1024, 4095, 4096, 70000}) {
    std::string t(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
      t[i] = static_cast<char>('a' + (i * 7 + size) % 26);
    texts.push_back(t);
  }
  for (std::size_t i = 0; i < texts.size(); ++i)
    out[i % 2].parts.push_back(Buffer::copy(texts[i].data(), texts[i].size()));
  ASSERT_TRUE(send_batch(dealer_, signer_, {}, out));
  ASSERT_TRUE(send(dealer_, signer_, out[1]));
  std::vector<Envelope> in;
  ASSERT_TRUE(recv_all(router_, signer_, in));
  ASSERT_TRUE(recv_all(router_, signer_, in));
  ASSERT_EQ(in.size(), 3u);
  for (std::size_t m = 0; m < 3; ++m) {
    const auto& sent = out[m == 0 ? 0 : 1];
    ASSERT_EQ(in[m].parts.size(), sent.parts.size()) << m;
    for (std::size_t i = 0; i < sent.parts.size(); ++i) {
      EXPECT_EQ(text(in[m].parts[i]), text(sent.parts[i])) << m << " " << i;
      if (sent.parts[i].size() < 4096) {
        EXPECT_TRUE(in[m].parts[i].is_aligned(16)) << m << " " << i;
      }
    }
  }
  // A part outlives its message and the next ones received on the same thread.
  const Buffer kept = in[0].parts[1];
  in.clear();
  ASSERT_TRUE(send_batch(dealer_, signer_, {}, out));
  ASSERT_TRUE(recv_all(router_, signer_, in));
  EXPECT_EQ(text(kept), texts[2]);
}

TEST_F(EnvelopeTest, MalformedOrForgedBatchesAreRejectedWholeAndTheSocketGoesOn) {
  // Frames of a batch whose counts frame is `counts`, signed with `by`.
  auto send_raw = [&](std::string counts, std::vector<std::string> parts, const Signer& by) {
    std::vector<std::span<const std::byte>> signed_parts{bytes(counts)};
    for (const auto& p : parts)
      signed_parts.push_back(bytes(p));
    const auto sig = by.sign(signed_parts);
    dealer_.send(zmq::message_t(), zmq::send_flags::sndmore);
    dealer_.send(zmq::buffer(kBatchTag), zmq::send_flags::sndmore);
    dealer_.send(zmq::buffer(sig.data(), sig.size()), zmq::send_flags::sndmore);
    dealer_.send(zmq::buffer(counts),
                 parts.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);
    for (std::size_t i = 0; i < parts.size(); ++i)
      dealer_.send(zmq::buffer(parts[i]),
                   i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  };
  auto le = [](std::initializer_list<std::uint32_t> v) {
    std::string out;
    for (auto c : v)
      for (int b = 0; b < 4; ++b)
        out.push_back(static_cast<char>((c >> (8 * b)) & 0xff));
    return out;
  };
  std::vector<Envelope> in;
  send_raw(le({1, 2}), {"a", "b"}, signer_);  // announces 3 parts, holds 2
  EXPECT_THROW(recv_all(router_, signer_, in), ProtocolError);
  send_raw(le({1, 0, 1}), {"a", "b"}, signer_);  // a message of no parts
  EXPECT_THROW(recv_all(router_, signer_, in), ProtocolError);
  send_raw("abc", {"a"}, signer_);  // counts that are not uint32s
  EXPECT_THROW(recv_all(router_, signer_, in), ProtocolError);
  send_raw(le({1, 1}), {"a", "b"}, Signer(Signer::new_key()));  // the wrong key
  EXPECT_THROW(recv_all(router_, signer_, in), ProtocolError);
  EXPECT_TRUE(in.empty());
  // A batch where one message was expected says so.
  send_raw(le({1, 1}), {"a", "b"}, signer_);
  EXPECT_THROW((void)recv(router_, signer_), ProtocolError);
  // And a good one after all that arrives whole.
  send_raw(le({1, 1}), {"a", "b"}, signer_);
  ASSERT_TRUE(recv_all(router_, signer_, in));
  ASSERT_EQ(in.size(), 2u);
  EXPECT_EQ(text(in[1].parts.at(0)), "b");
}

TEST_F(EnvelopeTest, APartSeveralMessagesOfABatchShareCrossesOnce) {
  // One payload for three engines: its large frame is sent once, the small ones each time.
  const Payload big =
      encode(std::vector<double>(100000, 2.5), EncodeOptions{.side_frame_threshold = 1024});
  std::vector<Envelope> out(3);
  for (std::size_t i = 0; i < 3; ++i)
    out[i].parts = {Buffer::copy(("h" + std::to_string(i)).data(), 2), big.root, big.frames.at(0)};
  const Buffer& frame = big.frames.at(0);
  out[1].parts.push_back(Buffer::copy(frame.data(), frame.size()));  // equal, not shared
  ASSERT_TRUE(send_batch(dealer_, signer_, {}, out));
  // On the wire: 800 000 bytes three times over would be 2.4 MB.
  std::vector<zmq::message_t> frames;
  ASSERT_TRUE(zmq::recv_multipart(router_, std::back_inserter(frames)));
  std::size_t wire = 0;
  for (const auto& f : frames)
    wire += f.size();
  EXPECT_LT(wire, 1700000u);
  EXPECT_GT(wire, 1600000u);  // the copy that is not shared crosses on its own
  EXPECT_EQ(frames.at(2).to_string_view(), "IPP/1BR");
  // Sent again, it arrives as three whole messages that share one received frame.
  ASSERT_TRUE(send_batch(dealer_, signer_, {}, out));
  std::vector<Envelope> in;
  ASSERT_TRUE(recv_all(router_, signer_, in));
  ASSERT_EQ(in.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(in[i].parts.size(), out[i].parts.size()) << i;
    EXPECT_EQ(text(in[i].parts[0]), "h" + std::to_string(i));
    EXPECT_EQ(decode(Payload{in[i].parts[1], {in[i].parts[2]}}), decode(big)) << i;
    EXPECT_EQ(in[i].parts[2].data(), in[0].parts[2].data()) << i;
  }
  EXPECT_EQ(text(in[1].parts[3]), text(big.frames.at(0)));
  EXPECT_NE(in[1].parts[3].data(), in[0].parts[2].data());
}

TEST_F(EnvelopeTest, BatchesWithMalformedRepeatsAreRejectedWhole) {
  auto le = [](std::initializer_list<std::uint32_t> v) {
    std::string out;
    for (auto c : v)
      for (int b = 0; b < 4; ++b)
        out.push_back(static_cast<char>((c >> (8 * b)) & 0xff));
    return out;
  };
  auto send_raw = [&](std::string_view tag, std::string counts, std::vector<std::string> parts) {
    std::vector<std::span<const std::byte>> signed_parts{bytes(counts)};
    for (const auto& p : parts)
      signed_parts.push_back(bytes(p));
    const auto sig = signer_.sign(signed_parts);
    dealer_.send(zmq::message_t(), zmq::send_flags::sndmore);
    dealer_.send(zmq::buffer(tag), zmq::send_flags::sndmore);
    dealer_.send(zmq::buffer(sig.data(), sig.size()), zmq::send_flags::sndmore);
    dealer_.send(zmq::buffer(counts), zmq::send_flags::sndmore);
    for (std::size_t i = 0; i < parts.size(); ++i)
      dealer_.send(zmq::buffer(parts[i]),
                   i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  };
  std::vector<Envelope> in;
  send_raw("IPP/1BR", le({2, 2, 1, 1, 2}), {"h0", "", "y"});  // the original after the repeat
  EXPECT_THROW(recv_all(router_, signer_, in), ProtocolError);
  send_raw("IPP/1BR", le({2, 2, 1, 2, 3}), {"h0", "x", ""});  // a part the batch lacks
  EXPECT_THROW(recv_all(router_, signer_, in), ProtocolError);
  send_raw("IPP/1BR", le({2, 2, 1, 1, 0}), {"h0", "x", "y"});  // a repeat that is not empty
  EXPECT_THROW(recv_all(router_, signer_, in), ProtocolError);
  send_raw("IPP/1BR", le({3, 2, 1}), {"h0", "x", "y"});  // more messages than counts
  EXPECT_THROW(recv_all(router_, signer_, in), ProtocolError);
  send_raw("IPP/1BR", le({2, 2, 1, 2}), {"h0", "x", ""});  // half a pair
  EXPECT_THROW(recv_all(router_, signer_, in), ProtocolError);
  EXPECT_TRUE(in.empty());
  send_raw("IPP/1BR", le({2, 2, 1, 2, 1}), {"h0", "x", ""});
  ASSERT_TRUE(recv_all(router_, signer_, in));
  ASSERT_EQ(in.size(), 2u);
  EXPECT_EQ(text(in[1].parts.at(0)), "x");
}

TEST_F(EnvelopeTest, TimesOutWithNothing) {
  router_.set(zmq::sockopt::rcvtimeo, 10);
  EXPECT_FALSE(recv(router_, signer_));
}

// net::poll waits on the sockets' own descriptors. The descriptor only says that commands
// came: a message that arrives while the socket sends (which takes the commands in) leaves
// it quiet, and poll must still see the message.
class PollTest : public ::testing::Test {
 protected:
  void SetUp() override {
    a_.bind("tcp://127.0.0.1:*");
    b_.connect(a_.get(zmq::sockopt::last_endpoint));
    b_.send(zmq::str_buffer("hello"), zmq::send_flags::none);  // a learns b's route
    zmq::message_t id, body;
    ASSERT_TRUE(a_.recv(id));
    ASSERT_TRUE(a_.recv(body));
    route_.assign(static_cast<const char*>(id.data()), id.size());
  }
  void send_to_b(std::string_view text) {
    a_.send(zmq::buffer(route_), zmq::send_flags::sndmore);
    a_.send(zmq::buffer(text), zmq::send_flags::none);
  }
  zmq::context_t ctx_;
  zmq::socket_t a_{ctx_, zmq::socket_type::router};
  zmq::socket_t b_{ctx_, zmq::socket_type::dealer};
  std::string route_;
};

TEST_F(PollTest, NothingToReadTimesOutWithNothing) {
  zmq::pollitem_t items[] = {{a_.handle(), 0, ZMQ_POLLIN, 0}, {b_.handle(), 0, ZMQ_POLLIN, 0}};
  EXPECT_EQ(poll(items, 2, std::chrono::milliseconds(0)), 0);
  EXPECT_EQ(poll(items, 2, std::chrono::milliseconds(20)), 0);
  EXPECT_EQ(items[0].revents, 0);
  EXPECT_EQ(items[1].revents, 0);
}

TEST_F(PollTest, AMessageThatCameLaterWakesItAndOnlyItsSocketIsReady) {
  zmq::pollitem_t items[] = {{a_.handle(), 0, ZMQ_POLLIN, 0}, {b_.handle(), 0, ZMQ_POLLIN, 0}};
  // A socket of its own for the other thread: a ZeroMQ socket is used by one thread at a time.
  zmq::socket_t c(ctx_, zmq::socket_type::dealer);
  c.connect(a_.get(zmq::sockopt::last_endpoint));
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    c.send(zmq::str_buffer("ping"), zmq::send_flags::none);
  });
  int n = 0;
  for (int i = 0; i < 100 && n == 0; ++i)  // each wait is up to 5 s: never a busy loop
    n = poll(items, 2, std::chrono::milliseconds(5000));
  later.join();
  EXPECT_EQ(n, 1);
  EXPECT_EQ(items[0].revents, ZMQ_POLLIN);
  EXPECT_EQ(items[1].revents, 0);
}

TEST_F(PollTest, AMessageTakenInBySendingIsStillSeen) {
  zmq::pollitem_t item{b_.handle(), 0, ZMQ_POLLIN, 0};
  for (int round = 0; round < 50; ++round) {
    send_to_b("reply");
    // b's sends take in the commands that announce the reply, once it is there.
    for (int i = 0; i < 20; ++i) {
      b_.send(zmq::str_buffer("more"), zmq::send_flags::none);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    ASSERT_EQ(poll(&item, 1, std::chrono::milliseconds(5000)), 1) << "round " << round;
    zmq::message_t m;
    ASSERT_TRUE(b_.recv(m, zmq::recv_flags::dontwait));
    EXPECT_EQ(m.to_string(), "reply");
    EXPECT_FALSE(b_.recv(m, zmq::recv_flags::dontwait));
    for (int i = 0; i < 20; ++i) {  // a's side: drain what b sent
      zmq::message_t id, body;
      ASSERT_TRUE(a_.recv(id));
      ASSERT_TRUE(a_.recv(body));
    }
  }
}

TEST_F(PollTest, OtherItemsGoThroughZmqPoll) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  zmq::pollitem_t items[] = {{a_.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, fds[0], ZMQ_POLLIN, 0}};
  EXPECT_EQ(poll(items, 2, std::chrono::milliseconds(1000)), 1);
  EXPECT_EQ(items[0].revents, 0);
  EXPECT_EQ(items[1].revents & ZMQ_POLLIN, ZMQ_POLLIN);
  ::close(fds[0]);
  ::close(fds[1]);
}

// A header its receiver would refuse is refused where it is made, naming its size; one at
// the limit's side of it still goes.
TEST(HeaderLimit, AHeaderOverTheLimitFailsWhenEncoded) {
  Header h;
  h.type = MsgType::QueryReply;
  h.task = std::string(kMaxHeaderBytes, 'x');
  try {
    (void)encode_header(h);
    FAIL() << "encoded";
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("16 MiB"), std::string::npos) << e.what();
  }
  h.task = std::string(kMaxHeaderBytes - 4096, 'x');
  EXPECT_EQ(decode_header(encode_header(h)).task.size(), kMaxHeaderBytes - 4096);
}

TEST(MessageId, HexDigitsThatSortByTimeAndParseAsTaskIds) {
  std::set<std::string> seen;
  std::string previous;
  for (int i = 0; i < 20000; ++i) {
    const std::string id = new_id();
    ASSERT_EQ(id.size(), 32u);
    for (char c : id)
      ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << id;
    ASSERT_TRUE(seen.insert(id).second) << "repeated: " << id;
    const auto parsed = TaskId::parse(id);
    ASSERT_TRUE(parsed.has_value()) << id;
    EXPECT_EQ(parsed->str(), id);
    // The first 12 digits are milliseconds: never earlier than the id before.
    if (!previous.empty()) {
      ASSERT_GE(id.substr(0, 12), previous.substr(0, 12));
    }
    previous = id;
  }
  const auto ms = std::stoull(previous.substr(0, 12), nullptr, 16);
  const auto now = static_cast<unsigned long long>(now_us() / 1000);
  EXPECT_LE(ms, now);
  EXPECT_GT(ms + 60'000, now);
}

TEST(MessageId, OnlyThirtyTwoLowercaseHexDigitsParse) {
  const std::string id = "0123456789abcdef00112233445566ff";
  const auto parsed = TaskId::parse(id);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->hi, 0x0123456789abcdefULL);
  EXPECT_EQ(parsed->lo, 0x00112233445566ffULL);
  EXPECT_FALSE(TaskId::parse(id.substr(1)).has_value());
  EXPECT_FALSE(TaskId::parse(id + "0").has_value());
  EXPECT_FALSE(TaskId::parse("").has_value());
  // Every byte that is not a lowercase hex digit, at every place, is refused.
  for (std::size_t at = 0; at < id.size(); ++at) {
    for (int c = 0; c < 256; ++c) {
      std::string bad = id;
      bad[at] = static_cast<char>(c);
      const bool digit = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      ASSERT_EQ(TaskId::parse(bad).has_value(), digit) << "byte " << c << " at " << at;
    }
  }
}

TEST(MessageId, ThreadsAndForkedChildrenDrawDifferentIds) {
  const std::string before = new_id();  // the parent draws its random bytes before the fork
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    std::string ids;
    for (int i = 0; i < 100; ++i)
      ids += new_id();
    const auto n = write(fds[1], ids.data(), ids.size());
    _exit(n == static_cast<ssize_t>(ids.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::vector<std::string> mine;
  for (int i = 0; i < 100; ++i)
    mine.push_back(new_id());
  std::vector<std::string> other(4);
  std::vector<std::thread> threads;
  for (auto& o : other)
    threads.emplace_back([&o] {
      for (int i = 0; i < 100; ++i)
        o += new_id();
    });
  for (auto& t : threads)
    t.join();
  std::string child_ids(3200, '\0');
  std::size_t got = 0;
  while (got < child_ids.size()) {
    const auto n = read(fds[0], child_ids.data() + got, child_ids.size() - got);
    ASSERT_GT(n, 0);
    got += static_cast<std::size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::set<std::string> all(mine.begin(), mine.end());
  all.insert(before);
  for (const std::string& batch : {child_ids, other[0], other[1], other[2], other[3]}) {
    for (std::size_t i = 0; i < batch.size(); i += 32)
      all.insert(batch.substr(i, 32));
  }
  EXPECT_EQ(all.size(), 100u * 6 + 1);
}

TEST(ConnectionFile, RoundTripsWithOwnerOnlyPermissions) {
  test::TempDir dir;
  ConnectionInfo info;
  info.endpoints = {{"registration", "tcp://127.0.0.1:5555"}};
  info.key = Signer::new_key();
  info.controller_pid = 1234;
  const auto path = dir / "sub" / kClientFile;
  write_connection_file(path, info);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const ConnectionInfo back = read_connection_file(path);
  EXPECT_EQ(back.endpoints, info.endpoints);
  EXPECT_EQ(back.key, info.key);
  EXPECT_EQ(back.controller_pid, 1234);
  EXPECT_EQ(back.endpoint("registration"), "tcp://127.0.0.1:5555");
  EXPECT_THROW((void)back.endpoint("nope"), ConnectionError);
  EXPECT_TRUE(back.local_endpoints.empty());
}

/// The real wait status of a child that runs `end`.
template <typename F>
int status_of(F end) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGSEGV, SIG_DFL);  // sanitizers catch it otherwise
    ::signal(SIGABRT, SIG_DFL);
    end();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(EngineExit, OnlyAnEngineOwnCodeEndingItIsACrash) {
  const int segv = status_of([] { ::raise(SIGSEGV); });
  const int abrt = status_of([] { ::raise(SIGABRT); });
  const int kill = status_of([] { ::raise(SIGKILL); });
  const int term = status_of([] { ::raise(SIGTERM); });
  const int code = status_of([] { ::_exit(3); });
  const int lost = status_of([] { ::_exit(kEngineLostController); });
  const int late = status_of([] { ::_exit(kEngineTaskPastTimeLimit); });
  const int task_exit = status_of([] { ::_exit(kEngineTaskCalledExit); });
  const int hung = status_of([] { ::_exit(kEnginePluginLoadHung); });
  EXPECT_EQ(engine_exit_reason(segv), "was killed by signal 11 (SIGSEGV)");
  EXPECT_TRUE(engine_exit_is_crash(segv));
  EXPECT_TRUE(engine_exit_is_crash(abrt));
  EXPECT_TRUE(engine_exit_is_crash(code));
  EXPECT_TRUE(engine_exit_is_crash(task_exit));
  EXPECT_EQ(engine_exit_reason(hung), "exited: loading a plugin did not finish in time");
  EXPECT_TRUE(engine_exit_is_crash(hung)) << "a plugin whose initializer hangs";
  EXPECT_FALSE(engine_exit_is_crash(kill)) << "a user or the OOM killer";
  EXPECT_FALSE(engine_exit_is_crash(term));
  EXPECT_FALSE(engine_exit_is_crash(lost));
  EXPECT_FALSE(engine_exit_is_crash(late));
  EXPECT_FALSE(engine_exit_is_crash(status_of([] {})));
}

TEST(ReplayWindow, EachStreamOnlyMovesForwardAndSilentStreamsAreForgotten) {
  using Clock = ReplayWindow::Clock;
  ReplayWindow w;
  const auto t0 = Clock::now();
  std::uint64_t last = 0;
  EXPECT_TRUE(w.accept(7, 5, t0, last));  // a stream not heard of: taken
  EXPECT_FALSE(w.accept(7, 5, t0, last));
  EXPECT_EQ(last, 5u);
  EXPECT_FALSE(w.accept(7, 3, t0, last));
  EXPECT_TRUE(w.accept(7, 9, t0, last));  // gaps are fine: lost messages, other receivers
  EXPECT_TRUE(w.accept(8, 1, t0, last));  // streams are apart
  EXPECT_EQ(w.streams(), 2u);
  // Silent for longer than kForgetAfter: forgotten, and taken as new.
  const auto later = t0 + ReplayWindow::kForgetAfter + std::chrono::seconds(1);
  EXPECT_TRUE(w.accept(9, 1, later, last));
  EXPECT_EQ(w.streams(), 1u);
  EXPECT_TRUE(w.accept(7, 2, later, last));
}

TEST(ReplayWindow, HoldsAtMostItsBoundOfStreams) {
  ReplayWindow w;
  const auto t0 = ReplayWindow::Clock::now();
  std::uint64_t last = 0;
  for (std::uint64_t s = 1; s <= ReplayWindow::kMaxStreams + 100; ++s)
    ASSERT_TRUE(w.accept(s, 1, t0, last));
  EXPECT_LE(w.streams(), ReplayWindow::kMaxStreams);
}

TEST(Address, LoopbackIsAnyOf127Slash8AndColonColon1) {
  for (const char* ip : {"127.0.0.1", "127.3.2.1", "::1", "[::1]", "::ffff:127.0.0.1"})
    EXPECT_TRUE(is_loopback(ip)) << ip;
  for (const char* ip : {"10.77.0.1", "0.0.0.0", "::", "fe80::1", "128.0.0.1", "localhost", ""})
    EXPECT_FALSE(is_loopback(ip)) << ip;
}

TEST(Address, EndpointsForIPv4IPv6AndHostNames) {
  EXPECT_EQ(tcp_endpoint("10.0.0.2", "5555"), "tcp://10.0.0.2:5555");
  EXPECT_EQ(tcp_endpoint("::1", "*"), "tcp://[::1]:*");
  EXPECT_EQ(tcp_endpoint("[fe80::1]", "7"), "tcp://[fe80::1]:7");
  EXPECT_EQ(tcp_endpoint("head.example", "80"), "tcp://head.example:80");
  EXPECT_EQ(port_of("tcp://[::1]:4242"), 4242);
  EXPECT_EQ(port_of("tcp://127.0.0.1:*"), -1);
  for (const char* any : {"*", "0.0.0.0", "::"})
    EXPECT_TRUE(is_wildcard(any)) << any;
  EXPECT_FALSE(is_wildcard("127.0.0.1"));
  EXPECT_EQ(bind_host("*"), "0.0.0.0");
  EXPECT_EQ(bind_host("10.1.2.3"), "10.1.2.3");
  EXPECT_EQ(bind_host("::1"), "::1");
  EXPECT_EQ(bind_host("localhost"), "127.0.0.1") << "IPv4 first, as peers resolve it";
  EXPECT_THROW((void)bind_host("no-such-host.invalid"), UsageError);
  EXPECT_THROW((void)bind_host(""), UsageError);
  EXPECT_EQ(parse_port_range("47000-47010"), (std::pair<int, int>{47000, 47010}));
  for (const char* bad : {"9-3", "0-10", "1-70000", "47000", "a-b", "1-2x"})
    EXPECT_THROW((void)parse_port_range(bad), UsageError) << bad;
  EXPECT_EQ(default_location("10.1.2.3"), "10.1.2.3");
  const std::string here = default_location("0.0.0.0");
  EXPECT_FALSE(is_wildcard(here)) << here;
  EXPECT_FALSE(here.empty());
}

TEST(ConnectionFile, LocalPeersTakeTheUnixSocketWhereThereIsOne) {
  test::TempDir dir;
  ConnectionInfo info;
  info.endpoints = {{"registration", "tcp://127.0.0.1:5555"}, {"direct", "tcp://127.0.0.1:5556"}};
  info.local_endpoints = {{"direct", "ipc:///dev/shm/ipp-x/direct.sock"}};
  info.key = Signer::new_key();
  write_connection_file(dir / kClientFile, info);
  const ConnectionInfo back = read_connection_file(dir / kClientFile);
  EXPECT_EQ(back.local_endpoints, info.local_endpoints);
  EXPECT_EQ(back.endpoint("direct", true), "ipc:///dev/shm/ipp-x/direct.sock");
  EXPECT_EQ(back.endpoint("direct", false), "tcp://127.0.0.1:5556");
  EXPECT_EQ(back.endpoint("registration", true), "tcp://127.0.0.1:5555");  // none: TCP
  EXPECT_THROW((void)back.endpoint("nope", true), ConnectionError);
}

TEST(ConnectionFile, MissingOrMalformedFilesSayWhy) {
  test::TempDir dir;
  try {
    (void)read_connection_file(dir / "none.json");
    FAIL();
  } catch (const ConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find("is a controller running"), std::string::npos);
  }
  std::ofstream(dir / "bad.json") << "{\"endpoints\": 3";
  EXPECT_THROW((void)read_connection_file(dir / "bad.json"), ConnectionError);
  std::ofstream(dir / "nokey.json") << "{\"endpoints\": {}}";
  EXPECT_THROW((void)read_connection_file(dir / "nokey.json"), ConnectionError);
}

TEST(ConnectionFile, ProfileDirectoryPrecedence) {
  EXPECT_EQ(profile_dir(std::filesystem::path("/x")), "/x");
  ::setenv("IPP_PROFILE_DIR", "/from-env", 1);
  EXPECT_EQ(profile_dir(), "/from-env");
  ::unsetenv("IPP_PROFILE_DIR");
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(profile_dir(), "/home/someone/.ipp/profile_default");
}

}  // namespace
}  // namespace ipp::net
