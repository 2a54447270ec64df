// The direct queue over real inproc sockets: tasks to the engine they name and replies back,
// errors for engines that are unknown, draining or dead, tasks held until an engine's hello,
// and aborts.

#include "direct_scheduler.hpp"

#include "scheduler_rig.hpp"

namespace ipp::ctrl {
namespace {

using test::SchedulerRig;
using test::turns;
using namespace std::chrono_literals;

struct DirectTest : ::testing::Test {
  SchedulerRig rig;
  DirectScheduler direct{rig.wiring(), rig.client_side, rig.engine_side};

  void SetUp() override { rig.await_subscriber(); }
  /// Engine `id` announced by the hub and connected here.
  void engine_ready(std::int64_t id) {
    rig.publish(EngineEvent::up(id, 1));
    rig.hello(id);
    turns(direct);
  }
};

TEST_F(DirectTest, ATaskGoesToItsEngineAndItsReplyBackToItsClient) {
  engine_ready(0);
  const std::string id = rig.submit(0);
  turns(direct);
  const auto got = rig.received(rig.engine(0));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].msg_id, id);
  EXPECT_EQ(direct.running(), 1u);

  rig.answer(0, id);
  turns(direct);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].parent_id, id);
  EXPECT_FALSE(back[0].error.has_value());
  EXPECT_EQ(direct.running(), 0u);

  std::vector<Traffic::Kind> kinds;
  for (const auto& t : rig.traffic.take())
    kinds.push_back(t.kind);
  EXPECT_EQ(kinds, (std::vector<Traffic::Kind>{Traffic::Kind::submit, Traffic::Kind::dispatch,
                                               Traffic::Kind::reply}));
}

TEST_F(DirectTest, AProbeNamesTheTasksItDoesNotHave) {
  engine_ready(0);
  rig.publish(EngineEvent::up(1, 1));  // announced, not connected yet: its tasks are held
  const std::string running = rig.submit(0), held = rig.submit(1);
  const std::string never = net::new_id();
  turns(direct);
  rig.control("probe", {running, held, never, "not an id"});
  turns(direct);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].type, net::MsgType::ControlReply);
  EXPECT_EQ(back[0].info["unknown"], Value(Value::List{Value(never), Value("not an id")}));
}

TEST_F(DirectTest, AnUnknownEngineFailsNamingTheRegisteredOnes) {
  engine_ready(0);
  engine_ready(2);
  const std::string id = rig.submit(5);
  turns(direct);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].parent_id, id);
  ASSERT_TRUE(back[0].error.has_value());
  EXPECT_EQ(back[0].error->code, ErrorCode::engine);
  EXPECT_EQ(back[0].error->message, "no engine 5 is registered (engines: [0, 2])");
}

TEST_F(DirectTest, ATaskForAnEngineNotYetConnectedWaitsForItsHello) {
  rig.publish(EngineEvent::up(1, 1));
  turns(direct);
  const std::string id = rig.submit(1);
  turns(direct);
  EXPECT_TRUE(rig.received(rig.engine(1), 100ms).empty());
  EXPECT_EQ(direct.running(), 0u);
  rig.hello(1);
  turns(direct);
  const auto got = rig.received(rig.engine(1));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].msg_id, id);
}

TEST_F(DirectTest, AnEngineThatDiesFailsItsTasksWithTheReason) {
  engine_ready(0);
  const std::string running = rig.submit(0);
  turns(direct);
  rig.publish(EngineEvent::down(0, "was killed by signal 9 (SIGKILL)"));
  turns(direct);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].parent_id, running);
  ASSERT_TRUE(back[0].error.has_value());
  EXPECT_EQ(back[0].error->type, "ipp::EngineError");
  EXPECT_EQ(back[0].error->message,
            "engine 0 died while running task 'arith.mul' (was killed by signal 9 (SIGKILL))");
  EXPECT_EQ(direct.running(), 0u);
}

TEST_F(DirectTest, HeldTasksOfAnEngineThatDiesFailTheyDidNotRun) {
  rig.publish(EngineEvent::up(3, 1));
  turns(direct);
  const std::string held = rig.submit(3);
  turns(direct);
  rig.publish(EngineEvent::down(3, ""));
  turns(direct);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].error->message, "engine 3 died before running task 'arith.mul'");
}

TEST_F(DirectTest, ADrainingEngineTakesNoNewTasks) {
  engine_ready(0);
  rig.publish(EngineEvent::drain(0));
  turns(direct);
  (void)rig.submit(0);
  turns(direct);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].error->message, "engine 0 is being removed and takes no new tasks");
  EXPECT_TRUE(rig.received(rig.engine(0), 50ms).empty());
}

TEST_F(DirectTest, AbortRemovesAHeldTaskAndPassesOnARunningOne) {
  engine_ready(0);
  rig.publish(EngineEvent::up(1, 1));  // no hello: its tasks are held
  turns(direct);
  const std::string running = rig.submit(0);
  const std::string held = rig.submit(1);
  turns(direct);
  (void)rig.received(rig.engine(0));
  rig.abort({running, held, "not-an-id"});
  turns(direct);

  const auto to_engine = rig.received(rig.engine(0));
  ASSERT_EQ(to_engine.size(), 1u);
  EXPECT_EQ(to_engine[0].type, net::MsgType::ControlRequest);
  EXPECT_EQ(control_ids(to_engine[0]), std::vector<std::string>{running});

  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].parent_id, held);
  EXPECT_EQ(back[0].error->type, "ipp::TaskAborted");
  EXPECT_EQ(back[1].type, net::MsgType::ControlReply);
  EXPECT_EQ(back[1].info["removed"], Value::list({held}));
  EXPECT_EQ(back[1].info["signalled"], Value::list({running}));
}

TEST_F(DirectTest, ALateReplyIsRecordedButGoesToNoClient) {
  engine_ready(0);
  const std::string stale = net::new_id();
  rig.answer(0, stale);
  turns(direct);
  EXPECT_TRUE(rig.received(rig.client, 50ms).empty());
  const auto copies = rig.traffic.take();
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].kind, Traffic::Kind::reply);
}

}  // namespace
}  // namespace ipp::ctrl
