// The hub's recording of traffic copies into task-database rows, over the in-memory database:
// one row per task however its copies fall between flushes, statuses from errors, payloads
// kept or recorded by size, restores, bounded batches, and the engines' load changes.

#include "hub_recorder.hpp"

#include <gtest/gtest.h>

#include "ipp/codec.hpp"
#include "ipp/net/message.hpp"

namespace ipp::ctrl {
namespace {

using namespace std::chrono_literals;

struct HubRecorderTest : ::testing::Test {
  hub::TaskDb db{hub::TaskDb::Options{}};
  std::vector<std::string> looked_up;
  HubRecorder rec{&db, {.max_payload = 1 << 20}, [this](const std::string& task) {
                    looked_up.push_back(task);
                    return std::pair<std::string, std::string>("arith", "hash-of-arith");
                  }};
  std::vector<EngineLoadChange> loads;

  static Traffic submit(const std::string& id, bool balanced = true, Value args = Value(1),
                        std::int64_t received_us = 50) {
    net::Header h;
    h.type = net::MsgType::ApplyRequest;
    h.msg_id = id;
    h.task = "mul";
    h.session = "client-1";
    h.target = balanced ? -1 : 2;
    h.submitted = received_us + 3600000000;  // the client's clock, an hour ahead
    return Traffic::submit(balanced, net::PackedMessage(net::make_message(h, encode(args))),
                           received_us);
  }
  static Traffic reply(const std::string& parent, std::int64_t engine,
                       std::optional<ErrorRecord> error = std::nullopt, Value result = Value(42)) {
    net::Header h;
    h.type = net::MsgType::TaskReply;
    h.msg_id = net::new_id();
    h.parent_id = parent;
    h.engine = engine;
    h.task = "arith.mul";
    h.started = 100;
    h.completed = 200;
    h.error = std::move(error);
    return Traffic::reply(
        engine, net::PackedMessage(net::make_message(h, h.error ? Payload{} : encode(result))));
  }
  void record(const Traffic& t) { rec.record(t, loads); }
  hub::TaskRecord row(const std::string& id) {
    auto r = db.get(id);
    EXPECT_TRUE(r.has_value()) << id;
    return r ? *r : hub::TaskRecord{};
  }
};

TEST_F(HubRecorderTest, ATaskIsNeverRecordedReceivedAfterItsEngineStartedIt) {
  // The engine's start, in the controller's clock, is an estimate within half a round trip.
  const std::string fresh = net::new_id();
  record(submit(fresh, true, Value(1), 130));
  record(reply(fresh, 3));  // started at 100
  rec.flush();
  EXPECT_EQ(row(fresh).submitted, 100);
  // And when the submission was written before the reply came.
  const std::string written = net::new_id();
  record(submit(written, true, Value(1), 150));
  rec.flush();
  record(reply(written, 3));
  rec.flush();
  EXPECT_EQ(row(written).submitted, 100);
  EXPECT_EQ(row(written).task, "arith.mul");
}

TEST_F(HubRecorderTest, ATaskWithinOneFlushIsOneFinishedRow) {
  const std::string id = net::new_id();
  record(submit(id));
  record(Traffic::dispatch(*net::TaskId::parse(id), 3));
  record(reply(id, 3));
  rec.flush();
  const auto r = row(id);
  EXPECT_EQ(r.status, "ok");
  EXPECT_EQ(r.queue, "balanced");
  EXPECT_EQ(r.kind, "apply");
  EXPECT_EQ(r.task, "arith.mul");  // called by its bare name: recorded as it ran
  EXPECT_EQ(r.client, "client-1");
  EXPECT_EQ(r.engine, 3);
  EXPECT_EQ(r.plugin, "arith");
  EXPECT_EQ(r.plugin_hash, "hash-of-arith");
  EXPECT_EQ(r.started, 100);
  EXPECT_EQ(r.completed, 200);
  EXPECT_GT(r.received, 0);
  EXPECT_FALSE(r.args.empty());
  EXPECT_FALSE(r.result.empty());
  EXPECT_EQ(looked_up, std::vector<std::string>{"mul"});
}

TEST_F(HubRecorderTest, ATaskIsSubmittedWhenItsSchedulerGotItInTheControllersClock) {
  // The client's host runs an hour ahead: its stamp would put the submission after the
  // start and end the engine stamped in the controller's clock.
  const std::string id = net::new_id();
  Traffic copy = submit(id, true, Value(1), /*received_us=*/90);
  record(copy);
  record(reply(id, 3));  // started 100, completed 200
  rec.flush();
  const auto r = row(id);
  EXPECT_EQ(r.submitted, 90);
  EXPECT_LE(r.submitted, r.started);
}

TEST_F(HubRecorderTest, ATaskAcrossFlushesIsUpdatedInPlace) {
  const std::string id = net::new_id();
  record(submit(id, false));
  rec.flush();
  EXPECT_EQ(row(id).status, "pending");
  EXPECT_EQ(row(id).target, 2);
  record(Traffic::dispatch(*net::TaskId::parse(id), 2));
  rec.flush();
  EXPECT_EQ(row(id).status, "running");
  EXPECT_EQ(row(id).engine, 2);
  record(reply(id, 2, make_error_record(ErrorCode::engine, "engine 2 died", "arith.mul", 2)));
  rec.flush();
  const auto r = row(id);
  EXPECT_EQ(r.status, "engine_died");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "ipp::EngineError");
  EXPECT_EQ(r.queue, "direct") << "an update keeps what was written before";
}

TEST_F(HubRecorderTest, ErrorsGiveTheirStatus) {
  const std::pair<ErrorCode, const char*> cases[] = {{ErrorCode::aborted, "aborted"},
                                                     {ErrorCode::cancelled, "cancelled"},
                                                     {ErrorCode::remote, "error"},
                                                     {ErrorCode::timeout, "error"}};
  for (const auto& [code, status] : cases) {
    const std::string id = net::new_id();
    record(submit(id));
    record(reply(id, 0, make_error_record(code, "no")));
    rec.flush();
    EXPECT_EQ(row(id).status, status) << to_string(code);
  }
}

TEST_F(HubRecorderTest, ErrorsWithBytesThatAreNotUtf8AreRecordedReplaced) {
  const std::string id = net::new_id();
  record(submit(id));
  record(reply(id, 0, make_error_record(ErrorCode::remote, "bad \xff\xfe", "t\xc3", 0)));
  rec.flush();
  const auto r = row(id);
  EXPECT_EQ(r.status, "error");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->message, "bad \xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(r.error->task, "t\xEF\xBF\xBD");
}

TEST_F(HubRecorderTest, PayloadsLargerThanTheHubKeepsAreRecordedBySizeOnly) {
  const std::string id = net::new_id();
  record(submit(id, true, Value(std::string(2 << 20, 'x'))));
  rec.flush();
  const auto r = row(id);
  EXPECT_TRUE(r.args.empty());
  EXPECT_GT(r.args_size, 2 << 20);
}

TEST_F(HubRecorderTest, CopiesTellTheEnginesLoad) {
  const std::string id = net::new_id();
  const auto tid = *net::TaskId::parse(id);
  record(Traffic::dispatch(tid, 5));
  record(reply(id, 5));
  ASSERT_EQ(loads.size(), 2u);
  EXPECT_EQ(loads[0].kind, EngineLoadChange::Kind::dispatched);
  EXPECT_EQ(loads[0].engine, 5);
  EXPECT_EQ(loads[0].task, tid);
  EXPECT_EQ(loads[1].kind, EngineLoadChange::Kind::answered);
  EXPECT_EQ(loads[1].task, tid);
}

TEST(HubRecorderWithoutDatabase, StillTellsTheEnginesLoad) {
  HubRecorder rec(nullptr, {}, [](const std::string&) {
    ADD_FAILURE() << "no database: no plugin lookups";
    return std::pair<std::string, std::string>();
  });
  std::vector<EngineLoadChange> loads;
  const std::string id = net::new_id();
  rec.record(HubRecorderTest::submit(id), loads);
  rec.record(Traffic::dispatch(*net::TaskId::parse(id), 1), loads);
  rec.record(HubRecorderTest::reply(id, 1), loads);
  rec.flush();
  EXPECT_EQ(loads.size(), 2u);
  EXPECT_EQ(rec.fail_unfinished(), 0u);
  EXPECT_FALSE(rec.next_flush().has_value());
}

TEST_F(HubRecorderTest, ARestoreFailsWhatWasInFlightAndALateReplyRepairsIt) {
  const std::string pending = net::new_id(), running = net::new_id(), done = net::new_id();
  record(submit(pending));
  record(submit(running));
  record(Traffic::dispatch(*net::TaskId::parse(running), 1));
  record(submit(done));
  record(reply(done, 1));
  rec.flush();
  EXPECT_EQ(rec.fail_unfinished(), 2u);
  EXPECT_EQ(row(pending).status, "error");
  EXPECT_EQ(row(running).error->type, "ipp::ConnectionError");
  EXPECT_EQ(row(running).engine, 1);
  EXPECT_EQ(row(done).status, "ok");
  record(reply(running, 1));
  rec.flush();
  EXPECT_EQ(row(running).status, "ok");
  EXPECT_FALSE(row(running).error.has_value());
}

TEST_F(HubRecorderTest, ATaskARestartLostIsRecordedFailedUntilItsReplyComes) {
  const std::string known = net::new_id(), lost = net::new_id(), resent = net::new_id();
  record(submit(known));
  rec.flush();
  // What a client had in flight when it saw the restored controller.
  EXPECT_FALSE(rec.lost(*net::TaskId::parse(known), "apply", "mul", "client-1", 5));
  EXPECT_TRUE(rec.lost(*net::TaskId::parse(lost), "map", "mul", "client-1", 7));
  EXPECT_FALSE(rec.lost(*net::TaskId::parse(lost), "map", "mul", "client-1", 7)) << "once";
  EXPECT_TRUE(rec.lost(*net::TaskId::parse(resent), "shell", "mul", "client-1", 9));
  rec.flush();
  EXPECT_EQ(row(known).status, "pending") << "a task the hub knows keeps its row";
  const hub::TaskRecord r = row(lost);
  EXPECT_EQ(r.status, "error");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, ErrorCode::connection);
  EXPECT_NE(r.error->message.find("restarted"), std::string::npos) << r.error->message;
  EXPECT_EQ(r.kind, "map");
  EXPECT_EQ(r.client, "client-1");
  EXPECT_EQ(r.submitted, 7);
  EXPECT_EQ(row(resent).kind, "apply") << "a kind there is not is not recorded";
  // The engine that ran it sends its reply when it reconnects: the reply repairs the row.
  Traffic late = reply(lost, 1);
  late.late = true;
  record(late);
  // One the restored controller was given after all: recorded as usual from its copies.
  record(submit(resent));
  record(reply(resent, 2));
  rec.flush();
  EXPECT_EQ(row(lost).status, "ok");
  EXPECT_EQ(row(resent).status, "ok");
  EXPECT_EQ(row(resent).engine, 2);
}

TEST_F(HubRecorderTest, AfterARestoreARetriedTaskKeepsTheValueItsClientGot) {
  // Before the controller died, the task failed on engine 1, was retried on engine 2 and
  // gave its client a value; the hub had recorded only its submission. Both engines send
  // their replies again to the restored controller, the failure first.
  const std::string retried = net::new_id(), stale = net::new_id();
  record(submit(retried));
  record(submit(stale));
  record(reply(stale, 3, make_error_record(ErrorCode::remote, "boom")));
  rec.flush();
  EXPECT_EQ(rec.fail_unfinished(), 1u);
  Traffic failed = reply(retried, 1, make_error_record(ErrorCode::task_not_found, "no such task"));
  failed.late = true;
  record(failed);
  rec.flush();
  EXPECT_EQ(row(retried).status, "error");
  Traffic value = reply(retried, 2);
  value.late = true;
  record(value);
  rec.flush();
  EXPECT_EQ(row(retried).status, "ok");
  EXPECT_EQ(row(retried).engine, 2);
  Traffic again = reply(retried, 1, make_error_record(ErrorCode::task_not_found, "no such task"));
  again.late = true;
  record(again);
  rec.flush();
  EXPECT_EQ(row(retried).status, "ok") << "a failure never replaces a value";
  // A value late after the failure its client was told (not a late reply) changes nothing.
  Traffic late_value = reply(stale, 4);
  late_value.late = true;
  record(late_value);
  rec.flush();
  EXPECT_EQ(row(stale).status, "error");
}

TEST_F(HubRecorderTest, ABacklogIsRecordedInBoundedBatches) {
  TrafficFeed feed;
  zmq::context_t ctx;
  zmq::socket_t wake(ctx, zmq::socket_type::push);
  wake.set(zmq::sockopt::sndhwm, 0);
  wake.bind("inproc://recorder-wake");
  std::vector<Traffic> batch;
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    ids.push_back(net::new_id());
    batch.push_back(submit(ids.back()));
  }
  feed.push(batch, wake);
  rec.take(feed);
  EXPECT_EQ(rec.backlog(), 10u);
  EXPECT_TRUE(rec.record_some(3, 1h, loads));
  EXPECT_EQ(rec.backlog(), 7u);
  EXPECT_FALSE(rec.record_some(100, 1h, loads));
  EXPECT_EQ(rec.backlog(), 0u);
  rec.flush();
  for (const auto& id : ids)
    EXPECT_EQ(row(id).status, "pending");
}

TEST_F(HubRecorderTest, ACopyThatCannotBeReadIsSkipped) {
  TrafficFeed feed;
  zmq::context_t ctx;
  zmq::socket_t wake(ctx, zmq::socket_type::push);
  wake.bind("inproc://recorder-wake-2");
  net::Envelope garbage;
  garbage.parts.push_back(Buffer::copy("not a header", 12));
  const std::string good = net::new_id();
  std::vector<Traffic> batch{Traffic::submit(true, net::PackedMessage(garbage), 1), submit(good)};
  feed.push(batch, wake);
  rec.take(feed);
  EXPECT_FALSE(rec.record_some(10, 1h, loads));
  rec.flush();
  EXPECT_EQ(row(good).status, "pending");
}

TEST_F(HubRecorderTest, AFlushFallsDueByTimeOrByCount) {
  EXPECT_FALSE(rec.next_flush().has_value());
  const auto before = HubRecorder::Clock::now();
  rec.flush();
  const auto after = HubRecorder::Clock::now();
  record(submit(net::new_id()));
  ASSERT_TRUE(rec.next_flush().has_value());
  EXPECT_LE(*rec.next_flush(), after + HubRecorder::kFlushEvery);
  EXPECT_FALSE(rec.flush_due(before));
  EXPECT_TRUE(rec.flush_due(after + HubRecorder::kFlushEvery + 1ms));
  for (std::size_t i = 0; i < HubRecorder::kFlushAfter; ++i)
    record(Traffic::dispatch(net::TaskId{0, i + 1}, 0));
  EXPECT_TRUE(rec.flush_due(before)) << "by count, whatever the time";
  rec.flush();
  EXPECT_FALSE(rec.next_flush().has_value());
}

}  // namespace
}  // namespace ipp::ctrl

namespace ipp::ctrl {
namespace {

TEST_F(HubRecorderTest, WritesTheDatabaseRefusesAreKeptRetriedAndSurfaced) {
  const std::string before = net::new_id();
  record(submit(before));
  rec.flush();
  EXPECT_FALSE(rec.health().has_value()) << "all is well";
  db.limit_pages(db.page_count());  // full, as a disk can be
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(net::new_id());
    record(submit(ids.back(), true, Value(std::string(4000, 'x'))));
    record(reply(ids.back(), 1));
  }
  const auto t = HubRecorder::Clock::now();
  rec.flush(t);
  auto health = rec.health(t);
  ASSERT_TRUE(health.has_value());
  EXPECT_FALSE((*health)["ok"].as_bool());
  EXPECT_NE((*health)["error"].as_string().find("full"), std::string::npos)
      << (*health)["error"].as_string();
  EXPECT_EQ((*health)["writes_waiting"], Value(20));
  EXPECT_EQ((*health)["writes_lost"], Value(0));
  EXPECT_FALSE(db.get(ids[0]).has_value());
  EXPECT_EQ(row(before).status, "pending") << "what was written stays readable";
  // Room again: at the next try, everything kept is written.
  db.limit_pages(1 << 30);
  rec.flush(t + std::chrono::milliseconds(1));
  EXPECT_TRUE(rec.health(t).has_value()) << "not before its retry time";
  rec.flush(t + HubRecorder::kRetryMost);
  EXPECT_FALSE(rec.health().has_value());
  for (const auto& id : ids)
    EXPECT_EQ(row(id).status, "ok") << id;
}

}  // namespace
}  // namespace ipp::ctrl
