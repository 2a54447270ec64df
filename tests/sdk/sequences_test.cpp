// The client's sequence algebra, alone: slices that copy nothing, the blocks a map or a
// scatter splits into, and how gathered blocks join.
#include "sequences.hpp"

#include <gtest/gtest.h>

#include "ipp/error.hpp"

namespace ipp::detail {
namespace {

TEST(Sequences, SlicesOfRangesStayRangesAndArraySlicesShareTheirBuffer) {
  const Value r(Range{10, 30, 2});  // 10, 12, ..., 28
  EXPECT_EQ(slice(r, 2, 5).repr(), "range(14, 20, 2)");
  EXPECT_EQ(slice(r, 0, 0).size(), 0u);
  const Value a(std::vector<std::int64_t>{1, 2, 3, 4, 5});
  const Value s = slice(a, 1, 4);
  EXPECT_EQ(s.repr(), "[2, 3, 4]");
  EXPECT_EQ(s.as_array().buffer().data(), a.as_array().buffer().data() + 8) << "no copy";
  EXPECT_EQ(slice(Value::list({1, "x", 2.5}), 1, 3).repr(), "['x', 2.5]");
  EXPECT_THROW((void)slice(Value(5), 0, 1), ArgumentError);
}

TEST(Sequences, BlocksCoverEveryElementOnceTheFirstOnesLonger) {
  for (std::uint64_t n : {0u, 1u, 7u, 10u, 1000u}) {
    for (std::uint64_t parts : {1u, 3u, 4u, 16u}) {
      std::uint64_t next = 0;
      for (std::uint64_t i = 0; i < parts; ++i) {
        const auto [begin, end] = block(n, parts, i);
        EXPECT_EQ(begin, next) << n << " over " << parts;
        EXPECT_LE(end - begin, n / parts + 1);
        EXPECT_GE(end - begin, n / parts);
        next = end;
      }
      EXPECT_EQ(next, n) << n << " over " << parts;
    }
  }
  EXPECT_EQ(block(10, 4, 0), std::make_pair(std::uint64_t{0}, std::uint64_t{3}));
  EXPECT_EQ(block(10, 4, 3), std::make_pair(std::uint64_t{8}, std::uint64_t{10}));
}

TEST(Sequences, TheCommonLengthIgnoresReferencesAndNamesAMismatch) {
  EXPECT_EQ(common_length({Value(Range{0, 5}), Value::list({1, 2, 3, 4, 5})}), 5u);
  EXPECT_EQ(common_length({Value(ref("x")), Value(Range{0, 3})}), 3u);
  EXPECT_FALSE(common_length({Value(ref("x"))}).has_value());
  try {
    (void)common_length({Value(Range{0, 5}), Value(Range{0, 4})});
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_STREQ(e.what(), "map: sequences differ in length (5 and 4)");
  }
  EXPECT_THROW((void)common_length({}), ArgumentError);
}

TEST(Sequences, SingleValuesAreRepeatedForEveryElementAsNumpyBroadcasts) {
  EXPECT_EQ(common_length({Value(Range{0, 5}), Value(3)}), 5u);
  EXPECT_EQ(common_length({Value(2.5), Value::list({1, 2})}), 2u);
  try {
    (void)common_length({Value(3), Value("x")});
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("no argument is a sequence"), std::string::npos);
  }
  EXPECT_EQ(block_of(Value(3), 2, 5).type_name(), "array[int64]");
  EXPECT_EQ(block_of(Value(3), 2, 5).repr(), "[3, 3, 3]");
  EXPECT_EQ(block_of(Value(0.5), 0, 2).type_name(), "array[float64]");
  EXPECT_EQ(block_of(Value(0.5), 0, 2).repr(), "[0.5, 0.5]");
  EXPECT_EQ(block_of(Value("x"), 0, 2).repr(), "['x', 'x']");
  EXPECT_EQ(block_of(Value(Range{0, 10}), 2, 4).repr(), "range(2, 4)");
  EXPECT_EQ(block_of(Value(ref("x")), 2, 4).kind(), Value::Kind::ref);
}

TEST(Sequences, BlocksJoinIntoOneRangeOneArrayOrOneList) {
  EXPECT_EQ(concatenate({Value(Range{0, 3}), Value(Range{3, 7}), Value(Range{7, 7})}).repr(),
            "range(0, 7)");
  EXPECT_EQ(concatenate({Value(Range{0, 3}), Value(Range{5, 7})}).repr(), "[0, 1, 2, 5, 6]")
      << "ranges with a gap are a list";
  const Value joined =
      concatenate({Value(std::vector<double>{1, 2}), Value(std::vector<double>{3})});
  ASSERT_EQ(joined.kind(), Value::Kind::array);
  EXPECT_EQ(joined.repr(), "[1.0, 2.0, 3.0]");
  EXPECT_EQ(
      concatenate({Value::list({1, 2}), Value(7), Value(std::vector<std::int32_t>{3})}).repr(),
      "[1, 2, 7, 3]");
  EXPECT_EQ(concatenate({}).repr(), "[]");
}

}  // namespace
}  // namespace ipp::detail
