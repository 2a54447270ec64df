// The C++ client library against a real cluster: the IPython.parallel tutorial, in C++.
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ipp/client.hpp"
#include "support/cluster.hpp"

namespace ipp {
namespace {

using namespace std::chrono_literals;

class ClientTest : public test::Cluster {
 protected:
  void start_with_arith(int engines, int threads = 2) {
    start(engines, threads);
    rc_ = std::make_unique<Client>(ClientOptions{.profile_dir = dir_.path()});
    rc_->push_plugin(test::plugin("arith"));
  }
  std::unique_ptr<Client> rc_;
};

TEST_F(ClientTest, AClientWhoseClockIsHoursAheadGetsMetadataInTheControllersClock) {
  if (!std::string(IPP_SANITIZER_FLAGS).empty())
    GTEST_SKIP() << "libfaketime is preloaded before a sanitizer's runtime, which refuses that";
  if (!std::filesystem::exists("/usr/bin/faketime")) GTEST_SKIP() << "no faketime";
  start_with_arith(1);
  // The client's clock runs two hours ahead of the controller's and the engine's.
  const auto out = dir_ / "metadata.out";
  const std::string cmd = "faketime -f +2h '" + std::string(IPP_BUILD_DIR) +
                          "/tests/bin/ipp-test-metadata' '" + dir_.path().string() + "' > '" +
                          out.string() + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << test::slurp(out);
  std::istringstream in(test::slurp(out));
  std::int64_t submitted = 0, started = 0, completed = 0, received = 0;
  ASSERT_TRUE(in >> submitted >> started >> completed >> received) << test::slurp(out);
  EXPECT_LE(submitted, started) << "the client's stamp is two hours off";
  EXPECT_LE(started, completed);
  EXPECT_LE(completed, received);
  EXPECT_LT(received - submitted, 60'000'000) << "one quick task: well under a minute";
}

TEST_F(ClientTest, WhatATaskPrintsComesBackWithItsResult) {
  start_with_arith(2);
  rc_->push_plugin(test::test_plugin("printing"));
  auto r = (*rc_)[0].apply_async("say", {"hi"});
  EXPECT_EQ(r.get().as_int(), 2);
  auto m = r.metadata().at(0);
  EXPECT_EQ(m.stdout_text, "printf hi\nputs hi\ncout hi\n");
  EXPECT_EQ(m.stderr_text, "cerr hi\n");
  // A map's blocks print from the pool's threads, into the map's output.
  auto map = (*rc_)[1].map_async("say_each", {Range{0, 200}});
  map.get();
  const std::string out = map.metadata().at(0).stdout_text;
  for (int i = 0; i < 200; ++i)
    EXPECT_NE(out.find(fmt::format("element {}\n", i)), std::string::npos) << i;
  // An execute block's calls print into the block's output.
  auto ex = (*rc_)[1].execute("import printing\nprinting.say(\"a\")\nprinting.say(\"b\")");
  ex.get();
  EXPECT_EQ(ex.metadata().at(0).stdout_text,
            "printf a\nputs a\ncout a\nprintf b\nputs b\ncout b\n");
  // Bounded: 64 KiB kept, and a note of the rest.
  auto loud = (*rc_)[0].apply_async("shout", {1000});
  loud.get();
  const std::string shouted = loud.metadata().at(0).stdout_text;
  EXPECT_LT(shouted.size(), 64 * 1024 + 100);
  EXPECT_NE(shouted.find("34464 more bytes of output were not kept"), std::string::npos);
}

TEST_F(ClientTest, TheTutorial) {
  start_with_arith(4);
  EXPECT_EQ(rc_->ids(), (std::vector<std::int64_t>{0, 1, 2, 3}));
  EXPECT_EQ((*rc_)[0].apply("mul", {5, 6}), Value(30));
  EXPECT_EQ(rc_->direct_view().apply("mul", {5, 6}).repr(), "[30, 30, 30, 30]");
  EXPECT_EQ(rc_->direct_view().map("mul", {Range::inclusive(1, 9), Range::inclusive(2, 10)}).repr(),
            "[2, 6, 12, 20, 30, 42, 56, 72, 90]");
  // Four engines wait at once: four distinct pids.
  AsyncResult r = rc_->direct_view().apply_async("wait_here", {0.5});
  Value pids = r.get(30s);
  std::set<std::int64_t> distinct;
  for (const auto& p : pids.as_list())
    distinct.insert(p.as_int());
  EXPECT_EQ(distinct.size(), 4u);
  ASSERT_EQ(r.metadata().size(), 4u);
  for (std::size_t i = 0; i < 4; ++i) {
    const TaskMetadata m = r.metadata()[i];
    EXPECT_EQ(m.engine, static_cast<std::int64_t>(i));
    EXPECT_GE(m.elapsed(), 0.5);
    EXPECT_LE(m.submitted, m.started);
    EXPECT_LE(m.completed, m.received);
  }
  EXPECT_TRUE(r.successful());
  EXPECT_EQ(r.msg_ids().size(), 4u);
}

TEST_F(ClientTest, LoadBalancedApplyAndMapKeepOrder) {
  start_with_arith(2);
  LoadBalancedView lb = rc_->load_balanced_view();
  EXPECT_EQ(lb.apply("mul", {3, 4}), Value(12));
  std::vector<std::int64_t> a(1000), b(1000);
  for (int i = 0; i < 1000; ++i) {
    a[i] = i;
    b[i] = 2;
  }
  Value out = lb.map("mul", {a, b}, 7);
  ASSERT_EQ(out.size(), 1000u);
  auto view = out.as_array().view<std::int64_t>();
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(view[i], 2 * i);
}

TEST_F(ClientTest, DirectMapSplitsUnevenSequences) {
  start_with_arith(3);
  Value out = rc_->direct_view().map("mul", {Range{0, 10}, std::vector<std::int64_t>(10, 3)});
  EXPECT_EQ(out.repr(), "[0, 3, 6, 9, 12, 15, 18, 21, 24, 27]");
  EXPECT_EQ(rc_->direct_view().map("mul", {Value::list({1, 2}), Value::list({3, 4})}).repr(),
            "[3, 8]");
}

TEST_F(ClientTest, AnOversizedTaskNameIsRefusedWhereItEntersAndNothingHangs) {
  start_with_arith(1);
  const std::string huge(10 << 20, 'n');
  // The client refuses it before sending.
  EXPECT_THROW((void)(*rc_)[0].apply_async(huge, {1}), UsageError);
  EXPECT_THROW((void)rc_->load_balanced_view().apply_async(huge, {1}), UsageError);
  // A peer that sends one anyway gets an answer from the scheduler, on both queues.
  for (const std::int64_t target : {0, -1}) {  // direct, load-balanced
    const auto reply = client_->apply(target, huge, {1, 2});
    const auto channel = target;
    ASSERT_TRUE(reply.header.error.has_value()) << channel;
    EXPECT_EQ(reply.header.error->code, ErrorCode::usage) << channel;
    EXPECT_NE(reply.header.error->message.find("task name"), std::string::npos)
        << reply.header.error->message;
    EXPECT_LT(reply.header.error->message.size(), 1000u) << "the answer does not echo it";
  }
  // Nothing is stuck: the engine's slot is free, and the engine's death later is just that.
  EXPECT_EQ(rc_->load_balanced_view().apply("mul", {6, 7}), Value(42));
  EXPECT_EQ((*rc_)[0].apply("mul", {6, 7}), Value(42));
}

TEST_F(ClientTest, AHugeErrorMessageIsCutAndStillAnswered) {
  start_with_arith(1);
  rc_->push_plugin(test::plugin("errors"));
  const std::string huge(20 << 20, 'e');  // larger than a message header may be
  for (AsyncResult r : {(*rc_)[0].apply_async("errors.fail", {huge}),
                        rc_->load_balanced_view().apply_async("errors.fail", {huge})}) {
    try {
      (void)r.get(20s);
      FAIL() << "no error";
    } catch (const RemoteError& e) {
      EXPECT_LT(e.record().message.size(), 100000u);
      EXPECT_NE(e.record().message.find("bytes cut"), std::string::npos);
      EXPECT_EQ(e.record().type, "std::invalid_argument");
    }
  }
  EXPECT_EQ((*rc_)[0].apply("mul", {6, 7}), Value(42));
}

/// The resident memory of process `pid`, in KiB.
std::int64_t resident_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

TEST_F(ClientTest, AnIdleControllerGivesMemoryBack) {
  if (std::string_view(IPP_SANITIZER_FLAGS).size() > 0)
    GTEST_SKIP() << "a sanitizer's allocator keeps its own heap, which malloc_trim does not see";
  start_with_arith(2);
  // A patient client: the hub, niced, may take a while to record a burst on a busy machine.
  Client rc(ClientOptions{.profile_dir = dir_.path(), .timeout = 90s});
  LoadBalancedView lb = rc.load_balanced_view();
  for (int round = 0; round < 2; ++round) {
    std::vector<AsyncResult> burst;
    burst.reserve(50000);
    for (int i = 0; i < 50000; ++i)
      burst.push_back(lb.apply_async("mul", {i, 2}));
    for (auto& r : burst)
      (void)r.get(90s);
  }
  (void)rc.hub_history(1);  // the hub has recorded the bursts
  const std::int64_t busy = resident_kib(controller_->pid());
  ASSERT_GT(busy, 0);
  // Within a few seconds of quiet the freed memory goes back.
  std::int64_t idle = busy;
  for (int i = 0; i < 60 && idle > busy * 8 / 10; ++i) {
    std::this_thread::sleep_for(100ms);
    idle = resident_kib(controller_->pid());
  }
  std::cout << "controller resident memory: " << busy / 1024 << " MiB after the bursts, "
            << idle / 1024 << " MiB idle\n";
  EXPECT_LT(idle, busy * 8 / 10) << "busy " << busy << " KiB, idle " << idle << " KiB";
}

TEST_F(ClientTest, RemoteFailuresAreTyped) {
  start_with_arith(2);
  try {
    (void)(*rc_)[1].apply("divide", {1, 0});
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.engine(), 1);
    EXPECT_EQ(e.type(), "std::domain_error");
  }
  try {
    (void)rc_->direct_view().apply("divide", {1, 0});
    FAIL();
  } catch (const CompositeError& e) {
    EXPECT_EQ(e.records().size(), 2u);
  }
  EXPECT_THROW((void)(*rc_)[7].apply("mul", {1, 2}), EngineError);
  EXPECT_THROW((void)(*rc_)[0].apply("nope"), RemoteError);
  EXPECT_THROW((void)rc_->direct_view().map("mul", {Range{0, 3}, Range{0, 4}}), ArgumentError);
}

TEST_F(ClientTest, GetTimesOut) {
  start_with_arith(1);
  AsyncResult r = (*rc_)[0].apply_async("wait_here", {2.0});
  EXPECT_THROW((void)r.get(50ms), TimeoutError);
  EXPECT_FALSE(r.ready());
  EXPECT_THROW((void)r.successful(), UsageError);
  EXPECT_TRUE(r.wait(30s));
  EXPECT_TRUE(rc_->wait(30s));
}

// An engine holds finished replies while tasks are queued behind them, to send them
// together; a long task next in the queue must not keep them back.
TEST_F(ClientTest, RepliesHeldForABatchDoNotWaitForALongTaskBehindThem) {
  start_with_arith(1, 1);
  DirectView e0 = (*rc_)[0];
  std::vector<AsyncResult> quick;
  for (int i = 0; i < 20; ++i)
    quick.push_back(e0.apply_async("mul", {i, 2}));
  AsyncResult slow = e0.apply_async("wait_here", {5.0});
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(quick[static_cast<std::size_t>(i)].get(4s), Value(2 * i));
  EXPECT_FALSE(slow.ready());
  EXPECT_TRUE(slow.wait(30s));
}

TEST_F(ClientTest, PushingANonPluginThrowsPluginLoadError) {
  start_with_arith(1);
  EXPECT_THROW(rc_->push_plugin(test::test_plugin("plain")), PluginLoadError);
  EXPECT_THROW(rc_->push_plugin(dir_ / "missing.so"), PluginLoadError);
  // A directory is named as one, not as a library's stream error.
  std::filesystem::create_directories(dir_ / "folder.so");
  try {
    rc_->push_plugin(dir_ / "folder.so");
    FAIL() << "pushed a directory";
  } catch (const PluginLoadError& e) {
    EXPECT_NE(std::string(e.what()).find("folder.so' is a directory"), std::string::npos)
        << e.what();
    EXPECT_EQ(std::string(e.what()).find("basic_filebuf"), std::string::npos) << e.what();
  }
}

TEST_F(ClientTest, HotReloadOnTheCluster) {
  start_with_arith(2);
  rc_->push_plugin(test::test_plugin("reload_v1"));
  EXPECT_EQ(rc_->direct_view().apply("reload.version").repr(), "[1, 1]");
  AsyncResult in_flight = (*rc_)[0].apply_async("slow_version", {1.0});
  rc_->push_plugin(test::test_plugin("reload_v2"));
  EXPECT_EQ(rc_->direct_view().apply("reload.version").repr(), "[2, 2]");
  EXPECT_EQ(in_flight.get(30s), Value(1));  // finished on the build it started with
  const Value plugins = rc_->plugins();
  ASSERT_EQ(plugins.size(), 3u);
  EXPECT_EQ(plugins[2]["version"], Value("2.0.0"));
  EXPECT_EQ(plugins[2]["tasks"][0]["signature"], Value("version() -> int64"));
}

TEST_F(ClientTest, NoEnginesRegisteredIsAClearError) {
  start(0);
  Client rc(ClientOptions{.profile_dir = dir_.path()});
  EXPECT_TRUE(rc.ids().empty());
  try {
    (void)rc.direct_view().apply("mul", {1, 2});
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "this view has no engines");
  }
  try {
    (void)rc[0].apply("mul", {1, 2});
    FAIL();
  } catch (const EngineError& e) {
    EXPECT_NE(std::string(e.what()).find("no engine 0 is registered (engines: [])"),
              std::string::npos);
  }
  const std::string cmd = std::string(IPP_BUILD_DIR) + "/bin/ippctl --profile-dir '" +
                          dir_.path().string() + "' apply mul 1 2 2> '" +
                          (dir_ / "err.txt").string() + "'";
  const int status = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::ifstream err(dir_ / "err.txt");
  const std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("no engines are registered"), std::string::npos) << text;
}

TEST(ClientNoController, FailsWithAClearError) {
  test::TempDir dir;
  try {
    Client rc(ClientOptions{.profile_dir = dir.path()});
    FAIL();
  } catch (const ConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find("is a controller running"), std::string::npos);
  }
}

TEST_F(ClientTest, ControllerGoneFailsWithinTheTimeout) {
  start(1);
  Client rc(ClientOptions{.profile_dir = dir_.path(), .timeout = 500ms});
  controller_->signal(SIGKILL);
  controller_->wait(5s);
  EXPECT_THROW((void)rc.ids(), ConnectionError);
}

TEST_F(ClientTest, TasksInFlightFailWhenTheControllerDies) {
  start(1);
  Client rc(ClientOptions{.profile_dir = dir_.path(), .timeout = 2000ms});
  rc.push_plugin(test::plugin("arith"));
  AsyncResult r = rc[0].apply_async("wait_here", {60.0});
  std::this_thread::sleep_for(100ms);
  controller_->signal(SIGKILL);
  EXPECT_THROW((void)r.get(), ConnectionError);  // no timeout given: the client notices by itself
}

// apply_sync goes on a connection of the calling thread's own: threads calling at once each
// get their own answers, through both schedulers.
TEST_F(ClientTest, SynchronousCallsFromManyThreadsGetTheirOwnResults) {
  start_with_arith(2);
  DirectView e1 = (*rc_)[1];
  LoadBalancedView lb = rc_->load_balanced_view();
  std::atomic<int> right{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const std::int64_t k = t * 1000 + i;
        if (e1.apply_sync("add", {k, 1}) == Value(k + 1)) ++right;
        if (lb.apply_sync("mul", {k, 2}) == Value(k * 2)) ++right;
      }
    });
  }
  for (auto& c : callers)
    c.join();
  EXPECT_EQ(right.load(), 800);
  // The usual way still works beside it, and failures still come back typed.
  EXPECT_EQ(e1.apply_async("add", {2, 3}).get(), Value(5));
  EXPECT_THROW((void)e1.apply_sync("no_such_task"), RemoteError);
  EXPECT_THROW((void)lb.apply_sync("no_such_task"), RemoteError);
}

// A synchronous call made while earlier requests are still on their way must not overtake
// them: the engine sees it after what was sent before.
TEST_F(ClientTest, ASynchronousCallDoesNotOvertakeRequestsInFlight) {
  start_with_arith(1);
  DirectView e0 = (*rc_)[0];
  for (int round = 0; round < 5; ++round) {
    e0["count"] = 0;
    constexpr int kIncrements = 50;
    std::vector<AsyncResult> increments;
    for (int k = 0; k < kIncrements; ++k)
      increments.push_back(e0.execute("count = add(count, 1)"));
    EXPECT_EQ(e0.apply_sync("add", {ref("count"), 0}), Value(kIncrements)) << "round " << round;
    for (auto& r : increments)
      r.get(60s);
  }
}

TEST_F(ClientTest, ASynchronousCallFailsWhenTheControllerDies) {
  start(1);
  Client rc(ClientOptions{.profile_dir = dir_.path(), .timeout = 2000ms});
  rc.push_plugin(test::plugin("arith"));
  DirectView e0 = rc[0];
  auto call = std::async(std::launch::async, [&] { return e0.apply_sync("wait_here", {60.0}); });
  std::this_thread::sleep_for(300ms);
  controller_->signal(SIGKILL);
  ASSERT_EQ(call.wait_for(30s), std::future_status::ready) << "apply_sync did not return";
  EXPECT_THROW((void)call.get(), ConnectionError);
}

}  // namespace
}  // namespace ipp

namespace ipp {
namespace {

TEST_F(ClientTest, BalancedTasksWaitForEnginesUpToTheirTimeout) {
  start(0);
  Client rc(ClientOptions{.profile_dir = dir_.path()});
  LoadBalancedView lb = rc.load_balanced_view();
  // No engine: a task with a timeout fails with TaskTimeout, having never run...
  AsyncResult impatient =
      lb.with({.timeout = std::chrono::milliseconds(300)}).apply_async("getpid");
  // ...one without waits, and runs once an engine arrives.
  AsyncResult patient = lb.apply_async("getpid");
  try {
    (void)impatient.get(30s);
    FAIL() << "no TaskTimeout";
  } catch (const TaskTimeout& e) {
    EXPECT_NE(std::string(e.what()).find("waited 300 ms"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(patient.ready());
  add_engine();
  wait_for_engines(1);
  EXPECT_EQ(patient.get(30s).as_int(), engine_process(0).pid());
  // With a free engine the timeout does not matter.
  EXPECT_EQ(lb.with({.timeout = std::chrono::milliseconds(1)}).apply("getpid").as_int(),
            engine_process(0).pid());
}

}  // namespace
}  // namespace ipp
