#include "ipp/literal.hpp"

#include <gtest/gtest.h>

namespace ipp {
namespace {

std::string repr(std::string_view text) {
  return parse_literal(text).repr();
}

std::string error(std::string_view text) {
  try {
    (void)parse_literal(text);
  } catch (const SyntaxError& e) {
    return e.what();
  }
  return "<parsed>";
}

TEST(Literal, Scalars) {
  EXPECT_EQ(parse_literal("42"), Value(42));
  EXPECT_EQ(parse_literal("-7"), Value(-7));
  EXPECT_EQ(parse_literal("+3"), Value(3));
  EXPECT_EQ(parse_literal("2.5"), Value(2.5));
  EXPECT_EQ(parse_literal("1e-3"), Value(1e-3));
  EXPECT_EQ(parse_literal(".5"), Value(0.5));
  EXPECT_EQ(parse_literal("3."), Value(3.0));
  EXPECT_EQ(parse_literal("true"), Value(true));
  EXPECT_EQ(parse_literal("False"), Value(false));
  EXPECT_TRUE(parse_literal("None").is_null());
  EXPECT_EQ(parse_literal("  9223372036854775807 "), Value(INT64_MAX));
  EXPECT_EQ(parse_literal("-9223372036854775808"), Value(INT64_MIN));
}

TEST(Literal, Strings) {
  EXPECT_EQ(parse_literal("\"x y\""), Value("x y"));
  EXPECT_EQ(parse_literal("'it\\'s'"), Value("it's"));
  EXPECT_EQ(parse_literal("\"a\\n\\t\\\\\\x41\""), Value("a\n\t\\A"));
  EXPECT_EQ(parse_literal("\"héllo\""), Value("héllo"));
  EXPECT_EQ(parse_literal("''"), Value(""));
}

TEST(Literal, Lists) {
  EXPECT_EQ(repr("[1, 2.5, \"x\"]"), "[1, 2.5, 'x']");
  EXPECT_EQ(repr("[]"), "[]");
  EXPECT_EQ(repr("[[1], [true, None],]"), "[[1], [True, None]]");
  EXPECT_EQ(repr("[1..3]"), "[range(1, 4)]");
}

TEST(Literal, InclusiveRanges) {
  EXPECT_EQ(parse_literal("1..9"), Value(Range{1, 10, 1}));
  EXPECT_EQ(parse_literal("0..100:5").as<std::vector<int>>().back(), 100);
  EXPECT_EQ(parse_literal("9..1").as<std::vector<int>>(),
            (std::vector<int>{9, 8, 7, 6, 5, 4, 3, 2, 1}));
  EXPECT_EQ(parse_literal("-3..-1").as<std::vector<int>>(), (std::vector<int>{-3, -2, -1}));
  EXPECT_EQ(parse_literal("1..10:3").as<std::vector<int>>(), (std::vector<int>{1, 4, 7, 10}));
  EXPECT_EQ(parse_literal("5..5"), Value(Range{5, 6, 1}));
  EXPECT_EQ(parse_literal("1..1000000").size(), 1000000u);
}

TEST(Literal, ErrorsSayWhereAndWhat) {
  EXPECT_EQ(error("hello"),
            "line 1, column 1: 'hello' is not a value (strings need quotes: \"hello\")");
  EXPECT_EQ(error("[1, 2"), "line 1, column 6: unterminated list: expected ']'");
  EXPECT_EQ(error("[1 2]"), "line 1, column 4: expected ',' or ']' in a list, found '2'");
  EXPECT_EQ(error("\"abc"), "line 1, column 1: unterminated string");
  EXPECT_EQ(error("1..x"), "line 1, column 4: expected an integer after '..'");
  EXPECT_EQ(error("1..9:0"), "line 1, column 6: a range step must not be zero");
  EXPECT_EQ(error("99999999999999999999"),
            "line 1, column 1: integer 99999999999999999999 does not fit in int64");
  EXPECT_EQ(error("12abc"), "line 1, column 3: unexpected 'a' in a number");
  EXPECT_EQ(error("1 2"), "line 1, column 3: unexpected '2' after the value");
  EXPECT_EQ(error(""), "line 1, column 1: expected a value, found the end of the input");
  EXPECT_EQ(error("\"\\q\""), "line 1, column 3: unknown escape '\\q'");
  EXPECT_EQ(error("1e"), "line 1, column 3: expected digits in the exponent");
  EXPECT_EQ(error("1..9223372036854775807"), "line 1, column 1: range end is too large");
}

TEST(Literal, ErrorCodeIsSyntax) {
  try {
    (void)parse_literal("[");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::syntax);
  }
}

}  // namespace
}  // namespace ipp
