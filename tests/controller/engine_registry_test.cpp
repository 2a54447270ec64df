// The hub's engines without sockets: ids, re-registration, readiness after every plugin push,
// task counts, drops, and removals that drain, stop and answer their query.

#include "engine_registry.hpp"

#include <gtest/gtest.h>

#include "ipp/net/message.hpp"

namespace ipp::ctrl {
namespace {

using namespace std::chrono_literals;
using Clock = EngineRegistry::Clock;

net::Envelope register_request(std::int64_t pid, std::int64_t wanted = -1, int threads = 2,
                               std::string_view route = "r", const std::string& host = {}) {
  net::Header h;
  h.type = net::MsgType::RegisterRequest;
  h.msg_id = net::new_id();
  h.engine = wanted;
  h.threads = threads;
  h.info = host.empty() ? Value::map({{"pid", pid}}) : Value::map({{"pid", pid}, {"host", host}});
  net::Envelope env = net::make_message(h);
  env.route.emplace_back(route);
  return env;
}

net::Header header(const net::Envelope& env) {
  return net::decode_header(env.parts.at(0));
}

struct EngineRegistryTest : ::testing::Test {
  EngineRegistry reg{"session-1", 1500ms};

  /// Registers a process and makes it ready (no plugins to acknowledge); returns its id.
  std::int64_t ready_engine(std::int64_t pid) {
    const auto env = register_request(pid);
    auto* e = reg.register_engine(env, header(env));
    EXPECT_NE(e, nullptr);
    reg.mark_ready(*e);
    (void)reg.take_messages();
    (void)reg.take_events();
    return e->id;
  }
};

TEST_F(EngineRegistryTest, EnginesGetIdsInTurnAndAreToldTheHeartbeat) {
  for (std::int64_t i = 0; i < 3; ++i) {
    const auto env = register_request(100 + i);
    auto* e = reg.register_engine(env, header(env));
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->id, i);
    const auto out = reg.take_messages();
    ASSERT_EQ(out.size(), 1u);
    const auto r = header(out[0]);
    EXPECT_EQ(r.type, net::MsgType::RegisterReply);
    EXPECT_EQ(r.engine, i);
    EXPECT_EQ(r.info["heartbeat_ms"], Value(1500));
    EXPECT_EQ(out[0].route[0].to_string_view(), "r");
    EXPECT_EQ(reg.take_events(), std::vector<EngineEvent>{EngineEvent::known(i)});
  }
  EXPECT_EQ(reg.ready_ids(), Value::list({})) << "none acknowledged its plugins yet";
}

TEST_F(EngineRegistryTest, AnEngineIsReadyOnceItAcknowledgedEveryPush) {
  const auto env = register_request(7, -1, 4);
  auto* e = reg.register_engine(env, header(env));
  ASSERT_NE(e, nullptr);
  e->awaiting = {"push-a", "push-b"};
  reg.mark_ready(*e);
  (void)reg.take_events();
  reg.acknowledged(0, "push-a", std::nullopt);
  EXPECT_TRUE(reg.take_events().empty());
  reg.acknowledged(0, "unknown-push", std::nullopt);
  EXPECT_TRUE(reg.take_events().empty());
  reg.acknowledged(0, "push-b", make_error_record(ErrorCode::plugin_load, "bad"));
  EXPECT_EQ(reg.take_events(), std::vector<EngineEvent>{EngineEvent::up(0, 4)});
  EXPECT_EQ(reg.ready_ids(), Value::list({0}));
}

TEST_F(EngineRegistryTest, AnEngineThatRegistersAgainKeepsItsIdAndState) {
  const auto id = ready_engine(55);
  const auto again = register_request(55, id, 2, "new-route");
  EXPECT_EQ(reg.register_engine(again, header(again)), nullptr) << "not new";
  const auto out = reg.take_messages();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(header(out[0]).engine, id);
  EXPECT_EQ(out[0].route[0].to_string_view(), "new-route");
  EXPECT_EQ(reg.take_events(),
            (std::vector<EngineEvent>{EngineEvent::known(id), EngineEvent::up(id, 2)}));
  EXPECT_EQ(reg.find(id)->route[0].to_string_view(), "new-route");
}

TEST_F(EngineRegistryTest, AnIdOfAnotherProcessIsRefused) {
  const auto id = ready_engine(1);
  const auto thief = register_request(2, id);
  EXPECT_EQ(reg.register_engine(thief, header(thief)), nullptr);
  const auto out = reg.take_messages();
  ASSERT_EQ(out.size(), 1u);
  ASSERT_TRUE(header(out[0]).error.has_value());
  EXPECT_EQ(header(out[0]).error->message, "engine id 0 belongs to another process");
  EXPECT_TRUE(reg.take_events().empty());
}

TEST_F(EngineRegistryTest, AnEngineAskingForAnIdNobodyHasGetsItAndNewIdsFollow) {
  const auto env = register_request(9, 5);
  auto* e = reg.register_engine(env, header(env));
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->id, 5);
  const auto next = register_request(10);
  EXPECT_EQ(reg.register_engine(next, header(next))->id, 6);
}

TEST_F(EngineRegistryTest, TasksAreCountedPerEngine) {
  const auto id = ready_engine(1);
  const net::TaskId a{0, 1}, b{0, 2};
  reg.apply({EngineLoadChange::Kind::dispatched, id, a});
  reg.apply({EngineLoadChange::Kind::dispatched, id, b});
  reg.apply({EngineLoadChange::Kind::answered, id, a});
  reg.apply({EngineLoadChange::Kind::answered, id, a});    // twice: counted once
  reg.apply({EngineLoadChange::Kind::dispatched, 99, a});  // no such engine: ignored
  const Value status = reg.queue_status();
  EXPECT_EQ(status["0"]["queue"], Value(1));
  EXPECT_EQ(status["0"]["completed"], Value(1));
}

TEST_F(EngineRegistryTest, ADroppedEngineGoesDownWithItsReason) {
  const auto id = ready_engine(1);
  EXPECT_TRUE(reg.drop(id, "was killed by signal 11 (SIGSEGV)"));
  EXPECT_EQ(reg.take_events(),
            std::vector<EngineEvent>{EngineEvent::down(id, "was killed by signal 11 (SIGSEGV)")});
  EXPECT_FALSE(reg.drop(id, "again"));
  EXPECT_EQ(reg.find(id), nullptr);
  EXPECT_EQ(reg.by_pid(1), -1);
}

TEST_F(EngineRegistryTest, ARemovalNamesWhatIsNotRegistered) {
  (void)ready_engine(1);
  (void)ready_engine(2);
  try {
    reg.start_removal({}, "q", {1, 7}, Clock::now());
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(), "no engine 7 is registered (engines: [0, 1])");
  }
  EXPECT_THROW(reg.start_removal({}, "q", {}, Clock::now()), UsageError);
  EXPECT_TRUE(reg.take_events().empty());
}

TEST_F(EngineRegistryTest, ARemovedEngineDrainsThenStopsAndTheQueryIsAnswered) {
  const auto id = ready_engine(42);
  const auto other = ready_engine(43);
  const net::TaskId task{0, 1};
  reg.apply({EngineLoadChange::Kind::dispatched, id, task});
  const auto t0 = Clock::now();
  std::vector<zmq::message_t> client;
  client.emplace_back(std::string_view("client"));
  reg.start_removal(std::move(client), "query-1", {id}, t0);
  EXPECT_EQ(reg.take_events(), std::vector<EngineEvent>{EngineEvent::drain(id)});
  EXPECT_FALSE(reg.removal_due(t0 + 100ms)) << "within the grace period";
  ASSERT_TRUE(reg.removal_due(t0 + 300ms));
  EXPECT_TRUE(reg.stop_drained(t0 + 300ms).empty()) << "its task is not answered yet";
  reg.apply({EngineLoadChange::Kind::answered, id, task});
  EXPECT_EQ(reg.stop_drained(t0 + 400ms), std::vector<std::int64_t>{id});

  const auto out = reg.take_messages();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(header(out[0]).type, net::MsgType::Stop);
  const auto answer = header(out[1]);
  EXPECT_EQ(answer.type, net::MsgType::QueryReply);
  EXPECT_EQ(answer.parent_id, "query-1");
  EXPECT_EQ(answer.session, "session-1");
  EXPECT_EQ(answer.info["removed"][0]["id"], Value(id));
  EXPECT_EQ(answer.info["removed"][0]["pid"], Value(42));
  EXPECT_EQ(answer.info["removed"][0]["reason"], Value("was removed"));
  EXPECT_EQ(out[1].route[0].to_string_view(), "client");
  EXPECT_EQ(reg.take_events(), std::vector<EngineEvent>{EngineEvent::down(id, "was removed")});
  EXPECT_FALSE(reg.removal_due(t0 + 1s));
  EXPECT_NE(reg.find(other), nullptr);

  // It missed its Stop and asks to come back: it is told again.
  const auto back = register_request(42);
  EXPECT_EQ(reg.register_engine(back, header(back)), nullptr);
  const auto stop = reg.take_messages();
  ASSERT_EQ(stop.size(), 1u);
  EXPECT_EQ(header(stop[0]).type, net::MsgType::Stop);
}

TEST_F(EngineRegistryTest, AnEngineThatDiesWhileDrainingCompletesTheRemoval) {
  const auto id = ready_engine(5);
  reg.start_removal({}, "q", {id}, Clock::now());
  (void)reg.take_events();
  EXPECT_TRUE(reg.drop(id, "was killed by signal 9 (SIGKILL)"));
  const auto out = reg.take_messages();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(header(out[0]).info["removed"][0]["reason"], Value("was killed by signal 9 (SIGKILL)"));
}

TEST_F(EngineRegistryTest, QueriesDescribeTheEngines) {
  (void)ready_engine(11);
  const auto env = register_request(12, -1, 8);
  (void)reg.register_engine(env, header(env));  // not ready: not in ids
  EXPECT_EQ(reg.ready_ids(), Value::list({0}));
  const Value d = reg.describe();
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[1]["threads"], Value(8));
  EXPECT_EQ(d[1]["pid"], Value(12));
  EXPECT_EQ(d[1]["ready"], Value(false));
  EXPECT_EQ(reg.by_pid(12), 1);
  EXPECT_EQ(reg.stop_all().size(), 2u);
}

TEST_F(EngineRegistryTest, EnginesOnOtherHostsAreTheirHostAndPid) {
  // The same pid on two hosts: two engines, each found by its host.
  const auto a = register_request(77, -1, 2, "ra", "node-a");
  ASSERT_NE(reg.register_engine(a, header(a)), nullptr);
  const auto b = register_request(77, -1, 2, "rb", "node-b");
  ASSERT_NE(reg.register_engine(b, header(b)), nullptr);
  EXPECT_EQ(reg.by_pid(77, "node-a"), 0);
  EXPECT_EQ(reg.by_pid(77, "node-b"), 1);
  EXPECT_EQ(reg.by_pid(77, "node-c"), -1);
  const Value d = reg.describe();
  EXPECT_EQ(d[0]["host"], Value("node-a"));
  EXPECT_EQ(d[1]["host"], Value("node-b"));
  // Engine 0's id, asked for by the same pid on another host: another process.
  const auto impostor = register_request(77, 0, 2, "rc", "node-c");
  EXPECT_EQ(reg.register_engine(impostor, header(impostor)), nullptr);
  const auto msgs = reg.take_messages();
  ASSERT_FALSE(msgs.empty());
  const net::Header refused = header(msgs.back());
  ASSERT_TRUE(refused.error.has_value());
  EXPECT_NE(refused.error->message.find("belongs to another process"), std::string::npos);
}

}  // namespace
}  // namespace ipp::ctrl
