// The load-balanced queue over real inproc sockets: tasks wait for an engine, go to one that
// is ready, come back to their client; a dead engine fails its tasks, aborts and time-outs
// answer queued tasks. The policy itself is tested in balancer_test.cpp.

#include "balanced_scheduler.hpp"

#include <set>

#include "scheduler_rig.hpp"

namespace ipp::ctrl {
namespace {

using test::SchedulerRig;
using test::turns;
using namespace std::chrono_literals;

struct BalancedTest : ::testing::Test {
  SchedulerRig rig;
  BalancedScheduler balanced{rig.wiring(), rig.client_side, rig.engine_side,
                             sched::BalancerOptions{.seed = 1}};

  void SetUp() override { rig.await_subscriber(); }
  void engine_ready(std::int64_t id, int slots = 1) {
    rig.publish(EngineEvent::up(id, slots));
    rig.hello(id);
    turns(balanced);
  }
};

TEST_F(BalancedTest, ATaskWaitsForAnEngineThenRunsAndComesBack) {
  const std::string id = rig.submit(-1);
  turns(balanced);
  EXPECT_TRUE(rig.received(rig.client, 50ms).empty()) << "no engine yet: it waits";
  engine_ready(4);
  const auto got = rig.received(rig.engine(4));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].msg_id, id);
  rig.answer(4, id);
  turns(balanced);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].parent_id, id);
  EXPECT_FALSE(back[0].error.has_value());
}

TEST_F(BalancedTest, TasksSpreadOverTheReadyEngines) {
  engine_ready(0);
  engine_ready(1);
  const std::string a = rig.submit(-1), b = rig.submit(-1);
  turns(balanced);
  const auto on0 = rig.received(rig.engine(0));
  const auto on1 = rig.received(rig.engine(1));
  ASSERT_EQ(on0.size(), 1u) << "one slot each, hwm one per slot";
  ASSERT_EQ(on1.size(), 1u);
  EXPECT_EQ((std::set<std::string>{on0[0].msg_id, on1[0].msg_id}), (std::set<std::string>{a, b}));
}

TEST_F(BalancedTest, AnEngineThatDiesFailsTheTaskItRan) {
  engine_ready(0);
  const std::string id = rig.submit(-1);
  turns(balanced);
  ASSERT_EQ(rig.received(rig.engine(0)).size(), 1u);
  rig.publish(EngineEvent::down(0, "stopped answering heartbeats"));
  turns(balanced);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].parent_id, id);
  ASSERT_TRUE(back[0].error.has_value());
  EXPECT_EQ(back[0].error->code, ErrorCode::engine);
  EXPECT_NE(back[0].error->message.find("stopped answering heartbeats"), std::string::npos);
}

TEST_F(BalancedTest, AProbeNamesTheTasksItDoesNotHaveBehindTheRepliesBeforeIt) {
  engine_ready(0);
  const std::string running = rig.submit(-1), queued = rig.submit(-1);
  const std::string never = net::new_id();
  turns(balanced);
  ASSERT_EQ(rig.received(rig.engine(0)).size(), 1u);
  rig.control("probe", {running, queued, never});
  turns(balanced);
  auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].type, net::MsgType::ControlReply);
  EXPECT_EQ(back[0].session, "test-instance") << "a restarted controller shows";
  EXPECT_EQ(back[0].info["unknown"], Value(Value::List{Value(never)}));
  // Answered: the reply went first, so a probe that finds it gone names nothing its client
  // still waits for. (A probe taken in the same turn as the reply finds the task still here.)
  rig.answer(0, running);
  turns(balanced);
  rig.control("probe", {running});
  turns(balanced);
  back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[0].parent_id, running);
  EXPECT_EQ(back[1].type, net::MsgType::ControlReply);
  EXPECT_EQ(back[1].info["unknown"], Value(Value::List{Value(running)}));
}

TEST_F(BalancedTest, AbortAnswersAQueuedTask) {
  const std::string id = rig.submit(-1);
  turns(balanced);
  rig.abort({id});
  turns(balanced);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 2u);
  // The control reply is queued at once, the task's failure when the balancer's decisions are
  // taken later in the turn: both come, in that order.
  EXPECT_EQ(back[0].type, net::MsgType::ControlReply);
  EXPECT_EQ(back[0].info["removed"], Value::list({id}));
  EXPECT_EQ(back[1].parent_id, id);
  ASSERT_TRUE(back[1].error.has_value());
  EXPECT_EQ(back[1].error->type, "ipp::TaskAborted");
}

TEST_F(BalancedTest, AQueuedTaskTimesOutWithoutEngines) {
  const std::string id = rig.submit(-1, "arith.mul", 30);
  for (int i = 0; i < 20; ++i)
    balanced.turn(10ms);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].parent_id, id);
  EXPECT_EQ(back[0].error->type, "ipp::TaskTimeout");
}

TEST_F(BalancedTest, ADuplicateMsgIdFailsAndTheFirstGoesOn) {
  engine_ready(0, 2);
  net::Header h;
  h.type = net::MsgType::ApplyRequest;
  h.msg_id = net::new_id();
  h.task = "arith.mul";
  net::send(rig.client, rig.client_signer, net::make_message(h));
  net::send(rig.client, rig.client_signer, net::make_message(h));
  turns(balanced);
  EXPECT_EQ(rig.received(rig.engine(0)).size(), 1u);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].error->type, "ipp::UsageError");
}

}  // namespace
}  // namespace ipp::ctrl
