#include "ipp/runtime/runtime.hpp"

#include "ipp/runtime/memory.hpp"

#include <unistd.h>

#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "support/paths.hpp"

namespace ipp {
namespace {

using test::plugin;
using test::TempDir;
using test::test_plugin;

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* p : {"arith", "arrays", "strings", "errors", "sysinfo"})
      rt_.load(plugin(p));
  }
  RemoteError remote_error(std::string_view task, const Value::List& args) {
    try {
      (void)rt_.call(task, args);
    } catch (const RemoteError& e) {
      return e;
    }
    ADD_FAILURE() << "no RemoteError from " << task;
    return RemoteError(ErrorRecord{});
  }
  TempDir dir_;
  Runtime rt_{{.threads = 2, .store_dir = dir_.path(), .engine_id = 7}};
};

TEST_F(RuntimeTest, CallsTasksByBareAndQualifiedName) {
  EXPECT_EQ(rt_.call("mul", {5, 6}).as<std::int64_t>(), 30);
  EXPECT_EQ(rt_.call("arith.mul", {5, 6}).as<std::int64_t>(), 30);
  EXPECT_EQ(rt_.call("upper", {"ipp"}).as<std::string>(), "IPP");
  EXPECT_EQ(rt_.call("sysinfo.engine_id").as<int>(), 7);
  EXPECT_EQ(rt_.call("getpid").as<std::int64_t>(), ::getpid());
}

TEST(RuntimeOnDemand, APluginLoadedOnDemandLoadsAtItsFirstCallOrImportOnce) {
  TempDir dir;
  Runtime rt({.threads = 2, .store_dir = dir.path()});
  rt.load_on_demand("arith", plugin("arith"));
  rt.load_on_demand("strings", plugin("strings"));
  rt.load_on_demand("broken", dir.path() / "missing.so");
  EXPECT_TRUE(rt.plugins().empty());                         // nothing loaded before it is used
  EXPECT_THROW((void)rt.call("mul", {5, 6}), TaskNotFound);  // a bare name loads nothing
  // Two first calls at once: both find it.
  auto a = std::async(std::launch::async, [&] { return rt.call("arith.mul", {5, 6}); });
  auto b = std::async(std::launch::async, [&] { return rt.call("arith.mul", {2, 3}); });
  EXPECT_EQ(a.get().as<std::int64_t>(), 30);
  EXPECT_EQ(b.get().as<std::int64_t>(), 6);
  ASSERT_EQ(rt.plugins().size(), 1u);
  EXPECT_EQ(rt.call("mul", {7, 6}).as<std::int64_t>(), 42);  // now a bare name finds it too
  // execute's import loads it.
  EXPECT_TRUE(rt.execute("import strings\nu = strings.upper(\"x\")").ok());
  EXPECT_EQ(rt.ns().get("u")->as_string(), "X");
  // One that cannot load is an unknown plugin, said once in the log.
  EXPECT_THROW((void)rt.call("broken.f", {}), TaskNotFound);
  EXPECT_THROW((void)rt.call("broken.f", {}), TaskNotFound);
  EXPECT_EQ(rt.plugins().size(), 2u);
}

TEST_F(RuntimeTest, ReadsArraysInPlace) {
  std::vector<double> xs(10000, 0.5);
  EXPECT_EQ(rt_.call("sum", {xs}).as<double>(), 5000.0);
  EXPECT_EQ(rt_.call("scale", {std::vector<double>{1, 2}, 3.0}).as<std::vector<double>>(),
            (std::vector<double>{3, 6}));
  const auto stats = rt_.call("stats", {std::vector<double>{1, 3}});
  EXPECT_EQ(stats.repr(), "[2.0, 1.0]");
  EXPECT_EQ(rt_.call("iota", {4}).repr(), "[0, 1, 2, 3]");
}

TEST_F(RuntimeTest, ZeroCopyArgumentsPointIntoTheReceivedBuffer) {
  // A large array is a side frame: the task must see the caller's storage itself.
  std::vector<double> xs(1 << 20, 1.0);
  Value v = std::move(xs);
  const auto where = reinterpret_cast<std::uintptr_t>(v.as_array().view<double>().data());
  Payload args = encode(Value::list({v}));
  ASSERT_EQ(args.frames.size(), 1u);
  std::promise<TaskOutcome> done;
  rt_.submit("address_of", args, [&](TaskOutcome o) { done.set_value(std::move(o)); });
  TaskOutcome out = done.get_future().get();
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(decode(out.result).as<std::uint64_t>(), where);
}

TEST_F(RuntimeTest, UnknownTaskIsTaskNotFound) {
  try {
    (void)rt_.call("nope", {});
    FAIL();
  } catch (const TaskNotFound& e) {
    EXPECT_STREQ(e.what(), "no task named 'nope' in any loaded plugin");
  }
  EXPECT_THROW((void)rt_.call("arith.nope", {}), TaskNotFound);
  EXPECT_THROW((void)rt_.call("nope.mul", {}), TaskNotFound);
}

TEST_F(RuntimeTest, AmbiguousBareNameListsTheCandidates) {
  rt_.load(test_plugin("twin"));
  try {
    (void)rt_.call("mul", {1, 2});
    FAIL();
  } catch (const AmbiguousTask& e) {
    EXPECT_NE(std::string(e.what()).find("arith.mul, twin.mul"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rt_.call("twin.mul", {1, 2}).as<int>(), -2);
  EXPECT_EQ(rt_.call("arith.mul", {1, 2}).as<int>(), 2);
}

TEST_F(RuntimeTest, WrongArgumentCountNamesTheTask) {
  RemoteError e = remote_error("mul", {1});
  EXPECT_EQ(e.code(), ErrorCode::argument);
  EXPECT_EQ(e.record().task, "arith.mul");
  EXPECT_EQ(e.record().message, "expected 2 arguments, got 1");
}

TEST_F(RuntimeTest, WrongArgumentTypeNamesPositionExpectedAndReceived) {
  RemoteError e = remote_error("mul", {5, "six"});
  EXPECT_EQ(e.code(), ErrorCode::argument);
  EXPECT_EQ(e.record().message, "argument 2 (int64): expected int64, got string");
  EXPECT_NE(std::string(e.what()).find("arith.mul"), std::string::npos) << e.what();
  RemoteError n = remote_error("mul", {5, 6.5});
  EXPECT_NE(n.record().message.find("narrowing"), std::string::npos);
  RemoteError o = remote_error("errors.small", {300});
  EXPECT_EQ(o.record().message, "argument 1 (int8): 300 does not fit in int8");
}

TEST_F(RuntimeTest, ExceptionsComeBackAsRecords) {
  RemoteError e = remote_error("fail", {"boom"});
  EXPECT_EQ(e.code(), ErrorCode::remote);
  EXPECT_EQ(e.type(), "std::invalid_argument");
  EXPECT_EQ(e.record().message, "boom");
  EXPECT_EQ(e.record().plugin, "errors");
  EXPECT_EQ(e.record().task, "errors.fail");
  EXPECT_EQ(e.engine(), 7);
  RemoteError odd = remote_error("fail_oddly", {});
  EXPECT_NE(odd.type().find("NotAStdException"), std::string::npos) << odd.type();
  RemoteError d = remote_error("divide", {1, 0});
  EXPECT_EQ(d.type(), "std::domain_error");
  // The runtime goes on after every failure.
  EXPECT_EQ(rt_.call("mul", {2, 3}).as<int>(), 6);
}

TEST_F(RuntimeTest, MapRunsOverRangesInOrder) {
  Value out = rt_.map("mul", {Range::inclusive(1, 9), Range::inclusive(2, 10)});
  EXPECT_EQ(out.repr(), "[2, 6, 12, 20, 30, 42, 56, 72, 90]");
  EXPECT_EQ(out.as_array().dtype(), DType::int64);
}

TEST_F(RuntimeTest, MapOverLargeArraysKeepsOrder) {
  const std::int64_t n = 100003;
  std::vector<std::int64_t> a(n), b(n);
  for (std::int64_t i = 0; i < n; ++i) {
    a[i] = i;
    b[i] = i + 1;
  }
  Value out = rt_.map("mul", {a, b});
  auto view = out.as_array().view<std::int64_t>();
  ASSERT_EQ(view.size(), static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    ASSERT_EQ(view[i], i * (i + 1)) << i;
}

TEST_F(RuntimeTest, MapAcceptsListsAndMixedSequences) {
  Value out = rt_.map("mul", {Value::list({1, 2, 3}), std::vector<std::int32_t>{4, 5, 6}});
  EXPECT_EQ(out.repr(), "[4, 10, 18]");
  Value strings = rt_.map("upper", {Value::list({"a", "b"})});
  EXPECT_EQ(strings.repr(), "['A', 'B']");
  EXPECT_EQ(rt_.map("mul", {Value::list({}), Value::list({})}).size(), 0u);
}

TEST_F(RuntimeTest, AMapOutputTooLargeIsRefusedBeforeAnythingIsAllocated) {
  auto refusal = [&](Runtime& rt, std::uint64_t n) {
    try {
      (void)rt.map(
          "mul", {Range{0, static_cast<std::int64_t>(n)}, Range{0, static_cast<std::int64_t>(n)}});
    } catch (const RemoteError& e) {
      EXPECT_EQ(e.record().code, ErrorCode::argument);
      return e.record().message;
    }
    return std::string("no error");
  };
  // More than the memory available (mul gives int64: 8 bytes an element).
  const auto available = available_memory();
  ASSERT_TRUE(available.has_value());
  const std::string big = refusal(rt_, *available / 8 + 1);
  EXPECT_NE(big.find("int64 elements ("), std::string::npos) << big;
  EXPECT_NE(big.find("does not fit in the memory available"), std::string::npos) << big;
  // More bytes than 64 bits count: the size is not wrapped around into a small buffer.
  const std::string huge = refusal(rt_, (std::uint64_t{1} << 61) + 1);
  EXPECT_NE(huge.find("more bytes than a computer can address"), std::string::npos) << huge;
  // Over the engine's own limit.
  TempDir store;
  Runtime capped({.threads = 2, .store_dir = store.path(), .max_map_output = 1 << 20});
  capped.load(plugin("arith"));
  const std::string over = refusal(capped, 200000);
  EXPECT_EQ(over,
            "map output of 200000 int64 elements (1.5 MiB) is more than the engine's limit of "
            "1.0 MiB (ippengine --max-map-output)");
  EXPECT_EQ(capped.map("mul", {Range{0, 1000}, Range{0, 1000}}).size(), 1000u)
      << "smaller ones run";
}

TEST(MemoryTest, SizesReadAsAPersonWritesThem) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(3 << 20), "3.0 MiB");
  EXPECT_EQ(format_bytes(std::uint64_t{800} << 30), "800.0 GiB");
  EXPECT_GT(available_memory().value_or(0), 0u);
}

TEST_F(RuntimeTest, AnUnloadedPluginsTasksAreGoneAndRunningCallsFinish) {
  auto running = std::async(std::launch::async, [&] { return rt_.call("wait_here", {0.3}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(rt_.unload("arith"));
  EXPECT_FALSE(rt_.unload("arith")) << "it is gone";
  EXPECT_THROW((void)rt_.call("mul", {2, 3}), TaskNotFound);
  EXPECT_EQ(running.get().as_int(), static_cast<std::int64_t>(::getpid()))
      << "the call that had started finished on its code";
  rt_.load(plugin("arith"));
  EXPECT_EQ(rt_.call("mul", {2, 3}).as_int(), 6) << "and it can be loaded again";
}

TEST_F(RuntimeTest, MapFailureNamesTheElement) {
  try {
    (void)rt_.map("only_even", {Range{0, 10}});
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.record().element, std::optional<std::uint64_t>(1));
    EXPECT_EQ(e.record().message, "odd input 1");
  }
}

TEST_F(RuntimeTest, MapFailureInAnArrayNamesTheElementOfTheWholeMap) {
  // An int64 array into an int64 parameter is read in place, in blocks the pool runs apart:
  // the failing element is still counted from the start of the whole sequence.
  std::vector<std::int64_t> xs(100003);
  for (std::size_t i = 0; i < xs.size(); ++i)
    xs[i] = 2 * static_cast<std::int64_t>(i);
  xs[77777] = 7;
  try {
    (void)rt_.map("only_even", {xs});
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.record().element, std::optional<std::uint64_t>(77777));
    EXPECT_EQ(e.record().message, "odd input 7");
  }
  xs[77777] = 8;
  const Value out = rt_.map("only_even", {xs});
  EXPECT_EQ(out.as_array().view<std::int64_t>()[77777], 8);
  EXPECT_EQ(out.as_array().view<std::int64_t>()[100002], 200004);
}

TEST_F(RuntimeTest, MapRefusesSequencesOfDifferentLengths) {
  try {
    (void)rt_.map("mul", {Range{0, 3}, Range{0, 4}});
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.code(), ErrorCode::argument);
    EXPECT_NE(e.record().message.find("differ in length"), std::string::npos);
  }
  EXPECT_THROW((void)rt_.map("mul", {Range{0, 3}}), RemoteError);
  EXPECT_THROW((void)rt_.map("mul", {Range{0, 3}, Value(5)}), RemoteError);
}

TEST_F(RuntimeTest, CorruptArgumentBufferIsAnErrorNotACrash) {
  Payload junk;
  junk.root = Buffer::copy("\x10\x00\x00\x00garbage-garbage-", 20);
  std::promise<TaskOutcome> done;
  rt_.submit("mul", junk, [&](TaskOutcome o) { done.set_value(std::move(o)); });
  TaskOutcome out = done.get_future().get();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error->code, ErrorCode::protocol);
  EXPECT_EQ(rt_.call("mul", {2, 3}).as<int>(), 6);
}

TEST_F(RuntimeTest, ACancelledTaskSeesItAndStops) {
  auto control = std::make_shared<TaskControl>();
  std::promise<TaskOutcome> done;
  rt_.submit(
      "sysinfo.sleep", encode(Value::list({3600.0})),
      [&](TaskOutcome o) { done.set_value(std::move(o)); }, control);
  while (control->started_us.load() == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  control->cancelled.store(true);
  TaskOutcome out = done.get_future().get();  // an hour unless the task polls the flag
  ASSERT_TRUE(out.ok());
  EXPECT_LT(decode(out.result).as<double>(), 3600.0);
}

TEST_F(RuntimeTest, ATaskCancelledBeforeItStartsDoesNotRun) {
  auto control = std::make_shared<TaskControl>();
  control->cancelled.store(true);
  rt_.load(test_plugin("types"));
  rt_.ns().set("x", 1);
  std::promise<TaskOutcome> done;
  rt_.submit(
      "t_ns_set", encode(Value::list({"x", 2})),
      [&](TaskOutcome o) { done.set_value(std::move(o)); }, control);
  TaskOutcome out = done.get_future().get();
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.error->code, ErrorCode::cancelled);
  EXPECT_EQ(out.error->type, "ipp::TaskCancelled");
  EXPECT_EQ(control->started_us.load(), 0);
  EXPECT_EQ(rt_.ns().get("x")->as<int>(), 1);  // it never ran
}

// A task is quick (it may run where it was received, waking nobody: see Executor::lead)
// once its last kQuickRuns calls each took under kQuickBelow; one slower call undoes that
// for the next kQuickRuns calls.
TEST_F(RuntimeTest, ATaskIsQuickAfterFastCallsAndNotAfterASlowOne) {
  rt_.load(test_plugin("sched"));
  const double slow = 2.0 * std::chrono::duration<double>(Runtime::kQuickBelow).count();
  EXPECT_FALSE(rt_.quick("mul_slowly"));
  for (std::uint32_t i = 0; i < Runtime::kQuickRuns; ++i) {
    EXPECT_FALSE(rt_.quick("mul_slowly")) << i;
    EXPECT_EQ(rt_.call("mul_slowly", {6, 7, 0.0}), Value(42));
  }
  // A call the machine held up past kQuickBelow only puts it off: a few more, at most.
  auto quick_soon = [&] {
    for (int i = 0; i < 100 && !rt_.quick("mul_slowly"); ++i)
      (void)rt_.call("mul_slowly", {6, 7, 0.0});
    return rt_.quick("mul_slowly");
  };
  EXPECT_TRUE(quick_soon());
  EXPECT_FALSE(rt_.quick("add"));  // each task learns on its own
  EXPECT_EQ(rt_.call("mul_slowly", {6, 7, slow}), Value(42));
  for (std::uint32_t i = 0; i + 1 < Runtime::kQuickRuns; ++i) {
    EXPECT_FALSE(rt_.quick("mul_slowly")) << i;
    EXPECT_EQ(rt_.call("mul_slowly", {6, 7, 0.0}), Value(42));
  }
  EXPECT_FALSE(rt_.quick("mul_slowly"));
  EXPECT_TRUE(quick_soon());
}

TEST_F(RuntimeTest, NamespaceIsVisibleToTasks) {
  rt_.load(test_plugin("types"));
  rt_.ns().set("x", 41);
  EXPECT_EQ(rt_.call("t_ns_get", {"x"}).as<int>(), 41);
  (void)rt_.call("t_ns_set", {"y", std::vector<double>{1, 2}});
  EXPECT_EQ(rt_.ns().get("y")->repr(), "[1.0, 2.0]");
  EXPECT_TRUE(rt_.call("t_ns_erase", {"y"}).as<bool>());
  EXPECT_FALSE(rt_.ns().get("y"));
  RemoteError e = remote_error("t_ns_get", {"missing"});
  EXPECT_NE(e.record().message.find("name 'missing' is not defined"), std::string::npos);
}

}  // namespace
}  // namespace ipp
