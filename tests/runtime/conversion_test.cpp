// Every parameter and result type a task may declare, through the real plugin boundary.
#include <gtest/gtest.h>

#include "ipp/runtime/runtime.hpp"
#include "support/paths.hpp"

namespace ipp {
namespace {

class Conversion : public ::testing::Test {
 protected:
  void SetUp() override { rt_.load(test::test_plugin("types")); }
  std::string error_of(std::string_view task, const Value::List& args) {
    try {
      (void)rt_.call(task, args);
    } catch (const RemoteError& e) {
      return e.record().message;
    }
    return "<no error>";
  }
  test::TempDir dir_;
  Runtime rt_{{.threads = 2, .store_dir = dir_.path()}};
};

TEST_F(Conversion, SignaturesComeFromTheFunctionType) {
  auto sig = [&](const char* t) { return rt_.resolve(t).info().signature; };
  EXPECT_EQ(sig("t_i8"), "t_i8(int8) -> int8");
  EXPECT_EQ(sig("t_vec_string"), "t_vec_string(list[string]) -> list[string]");
  EXPECT_EQ(sig("t_span_f64"), "t_span_f64(array[float64]) -> float64");
  EXPECT_EQ(sig("t_tuple"), "t_tuple(int64) -> tuple[int64, string, float64]");
  EXPECT_EQ(sig("t_void"), "t_void(int64) -> null");
  EXPECT_EQ(sig("t_ctx"), "t_ctx(int64, int64) -> int64");
  EXPECT_EQ(rt_.resolve("t_ctx").info().arity, 2);
}

TEST_F(Conversion, Scalars) {
  EXPECT_EQ(rt_.call("t_bool", {true}), Value(false));
  EXPECT_EQ(rt_.call("t_i8", {-128}), Value(-128));
  EXPECT_EQ(rt_.call("t_i16", {32767}), Value(32767));
  EXPECT_EQ(rt_.call("t_i32", {-5}), Value(-5));
  EXPECT_EQ(rt_.call("t_i64", {INT64_MIN}), Value(INT64_MIN));
  EXPECT_EQ(rt_.call("t_u8", {255}), Value(255));
  EXPECT_EQ(rt_.call("t_u16", {65535}), Value(65535));
  EXPECT_EQ(rt_.call("t_u32", {4294967295}), Value(4294967295));
  EXPECT_EQ(rt_.call("t_u64", {INT64_MAX}), Value(INT64_MAX));
  EXPECT_EQ(rt_.call("t_f32", {0.25}), Value(0.25));
  EXPECT_EQ(rt_.call("t_f64", {1.5}), Value(1.5));
}

TEST_F(Conversion, LosslessWideningIsAllowed) {
  EXPECT_EQ(rt_.call("t_f64", {3}), Value(3.0));
  EXPECT_EQ(rt_.call("t_f32", {16777216}), Value(16777216.0));
  EXPECT_EQ(rt_.call("t_vec_f64", {std::vector<std::int32_t>{1, 2}}).repr(), "[1.0, 2.0]");
  EXPECT_EQ(rt_.call("t_span_i64", {std::vector<std::int8_t>{1, 2, 3}}), Value(6));
}

TEST_F(Conversion, NarrowingAndOverflowAreErrors) {
  EXPECT_EQ(error_of("t_i8", {128}), "argument 1 (int8): 128 does not fit in int8");
  EXPECT_EQ(error_of("t_u8", {-1}), "argument 1 (uint8): -1 does not fit in uint8");
  EXPECT_EQ(
      error_of("t_i64", {1.0}),
      "argument 1 (int64): expected int64, got float64 (narrowing conversions are not allowed)");
  EXPECT_EQ(error_of("t_f32", {0.1}),
            "argument 1 (float32): 0.1 (not exact) does not fit in float32");
  EXPECT_EQ(error_of("t_f32", {16777217}),
            "argument 1 (float32): 16777217 (not exact) does not fit in float32");
  EXPECT_EQ(error_of("t_vec_i32", {std::vector<std::int64_t>{1, 1LL << 40}}),
            "argument 1 (list[int32]): element 1: 1099511627776 does not fit in int32");
  EXPECT_EQ(error_of("t_bool", {1}), "argument 1 (bool): expected bool, got int");
  EXPECT_EQ(error_of("t_string", {1}), "argument 1 (string): expected string, got int");
  EXPECT_EQ(error_of("t_span_f64", {"x"}),
            "argument 1 (array[float64]): expected list[float64], got string");
}

TEST_F(Conversion, StringsAndViews) {
  EXPECT_EQ(rt_.call("t_string", {"héllo"}), Value("héllo!"));
  EXPECT_EQ(rt_.call("t_string_view", {std::string(100000, 'x')}), Value(100000));
  EXPECT_EQ(rt_.call("t_string_view", {""}), Value(0));
}

TEST_F(Conversion, Vectors) {
  EXPECT_EQ(rt_.call("t_vec_i32", {Value::list({1, 2})}).repr(), "[1, 2]");
  EXPECT_EQ(rt_.call("t_vec_i32", {Range{0, 3}}).repr(), "[0, 1, 2]");
  EXPECT_EQ(rt_.call("t_vec_string", {Value::list({"a", "b"})}).repr(), "['a', 'b']");
  EXPECT_EQ(rt_.call("t_vec_bool", {Value::list({true, false})}).repr(), "[True, False]");
  EXPECT_EQ(rt_.call("t_nested", {Value::list({Value::list({1}), Value::list({2, 3})})}).repr(),
            "[[1], [2, 3]]");
  EXPECT_EQ(rt_.call("t_vec_f64", {std::vector<double>{}}).repr(), "[]");
}

TEST_F(Conversion, SpansAcceptAnySequenceConvertedLosslessly) {
  EXPECT_EQ(rt_.call("t_span_f64", {std::vector<double>{1, 2}}), Value(3.0));
  EXPECT_EQ(rt_.call("t_span_f64", {Value::list({1, 2.5})}), Value(3.5));
  EXPECT_EQ(rt_.call("t_span_f64", {Range{0, 4}}), Value(6.0));
  EXPECT_EQ(rt_.call("t_span_f64", {std::vector<float>{0.5f}}), Value(0.5));
}

TEST_F(Conversion, ValuesTuplesPairsMapsAndVoid) {
  Value complex = Value::map({{"k", Value::list({1, "x", std::vector<double>{2}})}});
  EXPECT_EQ(rt_.call("t_value", {complex}), complex);
  EXPECT_EQ(rt_.call("t_tuple", {3}).repr(), "[3, '3', 1.5]");
  EXPECT_EQ(rt_.call("t_pair", {3}).repr(), "[True, -3]");
  EXPECT_TRUE(rt_.call("t_void", {3}).is_null());
  EXPECT_EQ(rt_.call("t_map", {Value::map({{"a", 1}})}).repr(), "{'a': 1}");
  EXPECT_EQ(error_of("t_map", {Value::map({{"a", "x"}})}),
            "argument 1 (map[string, int64]): key 'a': expected int64, got string");
}

TEST_F(Conversion, ContextIsInjectedAnywhere) {
  EXPECT_EQ(rt_.call("t_ctx", {4, 2}), Value(4002));
  EXPECT_EQ(error_of("t_ctx", {4}), "expected 2 arguments, got 1");
  EXPECT_EQ(rt_.call("t_engine"), Value(-1));
}

TEST_F(Conversion, MapConvertsEachElement) {
  EXPECT_EQ(rt_.map("t_f64", {std::vector<std::int32_t>{1, 2}}).repr(), "[1.0, 2.0]");
  EXPECT_EQ(rt_.map("t_i8", {Value::list({1, 2})}).repr(), "[1, 2]");
  EXPECT_EQ(rt_.map("t_ctx", {Range{0, 2}, Range{5, 7}}).repr(), "[5, 1006]");
  EXPECT_EQ(rt_.map("t_string_view", {Value::list({"ab", ""})}).repr(), "[2, 0]");
  EXPECT_EQ(rt_.map("t_span_f64", {Value::list({std::vector<double>{1, 2}, Range{0, 3}})}).repr(),
            "[3.0, 3.0]");
  EXPECT_EQ(rt_.map("t_value", {std::vector<float>{0.5f}}).repr(), "[0.5]");
  try {
    (void)rt_.map("t_i8", {Value::list({1, 1000})});
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.record().element, std::optional<std::uint64_t>(1));
    EXPECT_EQ(e.record().message, "1000 does not fit in int8");
  }
}

}  // namespace
}  // namespace ipp
