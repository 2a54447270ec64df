// Engine namespaces through the client library: push/pull, view["a"], scatter/gather,
// references, results kept on the engines, and execute — on real clusters of 1 and 4 engines.
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "ipp/client.hpp"
#include "support/cluster.hpp"

namespace ipp {
namespace {

using namespace std::chrono_literals;

class NamespaceTest : public test::Cluster {
 protected:
  void start_with(int engines, int threads = 2) {
    start(engines, threads);
    rc_ = std::make_unique<Client>(ClientOptions{.profile_dir = dir_.path()});
    for (const char* p : {"arith", "arrays"})
      rc_->push_plugin(test::plugin(p));
  }
  std::unique_ptr<Client> rc_;
};

/// The same checks on one engine and on four.
class EveryEngineCount : public NamespaceTest, public ::testing::WithParamInterface<int> {};

TEST_P(EveryEngineCount, PushPullAndItems) {
  const int n = GetParam();
  start_with(n);
  DirectView all = rc_->direct_view();
  all.push({{"a", 1}, {"v", std::vector<double>{1.5, 2.5}}, {"s", "text"}});
  Value a = all["a"];
  ASSERT_EQ(a.size(), static_cast<std::uint64_t>(n));
  for (const auto& x : a.as_list())
    EXPECT_EQ(x, Value(1));
  // One engine: one value, not a list.
  EXPECT_EQ(Value((*rc_)[0]["a"]), Value(1));
  EXPECT_EQ((*rc_)[0].pull("v").as<std::vector<double>>(), (std::vector<double>{1.5, 2.5}));
  EXPECT_EQ((*rc_)[0].pull({"s", "a"}).repr(), "['text', 1]");
  EXPECT_EQ(all.pull({"a", "s"}).as_list().back().repr(), "[1, 'text']");

  // Per-engine values come back in target order.
  for (std::int64_t id : rc_->ids())
    (*rc_)[id]["who"] = id * 10;
  std::vector<std::int64_t> want;
  for (std::int64_t id : rc_->ids())
    want.push_back(id * 10);
  EXPECT_EQ(all["who"].get().as<std::vector<std::int64_t>>(), want);
  const std::vector<std::int64_t> ids = rc_->ids();
  const std::vector<std::int64_t> reversed(ids.rbegin(), ids.rend());
  std::reverse(want.begin(), want.end());
  EXPECT_EQ((*rc_)[reversed]["who"].get().as<std::vector<std::int64_t>>(), want);

  all["a"] = "replaced";
  EXPECT_EQ((*rc_)[n - 1].pull("a"), Value("replaced"));

  all.clear();
  try {
    (void)(*rc_)[0].pull("a");
    FAIL() << "pull after clear";
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.code(), ErrorCode::name_error);
    EXPECT_NE(std::string(e.what()).find("name 'a' is not defined on engine 0"), std::string::npos)
        << e.what();
  }
}

TEST_P(EveryEngineCount, ScatterAndGather) {
  const int n = GetParam();
  start_with(n);
  DirectView all = rc_->direct_view();
  // 10 elements over n engines: not divisible by 4.
  std::vector<double> xs(10);
  for (int i = 0; i < 10; ++i)
    xs[i] = i * 1.5;
  all.scatter("x", xs);
  std::vector<std::uint64_t> sizes;
  const Value blocks = all.pull("x");
  for (const auto& block : blocks.as_list()) {
    EXPECT_EQ(block.kind(), Value::Kind::array) << block.type_name();
    sizes.push_back(block.size());
  }
  EXPECT_EQ(sizes,
            n == 4 ? (std::vector<std::uint64_t>{3, 3, 2, 2}) : (std::vector<std::uint64_t>{10}));
  Value back = all.gather("x");
  ASSERT_EQ(back.kind(), Value::Kind::array);
  EXPECT_EQ(back.as_array().dtype(), DType::float64);
  EXPECT_EQ(back.as<std::vector<double>>(), xs);

  // Lists and ranges too; a range stays a range.
  all.scatter("l", Value::list({"a", "b", "c", 4, 5.5}));
  EXPECT_EQ(all.gather("l").repr(), "['a', 'b', 'c', 4, 5.5]");
  all.scatter("r", Range{0, 7});
  EXPECT_EQ(all.gather("r"), Value(Range{0, 7}));
  all.scatter("empty", std::vector<std::int64_t>{});
  EXPECT_EQ(all.gather("empty").size(), 0u);

  // A map over the scattered blocks, kept on the engines, gathered after.
  all.map_to("y", "mul", {ref("r"), ref("r")});
  const Value y = all.gather("y");
  EXPECT_EQ(y.kind(), Value::Kind::array);
  EXPECT_EQ(y.as<std::vector<std::int64_t>>(), (std::vector<std::int64_t>{0, 1, 4, 9, 16, 25, 36}));
}

INSTANTIATE_TEST_SUITE_P(Engines, EveryEngineCount, ::testing::Values(1, 4),
                         [](const auto& param) { return std::to_string(param.param); });

TEST_F(NamespaceTest, ReferencesAreResolvedOnTheEngine) {
  start_with(2);
  DirectView all = rc_->direct_view();
  all.push({{"x", std::vector<double>{1, 2, 3}}});
  (*rc_)[1]["x"] = std::vector<double>{10, 20};
  EXPECT_EQ(all.apply("sum", {ref("x")}).repr(), "[6.0, 30.0]");

  // The result kept on the engines instead of returned.
  all.apply_to("y", "scale", {ref("x"), 2.0});
  EXPECT_EQ((*rc_)[0].pull("y").as<std::vector<double>>(), (std::vector<double>{2, 4, 6}));
  EXPECT_EQ((*rc_)[1].pull("y").as<std::vector<double>>(), (std::vector<double>{20, 40}));
  EXPECT_TRUE((*rc_)[0].apply_to_async("z", "mul", {3, 4}).get(30s).is_null());
  EXPECT_EQ((*rc_)[0].pull("z"), Value(12));

  // A missing name is an error naming it; the engine goes on.
  try {
    (void)(*rc_)[0].apply("sum", {ref("nothing")});
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.code(), ErrorCode::name_error);
    EXPECT_NE(std::string(e.what()).find("'nothing'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("arrays.sum"), std::string::npos) << e.what();
  }
  EXPECT_THROW(all.apply_to("w", "sum", {ref("nothing")}), CompositeError);

  // Load-balanced: a reference resolves on whichever engine runs the task.
  all.push({{"k", 7}});
  EXPECT_EQ(rc_->load_balanced_view().apply("mul", {ref("k"), 6}), Value(42));
  EXPECT_THROW((void)rc_->load_balanced_view().map("mul", {ref("k"), ref("k")}), UsageError);
  EXPECT_THROW(all.push({{"bad", ref("k")}}), ArgumentError);
}

TEST_F(NamespaceTest, TheTutorialsExecuteSteps) {
  start_with(4);
  DirectView all = rc_->direct_view();
  EXPECT_EQ(all.execute("import sysinfo").get(30s).repr(), "[None, None, None, None]");
  all.execute("a = sysinfo.getpid()").get(30s);
  const Value pids = all["a"];
  std::set<std::int64_t> distinct;
  std::set<std::int64_t> engine_pids;
  for (const auto& p : pids.as_list())
    distinct.insert(p.as_int());
  const Value engines = rc_->engines();
  for (const auto& e : engines.as_list())
    engine_pids.insert(e["pid"].as_int());
  EXPECT_EQ(distinct.size(), 4u);
  EXPECT_EQ(distinct, engine_pids);

  all.execute("n = 4; xs = [1, 2, 3]\nb = mul(a, n)\ndel xs").get(30s);
  const Value b = all["b"];
  for (std::size_t i = 0; i < 4; ++i)
    EXPECT_EQ(b[i].as_int(), pids[i].as_int() * 4);
  EXPECT_THROW((void)all.pull("xs"), CompositeError);
}

TEST_F(NamespaceTest, ExecuteErrorsCarryLineAndColumn) {
  start_with(2);
  try {
    (void)(*rc_)[1].execute("x = 1\ny = mul(x, nope)\nz = 2").get(30s);
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.record().line, 2u);
    EXPECT_EQ(e.record().column, 12u);
    EXPECT_EQ(e.record().engine, 1);
    EXPECT_EQ(e.code(), ErrorCode::name_error);
    EXPECT_NE(std::string(e.what()).find("line 2, column 12"), std::string::npos) << e.what();
  }
  EXPECT_EQ((*rc_)[1].pull("x"), Value(1));
  EXPECT_THROW((void)(*rc_)[1].pull("z"), RemoteError);

  try {
    (void)rc_->direct_view().execute("a = [1, 2").get(30s);
    FAIL();
  } catch (const CompositeError& e) {
    ASSERT_EQ(e.records().size(), 2u);
    for (const auto& r : e.records()) {
      EXPECT_EQ(r.code, ErrorCode::syntax);
      EXPECT_EQ(r.line, 1u);
      EXPECT_EQ(r.column, 5u);
    }
  }
  // A failing task inside execute.
  try {
    (void)(*rc_)[0].execute("q = divide(1, 0)").get(30s);
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type(), "std::domain_error");
    EXPECT_EQ(e.record().task, "arith.divide");
    EXPECT_EQ(e.record().column, 5u);
  }
  // The engines go on.
  EXPECT_EQ(rc_->direct_view().apply("mul", {2, 3}).repr(), "[6, 6]");
}

TEST_F(NamespaceTest, GatherAfterAnEngineDiedFailsClearly) {
  start_with(2);
  DirectView all = rc_->direct_view();
  all.scatter("x", Range{0, 100});
  engine_process(1).signal(SIGKILL);
  try {
    (void)all.gather_async("x").get(60s);
    FAIL() << "gather from a dead engine";
  } catch (const CompositeError& e) {
    ASSERT_EQ(e.records().size(), 1u);
    EXPECT_EQ(e.records()[0].code, ErrorCode::engine);
    EXPECT_EQ(e.records()[0].engine, 1);
  } catch (const EngineError& e) {
    EXPECT_NE(std::string(e.what()).find("engine 1"), std::string::npos) << e.what();
  }
  // The survivor keeps its block.
  EXPECT_EQ((*rc_)[0].pull("x"), Value(Range{0, 50}));
}

/// Guarantee under test: every namespace read sees a whole value that some writer bound,
/// whatever runs at once; client namespace operations (execute, push, pull, calls with
/// references) apply one at a time in arrival order, so read-modify-write in execute loses
/// nothing.
TEST_F(NamespaceTest, ConcurrentExecuteAndApplyOnOneName) {
  start(1, 4);
  rc_ = std::make_unique<Client>(ClientOptions{.profile_dir = dir_.path()});
  rc_->push_plugin(test::plugin("arith"));
  rc_->push_plugin(test::test_plugin("types"));
  DirectView e0 = (*rc_)[0];
  e0["count"] = 0;
  e0["v"] = std::vector<std::int64_t>(50000, -1);
  std::vector<AsyncResult> increments, writes, reads, refs;
  constexpr int kRounds = 40;
  for (int k = 0; k < kRounds; ++k) {
    increments.push_back(e0.execute("count = add(count, 1)\nv = [1, 1, 1]"));
    // Plain tasks run beside the ordered ones, writing and reading the same names.
    writes.push_back(e0.apply_async("t_ns_set", {"v", std::vector<std::int64_t>(50000, k)}));
    reads.push_back(e0.apply_async("t_ns_get", {"v"}));
    refs.push_back(e0.apply_async("add", {ref("count"), 0}));
  }
  for (auto& r : increments)
    r.get(60s);
  for (auto& r : writes)
    r.get(60s);
  auto uniform = [](const Value& v) {
    const auto xs = v.as<std::vector<std::int64_t>>();
    return std::all_of(xs.begin(), xs.end(), [&](auto x) { return x == xs.front(); });
  };
  for (auto& r : reads)
    EXPECT_TRUE(uniform(r.get(60s))) << "a torn value";
  std::int64_t last = -1;
  for (auto& r : refs) {
    const std::int64_t seen = r.get(60s).as_int();
    EXPECT_GE(seen, last) << "ordered operations ran out of order";
    last = seen;
  }
  EXPECT_EQ(e0.pull("count"), Value(kRounds)) << "an increment was lost";
  EXPECT_TRUE(uniform(e0.pull("v")));
}

}  // namespace
}  // namespace ipp
