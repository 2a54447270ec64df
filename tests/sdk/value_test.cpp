#include "ipp/value.hpp"

#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

#include <gtest/gtest.h>

namespace ipp {
namespace {

TEST(Value, DefaultIsNull) {
  Value v;
  EXPECT_TRUE(v.is_null());
  EXPECT_EQ(v.repr(), "None");
}

TEST(Value, ScalarsKeepTheirKind) {
  EXPECT_EQ(Value(true).kind(), Value::Kind::boolean);
  EXPECT_EQ(Value(std::int8_t{3}).kind(), Value::Kind::integer);
  EXPECT_EQ(Value(3u).as_int(), 3);
  EXPECT_EQ(Value(2.5).kind(), Value::Kind::floating);
  EXPECT_EQ(Value(2.5f).as_float(), 2.5);
  EXPECT_EQ(Value("x").kind(), Value::Kind::string);
}

TEST(Value, RefusesUnsignedThatDoesNotFitInt64) {
  EXPECT_THROW(Value(std::numeric_limits<std::uint64_t>::max()), ArgumentError);
  EXPECT_EQ(Value(std::uint64_t{INT64_MAX}).as_int(), INT64_MAX);
}

TEST(Value, NumericVectorsBecomeTypedArrays) {
  Value v = std::vector<std::int32_t>{1, 2, 3};
  ASSERT_EQ(v.kind(), Value::Kind::array);
  EXPECT_EQ(v.as_array().dtype(), DType::int32);
  EXPECT_EQ(v.type_name(), "array[int32]");
  auto view = v.as_array().view<std::int32_t>();
  EXPECT_EQ(std::vector<std::int32_t>(view.begin(), view.end()),
            (std::vector<std::int32_t>{1, 2, 3}));
}

TEST(Value, AdoptingAVectorDoesNotCopyIt) {
  std::vector<double> xs(1000, 1.5);
  const double* where = xs.data();
  Array a = Array::from(std::move(xs));
  EXPECT_EQ(a.view<double>().data(), where);
}

TEST(Value, ViewOfTheWrongDtypeThrows) {
  Array a = Array::from(std::vector<std::int64_t>{1});
  EXPECT_THROW((void)a.view<double>(), ArgumentError);
}

TEST(Value, ArrayRejectsStorageOfTheWrongSize) {
  EXPECT_THROW(Array(DType::float64, {3}, Buffer::copy("12345678", 8)), ArgumentError);
}

TEST(Value, SliceSharesStorage) {
  Array a = Array::from(std::vector<std::int64_t>{0, 1, 2, 3, 4});
  Array s = a.slice(1, 4);
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.view<std::int64_t>()[0], 1);
  EXPECT_EQ(s.view<std::int64_t>().data(), a.view<std::int64_t>().data() + 1);
  EXPECT_THROW((void)a.slice(2, 6), std::out_of_range);
}

TEST(Value, IntegersWidenAndNarrowWhenTheValueFits) {
  EXPECT_EQ(Value(100).as<std::int8_t>(), 100);
  EXPECT_EQ(Value(100).as<double>(), 100.0);
  EXPECT_EQ(Value(100).as<std::uint16_t>(), 100);
}

TEST(Value, OverflowIsAnErrorThatSaysWhy) {
  try {
    (void)Value(300).as<std::int8_t>();
    FAIL() << "no exception";
  } catch (const ArgumentError& e) {
    EXPECT_STREQ(e.what(), "300 does not fit in int8");
  }
  EXPECT_THROW((void)Value(-1).as<std::uint64_t>(), ArgumentError);
}

TEST(Value, FloatToIntIsNarrowing) {
  try {
    (void)Value(2.0).as<std::int64_t>();
    FAIL() << "no exception";
  } catch (const ArgumentError& e) {
    EXPECT_NE(std::string(e.what()).find("narrowing"), std::string::npos) << e.what();
  }
}

TEST(Value, IntToDoubleMustBeExact) {
  EXPECT_EQ(Value(std::int64_t{1} << 53).as<double>(), 9007199254740992.0);
  EXPECT_THROW((void)Value((std::int64_t{1} << 53) + 1).as<double>(), ArgumentError);
  EXPECT_THROW((void)Value(INT64_MAX).as<double>(), ArgumentError);
}

TEST(Value, DoubleToFloatMustBeExact) {
  EXPECT_EQ(Value(0.5).as<float>(), 0.5f);
  EXPECT_THROW((void)Value(0.1).as<float>(), ArgumentError);
  EXPECT_THROW((void)Value(1e300).as<float>(), ArgumentError);
  EXPECT_TRUE(std::isinf(Value(INFINITY).as<float>()));
}

TEST(Value, KindsDoNotMix) {
  EXPECT_THROW((void)Value(true).as<std::int64_t>(), ArgumentError);
  EXPECT_THROW((void)Value(1).as<bool>(), ArgumentError);
  EXPECT_THROW((void)Value("1").as<std::int64_t>(), ArgumentError);
  EXPECT_THROW((void)Value(1).as<std::string>(), ArgumentError);
}

TEST(Value, SequencesConvertElementWise) {
  Value list = Value::list({1, 2, 3});
  EXPECT_EQ(list.as<std::vector<double>>(), (std::vector<double>{1, 2, 3}));
  Value arr = std::vector<std::int64_t>{4, 5};
  EXPECT_EQ(arr.as<std::vector<std::int8_t>>(), (std::vector<std::int8_t>{4, 5}));
  Value range = Range{0, 5, 2};
  EXPECT_EQ(range.as<std::vector<std::int64_t>>(), (std::vector<std::int64_t>{0, 2, 4}));
}

TEST(Value, AFailingElementIsNamed) {
  Value list = Value::list({1, "two", 3});
  try {
    (void)list.as<std::vector<std::int64_t>>();
    FAIL();
  } catch (const ArgumentError& e) {
    EXPECT_STREQ(e.what(), "element 1: expected int64, got string");
  }
  Value arr = std::vector<std::int64_t>{1, 1000};
  EXPECT_THROW((void)arr.as<std::vector<std::int8_t>>(), ArgumentError);
}

TEST(Value, TuplesAndMaps) {
  Value t = Value::list({1, "a"});
  auto [n, s] = t.as<std::tuple<std::int64_t, std::string>>();
  EXPECT_EQ(n, 1);
  EXPECT_EQ(s, "a");
  EXPECT_THROW((void)t.as<std::tuple<std::int64_t>>(), ArgumentError);
  Value m = Value::map({{"a", 1}, {"b", 2}});
  EXPECT_EQ(m["b"].as<int>(), 2);
  EXPECT_THROW((void)m["c"], ArgumentError);
  auto mm = m.as<std::map<std::string, std::int64_t>>();
  EXPECT_EQ(mm.at("a"), 1);
}

TEST(Value, ReprIsPythonLike) {
  EXPECT_EQ(Value(true).repr(), "True");
  EXPECT_EQ(Value(42).repr(), "42");
  EXPECT_EQ(Value(2.0).repr(), "2.0");
  EXPECT_EQ(Value(0.1).repr(), "0.1");
  EXPECT_EQ(Value(1e100).repr(), "1e+100");
  EXPECT_EQ(Value("it's").repr(), "\"it's\"");
  EXPECT_EQ(Value("a\nb").repr(), "'a\\nb'");
  EXPECT_EQ(Value("héllo").repr(), "'héllo'");
  EXPECT_EQ(Value::list({1, "x", Value()}).repr(), "[1, 'x', None]");
  EXPECT_EQ(Value::map({{"b", 2}, {"a", 1}}).repr(), "{'a': 1, 'b': 2}");
  EXPECT_EQ(Value(std::vector<std::int64_t>{2, 6, 12}).repr(), "[2, 6, 12]");
  EXPECT_EQ(Value(std::vector<double>{1, 2.5}).repr(), "[1.0, 2.5]");
  EXPECT_EQ(Value(Range{0, 10}).repr(), "range(0, 10)");
  EXPECT_EQ(Value(Bytes{Buffer::copy("a\x01", 2)}).repr(), "b'a\\x01'");
  Array m(DType::int32, {2, 2}, Buffer::adopt(std::vector<std::int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(Value(m).repr(), "[[1, 2], [3, 4]]");
}

TEST(Value, WriteReprStreamsTheSameText) {
  std::vector<std::int64_t> big(100000);
  std::iota(big.begin(), big.end(), -50000);
  std::vector<double> floats(30000, 0.5);
  Array m(DType::int32, {2, 2}, Buffer::adopt(std::vector<std::int32_t>{1, 2, 3, 4}));
  const Value v = Value::map({{"ints", Value(big)},
                              {"list", Value::list({Value(floats), Value(m), "x", Value()})},
                              {"r", Value(Range{0, 3})}});
  std::ostringstream out;
  v.write_repr(out);
  EXPECT_GT(out.str().size(), std::size_t{1} << 17);  // beyond what is held before writing
  EXPECT_EQ(out.str(), v.repr());
  std::ostringstream small;
  Value(42).write_repr(small);
  EXPECT_EQ(small.str(), "42");
}

TEST(Range, SizesLikePython) {
  EXPECT_EQ((Range{0, 10, 1}.size()), 10u);
  EXPECT_EQ((Range{0, 10, 3}.size()), 4u);
  EXPECT_EQ((Range{10, 0, -3}.size()), 4u);
  EXPECT_EQ((Range{5, 5, 1}.size()), 0u);
  EXPECT_EQ((Range{5, 0, 1}.size()), 0u);
  EXPECT_EQ((Range{INT64_MIN, INT64_MAX, 1}.size()), UINT64_MAX);
  EXPECT_THROW((void)(Range{0, 1, 0}.size()), ArgumentError);
  EXPECT_EQ(Range::inclusive(1, 9), (Range{1, 10, 1}));
  EXPECT_EQ(Range::inclusive(9, 1, -2), (Range{9, 0, -2}));
  EXPECT_THROW((void)Range::inclusive(0, INT64_MAX), ArgumentError);
}

TEST(Value, EqualityComparesContents) {
  EXPECT_EQ(Value(std::vector<double>{1, 2}), Value(std::vector<double>{1, 2}));
  EXPECT_NE(Value(std::vector<double>{1, 2}), Value(std::vector<float>{1, 2}));
  EXPECT_NE(Value(1), Value(1.0));
  EXPECT_EQ(Value::list({1, Value::list({2})}), Value::list({1, Value::list({2})}));
}

}  // namespace
}  // namespace ipp
