#include <numeric>
#include <thread>

#include <gtest/gtest.h>

#include "ipp/literal.hpp"
#include "ipp/runtime/runtime.hpp"
#include "ipp/runtime/statements.hpp"
#include "support/paths.hpp"

namespace ipp {
namespace {

using test::plugin;
using test::TempDir;

class ExecuteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* p : {"arith", "arrays", "errors", "sysinfo"})
      rt_.load(plugin(p));
  }
  /// Runs code that must succeed.
  void run(std::string_view code) {
    const TaskOutcome out = rt_.execute(code);
    ASSERT_TRUE(out.ok()) << code << " -> " << out.error->describe();
  }
  /// Runs code that must fail; returns the record.
  ErrorRecord failure(std::string_view code) {
    TaskOutcome out = rt_.execute(code);
    if (out.ok()) {
      ADD_FAILURE() << "no error from: " << code;
      return {};
    }
    return *out.error;
  }
  Value var(std::string_view name) {
    auto v = rt_.ns().get(name);
    if (!v) ADD_FAILURE() << name << " is not bound";
    return v.value_or(Value());
  }
  TempDir dir_;
  Runtime rt_{{.threads = 2, .store_dir = dir_.path(), .engine_id = 3}};
};

TEST_F(ExecuteTest, RunsTheDocumentedStatements) {
  run("import sysinfo            # bind a pushed plugin by name\n"
      "a = sysinfo.getpid()      # call a task and bind its result\n"
      "n = 4; xs = [1, 2, 3]     # literals\n"
      "b = mul(a, n)             # arguments are literals or names\n"
      "del xs\n");
  EXPECT_EQ(var("a").as<std::int64_t>(), ::getpid());
  EXPECT_EQ(var("n").as<std::int64_t>(), 4);
  EXPECT_EQ(var("b").as<std::int64_t>(), 4 * ::getpid());
  EXPECT_FALSE(rt_.ns().get("xs"));
}

TEST_F(ExecuteTest, LiteralsOfEveryKind) {
  run("i = -7; f = 2.5; t = true; F = False; z = None; s = 'it\\'s'\n"
      "r = 1..9; d = 9..1; st = 0..100:5; l = [1, [2.5, \"x\"], [],]\n");
  EXPECT_EQ(var("i").as<int>(), -7);
  EXPECT_EQ(var("f").as<double>(), 2.5);
  EXPECT_TRUE(var("t").as<bool>());
  EXPECT_FALSE(var("F").as<bool>());
  EXPECT_TRUE(var("z").is_null());
  EXPECT_EQ(var("r").as<std::vector<int>>(), (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(var("d").as<std::vector<int>>().front(), 9);
  EXPECT_EQ(var("st").size(), 21u);
  EXPECT_EQ(var("l").repr(), "[1, [2.5, 'x'], []]");
  EXPECT_EQ(var("s").as<std::string>(), "it's");
}

TEST_F(ExecuteTest, ListsMayHoldNamesAndCallsNest) {
  run("a = 2\nxs = [a, mul(a, 3), add(mul(2, 2), 1)]\n");
  EXPECT_EQ(var("xs").repr(), "[2, 6, 5]");
  run("total = sum([1.5, 2.5])\n"
      "v = mul(\n"
      "  6,\n"
      "  7)\n");
  EXPECT_EQ(var("total").as<double>(), 4.0);
  EXPECT_EQ(var("v").as<int>(), 42);
}

TEST_F(ExecuteTest, ExpressionStatementsRunAndBindNothing) {
  run("import sysinfo\nsysinfo.echo(1)\nmul(2, 3); 5");
  EXPECT_EQ(rt_.ns().size(), 0u);
}

TEST_F(ExecuteTest, AQualifiedCallNeedsTheImport) {
  const auto e = failure("a = 1\nb = sysinfo.getpid()");
  EXPECT_EQ(e.code, ErrorCode::name_error);
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.column, 5u);
  EXPECT_NE(e.message.find("import sysinfo"), std::string::npos) << e.message;
  EXPECT_EQ(var("a").as<int>(), 1);  // the statement before it took effect
}

TEST_F(ExecuteTest, ImportsLastUntilClear) {
  run("import sysinfo, arith");
  run("p = sysinfo.getpid(); m = arith.mul(2, 3)");
  EXPECT_EQ(var("m").as<int>(), 6);
  rt_.clear_namespace();
  EXPECT_EQ(rt_.ns().size(), 0u);
  EXPECT_EQ(failure("p = sysinfo.getpid()").code, ErrorCode::name_error);
}

TEST_F(ExecuteTest, ImportOfAPluginNeverPushedNamesIt) {
  const auto e = failure("x = 1\nimport numpy");
  EXPECT_EQ(e.type, "ipp::ImportError");
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.column, 8u);
  EXPECT_NE(e.message.find("'numpy'"), std::string::npos);
  EXPECT_NE(e.message.find("sysinfo"), std::string::npos) << "lists what is loaded";
  EXPECT_EQ(var("x").as<int>(), 1);
}

TEST_F(ExecuteTest, UnknownNameUnknownTaskAndAFailingTaskStopThere) {
  auto e = failure("a = 1\nb = mul(a, nope)\nc = 3");
  EXPECT_EQ(e.code, ErrorCode::name_error);
  EXPECT_EQ(e.type, "ipp::NameError");
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.column, 12u);
  EXPECT_NE(e.message.find("'nope'"), std::string::npos);
  EXPECT_EQ(var("a").as<int>(), 1);
  EXPECT_FALSE(rt_.ns().get("b"));
  EXPECT_FALSE(rt_.ns().get("c")) << "statements after the failing one do not run";

  e = failure("q = 1; r = frobnicate(1)");
  EXPECT_EQ(e.code, ErrorCode::task_not_found);
  EXPECT_EQ(e.line, 1u);
  EXPECT_EQ(e.column, 12u);
  EXPECT_EQ(var("q").as<int>(), 1);

  e = failure("ok = 1\n\nbad = fail('boom')\nnever = 2");
  EXPECT_EQ(e.type, "std::invalid_argument");
  EXPECT_EQ(e.message, "boom");
  EXPECT_EQ(e.task, "errors.fail");
  EXPECT_EQ(e.engine, 3);
  EXPECT_EQ(e.line, 3u);
  EXPECT_EQ(e.column, 7u);
  EXPECT_FALSE(rt_.ns().get("never"));

  e = failure("m = mul('x', 2)");
  EXPECT_EQ(e.code, ErrorCode::argument);
  EXPECT_EQ(e.line, 1u);

  e = failure("del ghost");
  EXPECT_EQ(e.code, ErrorCode::name_error);
  EXPECT_EQ(e.column, 5u);
}

TEST_F(ExecuteTest, APluginNameIsNotAValue) {
  run("import sysinfo");
  const auto e = failure("x = sysinfo");
  EXPECT_EQ(e.code, ErrorCode::name_error);
  EXPECT_NE(e.message.find("is a plugin"), std::string::npos) << e.message;
}

struct BadCode {
  const char* code;
  std::size_t line, column;
  const char* says;
};

void PrintTo(const BadCode& bad, std::ostream* os) {
  *os << '"' << bad.code << '"';
}

class SyntaxErrors : public ExecuteTest, public ::testing::WithParamInterface<BadCode> {};

TEST_P(SyntaxErrors, NothingRunsAndTheErrorSaysWhere) {
  const BadCode& bad = GetParam();
  rt_.ns().set("before", 0);
  const auto e = failure(std::string("before = 1\n") + bad.code);
  EXPECT_EQ(e.code, ErrorCode::syntax) << e.message;
  EXPECT_EQ(e.type, "ipp::SyntaxError");
  EXPECT_EQ(e.line, bad.line + 1) << bad.code << ": " << e.message;
  EXPECT_EQ(e.column, bad.column) << bad.code << ": " << e.message;
  EXPECT_NE(e.message.find(bad.says), std::string::npos) << bad.code << ": " << e.message;
  EXPECT_EQ(var("before").as<int>(), 0) << "a syntax error stops the block before it runs";
}

INSTANTIATE_TEST_SUITE_P(
    EveryKind, SyntaxErrors,
    ::testing::Values(
        BadCode{"s = 'open", 1, 5, "string"}, BadCode{"x = mul(1, 2", 1, 8, "never closed"},
        BadCode{"x = [1, 2", 1, 5, "never closed"}, BadCode{"x = mul(1, 2))", 1, 14, "unmatched"},
        BadCode{"= 5", 1, 1, "name before '='"}, BadCode{"x =", 1, 4, "expected a value"},
        BadCode{"x = 1 2", 1, 7, "expected a newline or ';'"},
        BadCode{"x = $", 1, 5, "unexpected character"},
        BadCode{"x = mul(1,,2)", 1, 11, "before ','"}, BadCode{"mul(1) = 3", 1, 8, "only a name"},
        BadCode{"1x = 2", 1, 2, "in a number"}, BadCode{"import", 1, 7, "plugin name"},
        BadCode{"import 5", 1, 8, "plugin name"}, BadCode{"import a.b", 1, 9, "plain name"},
        BadCode{"del", 1, 4, "name after 'del'"}, BadCode{"del 5", 1, 5, "name after 'del'"},
        BadCode{"True = 1", 1, 1, "keyword"}, BadCode{"x = sysinfo.getpid", 1, 5, "call it"},
        BadCode{"x = a.b.c()", 1, 8, "one dot"}, BadCode{"x = 1.2.3", 1, 8, "expected a newline"},
        BadCode{"x = 99999999999999999999", 1, 5, "int64"},
        BadCode{"x = 1\n  y = (2)", 2, 7, "unexpected character '('"},
        BadCode{"x = mul(1 2)", 1, 11, "expected ',' or ')'"},
        BadCode{"x = [1 2]", 1, 8, "expected ',' or ']'"}));

TEST_F(ExecuteTest, StatementsParseWithPositions) {
  const auto program = statements::parse("import a\n  x = f(1, [y])  # note\n;;del x, y\n");
  ASSERT_EQ(program.size(), 3u);
  EXPECT_EQ(program[0].kind, statements::Statement::Kind::import_plugins);
  EXPECT_EQ(program[1].kind, statements::Statement::Kind::assign);
  EXPECT_EQ(program[1].at.line, 2u);
  EXPECT_EQ(program[1].at.column, 3u);
  EXPECT_EQ(program[1].expr.kind, statements::Expr::Kind::call);
  EXPECT_EQ(program[1].expr.items.size(), 2u);
  EXPECT_EQ(program[1].expr.items[1].kind, statements::Expr::Kind::list);
  EXPECT_EQ(program[2].names.size(), 2u);
  EXPECT_TRUE(statements::parse("  \n# only a comment\n;\n").empty());
}

TEST_F(ExecuteTest, ReferencesAreResolvedAndResultsBound) {
  rt_.ns().set("x", std::vector<double>{1.0, 2.0, 3.0});
  rt_.ns().set("k", 2.0);
  const Payload args = encode(Value::list({ref("x"), ref("k")}));
  EXPECT_TRUE(Runtime::has_refs(args));
  EXPECT_FALSE(Runtime::has_refs(encode(Value::list({1, 2}))));
  TaskOutcome out = rt_.run_now("scale", args, false, "y");
  ASSERT_TRUE(out.ok()) << out.error->describe();
  EXPECT_TRUE(out.result.root.empty()) << "a bound result is not sent back";
  EXPECT_EQ(var("y").as<std::vector<double>>(), (std::vector<double>{2, 4, 6}));

  out = rt_.run_now("mul", encode(Value::list({ref("x"), ref("missing")})), false);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error->code, ErrorCode::name_error);
  EXPECT_NE(out.error->message.find("'missing'"), std::string::npos);
  EXPECT_NE(out.error->message.find("engine 3"), std::string::npos);

  // A map over a reference: the engine's own sequence.
  rt_.ns().set("a", Range{1, 5});
  out = rt_.run_now("mul", encode(Value::list({ref("a"), ref("a")})), true, "sq");
  ASSERT_TRUE(out.ok()) << out.error->describe();
  EXPECT_EQ(var("sq").as<std::vector<int>>(), (std::vector<int>{1, 4, 9, 16}));
}

TEST_F(ExecuteTest, OrderedJobsRunOneAtATimeInOrder) {
  std::mutex m;
  std::vector<int> seen;
  std::atomic<int> running{0}, most{0};
  std::atomic<int> finished{0};
  for (int i = 0; i < 20; ++i) {
    rt_.submit_ordered(
        [&, i] {
          const int now = ++running;
          most = std::max(most.load(), now);
          {
            std::lock_guard lock(m);
            seen.push_back(i);
          }
          std::this_thread::yield();
          --running;
          return TaskOutcome{};
        },
        [&](TaskOutcome) { ++finished; });
  }
  rt_.executor().wait_idle();
  EXPECT_EQ(finished.load(), 20);
  EXPECT_EQ(most.load(), 1);
  std::vector<int> want(20);
  std::iota(want.begin(), want.end(), 0);
  EXPECT_EQ(seen, want);
}

}  // namespace
}  // namespace ipp
