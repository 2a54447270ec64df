#include "ipp/codec.hpp"

#include <cstring>
#include <limits>
#include <string>

#include <gtest/gtest.h>

namespace ipp {
namespace {

Value round_trip(const Value& v, EncodeOptions options = {}) {
  return decode(encode(v, options));
}

TEST(Codec, RoundTripsEveryScalar) {
  for (const Value& v :
       {Value(), Value(true), Value(false), Value(0), Value(INT64_MIN), Value(INT64_MAX),
        Value(-0.0), Value(3.25), Value(std::numeric_limits<double>::infinity()),
        Value(std::numeric_limits<double>::denorm_min()), Value(""), Value("plain"),
        Value("ünïcødé ✓ 数据"), Value(Range{-5, 100, 7})}) {
    EXPECT_EQ(round_trip(v), v) << v.repr();
  }
}

TEST(Codec, RoundTripsNaN) {
  Value out = round_trip(Value(std::nan("")));
  EXPECT_TRUE(std::isnan(out.as_float()));
}

TEST(Codec, RoundTripsStringsWithZeroBytes) {
  const std::string s("a\0b\0", 4);
  EXPECT_EQ(round_trip(Value(s)).as_string(), s);
}

TEST(Codec, RoundTripsEveryDtype) {
  EXPECT_EQ(round_trip(std::vector<std::int8_t>{-128, 0, 127}),
            Value(std::vector<std::int8_t>{-128, 0, 127}));
  EXPECT_EQ(round_trip(std::vector<std::int16_t>{-1, 2}), Value(std::vector<std::int16_t>{-1, 2}));
  EXPECT_EQ(round_trip(std::vector<std::int32_t>{-1, 2}), Value(std::vector<std::int32_t>{-1, 2}));
  EXPECT_EQ(round_trip(std::vector<std::int64_t>{INT64_MIN}),
            Value(std::vector<std::int64_t>{INT64_MIN}));
  EXPECT_EQ(round_trip(std::vector<std::uint8_t>{255}), Value(std::vector<std::uint8_t>{255}));
  EXPECT_EQ(round_trip(std::vector<std::uint16_t>{65535}),
            Value(std::vector<std::uint16_t>{65535}));
  EXPECT_EQ(round_trip(std::vector<std::uint32_t>{1u << 31}),
            Value(std::vector<std::uint32_t>{1u << 31}));
  EXPECT_EQ(round_trip(std::vector<std::uint64_t>{UINT64_MAX}),
            Value(std::vector<std::uint64_t>{UINT64_MAX}));
  EXPECT_EQ(round_trip(std::vector<float>{1.5f}), Value(std::vector<float>{1.5f}));
  EXPECT_EQ(round_trip(std::vector<double>{-2.5}), Value(std::vector<double>{-2.5}));
}

TEST(Codec, RoundTripsEmptyContainers) {
  EXPECT_EQ(round_trip(Value(Value::List{})), Value(Value::List{}));
  EXPECT_EQ(round_trip(Value(Value::Map{})), Value(Value::Map{}));
  EXPECT_EQ(round_trip(std::vector<double>{}), Value(std::vector<double>{}));
  EXPECT_EQ(round_trip(Value(Bytes{})), Value(Bytes{}));
}

TEST(Codec, RoundTripsMultiDimensionalArrays) {
  Array a(DType::float32, {2, 3, 1}, Buffer::adopt(std::vector<float>{1, 2, 3, 4, 5, 6}));
  Value out = round_trip(a);
  EXPECT_EQ(out.as_array().shape(), (std::vector<std::uint64_t>{2, 3, 1}));
  EXPECT_EQ(out, Value(a));
}

TEST(Codec, RoundTripsNestedStructures) {
  Value v = Value::map({{"name", "x"},
                        {"list", Value::list({1, 2.5, Value::list({Value(), "deep"})})},
                        {"array", std::vector<std::int64_t>{1, 2, 3}},
                        {"bytes", Bytes{Buffer::copy("\x00\xff", 2)}},
                        {"map", Value::map({{"k", false}})}});
  EXPECT_EQ(round_trip(v), v);
}

TEST(Codec, RoundTripsDeepNesting) {
  Value v = 1;
  for (int i = 0; i < 30; ++i)
    v = Value::list({v});
  EXPECT_EQ(round_trip(v), v);
}

TEST(Codec, RoundTripsManySmallValues) {
  Value::List items;
  for (int i = 0; i < 200000; ++i)
    items.emplace_back(i);
  Value v(std::move(items));
  EXPECT_EQ(round_trip(v), v);
}

TEST(Codec, LargeArraysTravelAsSideFramesWithoutCopies) {
  std::vector<double> xs(100000);
  for (std::size_t i = 0; i < xs.size(); ++i)
    xs[i] = static_cast<double>(i) * 0.5;
  Value v = std::move(xs);
  const double* source = v.as_array().view<double>().data();
  Payload p = encode(v, EncodeOptions{.side_frame_threshold = 1024});
  ASSERT_EQ(p.frames.size(), 1u);
  EXPECT_EQ(reinterpret_cast<const double*>(p.frames[0].data()), source);  // no copy on encode
  EXPECT_LT(p.root.size(), 200u);
  Value out = decode(p);
  EXPECT_EQ(out.as_array().view<double>().data(), source);  // nor on decode
  EXPECT_EQ(out, v);
}

TEST(Codec, InlineArraysAreReadInPlace) {
  Payload p = encode(std::vector<std::int64_t>{1, 2, 3});
  ASSERT_TRUE(p.frames.empty());
  Value out = decode(p);
  const auto* data = reinterpret_cast<const std::byte*>(out.as_array().view<std::int64_t>().data());
  EXPECT_GE(data, p.root.data());
  EXPECT_LT(data, p.root.data() + p.root.size());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(data) % 8, 0u);
}

TEST(Codec, MisalignedReceivedBuffersAreRealignedOnce) {
  Payload p = encode(Value::list({std::vector<double>{1, 2, 3}, "s"}));
  // Place the bytes at an odd address, as a ZeroMQ frame may be.
  std::vector<std::byte> storage(p.root.size() + 1);
  std::memcpy(storage.data() + 1, p.root.data(), p.root.size());
  Payload odd;
  odd.root = Buffer(nullptr, storage.data() + 1, p.root.size());
  EXPECT_THROW((void)verify(odd.root.bytes()), ProtocolError);  // verify demands alignment
  EXPECT_EQ(decode(odd), decode(p));                            // decode realigns
}

TEST(Codec, BytesTravelAsSideFramesWhenLarge) {
  std::vector<std::uint8_t> raw(5000, 7);
  Value v(Bytes{Buffer::adopt(std::move(raw))});
  Payload p = encode(v, EncodeOptions{.side_frame_threshold = 4096});
  EXPECT_EQ(p.frames.size(), 1u);
  EXPECT_EQ(decode(p), v);
}

// An array over 2 GiB cannot live inside a FlatBuffers buffer; it must travel as a side
// frame even when the threshold says otherwise. Uses 2.2 GB of memory.
TEST(CodecLarge, ArrayOverTwoGiBRoundTrips) {
  const std::size_t n = (std::size_t{1} << 31) / sizeof(double) + 1000;
  std::vector<double> xs(n);
  xs.front() = 1.0;
  xs.back() = 2.0;
  Value v = std::move(xs);
  Payload p =
      encode(v, EncodeOptions{.side_frame_threshold = std::numeric_limits<std::size_t>::max()});
  ASSERT_EQ(p.frames.size(), 1u);
  Value out = decode(p);
  auto view = out.as_array().view<double>();
  ASSERT_EQ(view.size(), n);
  EXPECT_EQ(view.front(), 1.0);
  EXPECT_EQ(view.back(), 2.0);
}

}  // namespace
}  // namespace ipp
