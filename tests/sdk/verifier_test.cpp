// Buffers from outside are verified before anything reads them. These tests feed corrupt,
// truncated and hostile buffers and require a ProtocolError or a clean decode, never a crash
// (the sanitizer build turns any bad read into a failure).

#include <random>

#include <gtest/gtest.h>

#include "ipp/codec.hpp"

namespace ipp {
namespace {

Payload sample() {
  return encode(Value::map({{"a", Value::list({1, 2.5, "text", true})},
                            {"arr", std::vector<std::int32_t>{1, 2, 3, 4}},
                            {"r", Range{0, 10, 2}},
                            {"nested", Value::list({Value::list({Value()})})}}));
}

Payload with_root(std::vector<std::byte> bytes) {
  Payload p;
  p.root = Buffer::copy(bytes.data(), bytes.size());
  return p;
}

/// Decodes and fully walks the result; returns whether it was accepted.
bool accepted(const Payload& p) {
  try {
    (void)decode(p).repr();
    return true;
  } catch (const ProtocolError&) {
    return false;
  } catch (const ArgumentError&) {
    return false;  // e.g. a range with step 0 when walked
  }
}

TEST(Verifier, AcceptsAValidBuffer) {
  EXPECT_TRUE(accepted(sample()));
}

TEST(Verifier, RejectsEveryTruncation) {
  const Payload good = sample();
  const auto bytes = good.root.bytes();
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    Payload p = with_root({bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len)});
    EXPECT_FALSE(accepted(p)) << "accepted a buffer truncated to " << len << " bytes";
  }
}

TEST(Verifier, SurvivesEveryByteFlip) {
  const Payload good = sample();
  const auto bytes = good.root.bytes();
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (int mask : {0x01, 0x80, 0xff}) {
      std::vector<std::byte> copy(bytes.begin(), bytes.end());
      copy[i] ^= std::byte(mask);
      (void)accepted(with_root(std::move(copy)));  // must not crash; either answer is fine
    }
  }
}

TEST(Verifier, RejectsRandomBytes) {
  std::mt19937 rng(12345);
  int rejected = 0;
  for (int round = 0; round < 2000; ++round) {
    std::vector<std::byte> junk(8 + rng() % 512);
    for (auto& b : junk)
      b = std::byte(rng() & 0xff);
    if (!accepted(with_root(std::move(junk)))) ++rejected;
  }
  EXPECT_GT(rejected, 1900);
}

TEST(Verifier, RejectsAFrameIndexPastTheEnd) {
  Payload p = encode(std::vector<double>(100, 1.0), EncodeOptions{.side_frame_threshold = 16});
  ASSERT_EQ(p.frames.size(), 1u);
  p.frames.clear();
  try {
    (void)decode(p);
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("frame 1"), std::string::npos) << e.what();
  }
}

TEST(Verifier, RejectsAFrameOfTheWrongSize) {
  Payload p = encode(std::vector<double>(100, 1.0), EncodeOptions{.side_frame_threshold = 16});
  p.frames[0] = p.frames[0].slice(0, 799);
  EXPECT_THROW((void)decode(p), ProtocolError);
}

TEST(Verifier, RejectsAnArrayWhoseBytesDoNotMatchItsShape) {
  // Hand-build an Array that claims 10 float64 elements but carries 8 bytes.
  flatbuffers::FlatBufferBuilder b;
  const std::uint64_t shape[] = {10};
  const std::uint8_t data[8] = {};
  auto d = b.CreateVector(data, 8);
  auto s = b.CreateVector(shape, 1);
  auto arr = fb::CreateArray(b, fb::DType::Float64, s, d, 0);
  b.Finish(fb::CreateValue(b, fb::Data::Array, arr.Union()));
  Payload p;
  p.root = Buffer::copy(b.GetBufferPointer(), b.GetSize());
  EXPECT_THROW((void)decode(p), ProtocolError);
}

TEST(Verifier, RejectsAnUnknownDtype) {
  flatbuffers::FlatBufferBuilder b;
  const std::uint64_t shape[] = {1};
  const std::uint8_t data[8] = {};
  auto d = b.CreateVector(data, 8);
  auto s = b.CreateVector(shape, 1);
  auto arr = fb::CreateArray(b, static_cast<fb::DType>(200), s, d, 0);
  b.Finish(fb::CreateValue(b, fb::Data::Array, arr.Union()));
  Payload p;
  p.root = Buffer::copy(b.GetBufferPointer(), b.GetSize());
  EXPECT_THROW((void)decode(p), ProtocolError);
}

TEST(Verifier, RejectsAnUnknownKind) {
  flatbuffers::FlatBufferBuilder b;
  auto n = fb::CreateNull(b);
  b.Finish(fb::CreateValue(b, static_cast<fb::Data>(77), n.Union()));
  Payload p;
  p.root = Buffer::copy(b.GetBufferPointer(), b.GetSize());
  EXPECT_THROW((void)decode(p), ProtocolError);
}

TEST(Verifier, RejectsHostileNesting) {
  Value v = 1;
  for (int i = 0; i < 200; ++i)
    v = Value::list({v});
  Payload p = encode(v);
  try {
    (void)decode(p);
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_NE(std::string(e.what()).find("nested"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ipp
