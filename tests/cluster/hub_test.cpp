// The hub's task database through real clusters: records for every kind of task, results
// from other client processes, resubmission, queries, purge, and database options.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ipp/client.hpp"
#include "ipp/net/address.hpp"
#include "ipp/net/header.hpp"
#include "support/cluster.hpp"

namespace ipp {
namespace {

using namespace std::chrono_literals;

class HubTest : public test::Cluster {
 protected:
  void start_with(int engines, const std::vector<std::string>& args = {}) {
    start(engines, 2, args);
    rc_ = std::make_unique<Client>(ClientOptions{.profile_dir = dir_.path()});
    rc_->push_plugin(test::plugin("arith"));
  }
  /// ippctl as a separate process: its stdout.
  std::string ctl(const std::string& args) {
    const test::CtlResult r = test::ippctl(dir_.path(), args);
    last_code_ = r.code;
    last_err_ = r.err;
    return r.out;
  }
  Value record(const std::string& msg_id) {
    const Value rows = rc_->db_query({{"msg_id", "==", msg_id}});
    if (rows.size() != 1) {
      ADD_FAILURE() << "no record for " << msg_id;
      return Value();
    }
    return rows[0];
  }
  std::unique_ptr<Client> rc_;
  int last_code_ = 0;
  std::string last_err_;
};

TEST_F(HubTest, RecordsEveryKindOfTask) {
  start_with(2);
  DirectView all = rc_->direct_view();
  AsyncResult direct = (*rc_)[1].apply_async("mul", {5, 6});
  AsyncResult balanced = rc_->load_balanced_view().apply_async("mul", {7, 6});
  AsyncResult mapped = all.map_async("mul", {Range{0, 4}, Range{0, 4}});
  AsyncResult failed = (*rc_)[0].apply_async("divide", {1, 0});
  AsyncResult executed = (*rc_)[0].execute("a = mul(2, 3)");
  AsyncResult pushed = (*rc_)[0].push_async({{"b", 1}});
  for (auto* r : {&direct, &balanced, &mapped, &failed, &executed, &pushed})
    r->wait(30s);
  AsyncResult pulled = (*rc_)[0].pull_async("a");
  pulled.wait(30s);

  Value rec = record(direct.msg_ids()[0]);
  EXPECT_EQ(rec["kind"], Value("apply"));
  EXPECT_EQ(rec["queue"], Value("direct"));
  EXPECT_EQ(rec["task"], Value("arith.mul"));  // called as "mul": recorded as it ran
  EXPECT_EQ(rec["plugin"], Value("arith"));
  EXPECT_EQ(rec["plugin_hash"].as_string().size(), 64u);
  EXPECT_EQ(rec["target"], Value(1));
  EXPECT_EQ(rec["engine"], Value(1));
  EXPECT_EQ(rec["status"], Value("ok"));
  EXPECT_GT(rec["args_bytes"].as_int(), 0);
  EXPECT_GT(rec["result_bytes"].as_int(), 0);
  for (const char* t : {"submitted", "started", "completed", "received"})
    EXPECT_GT(rec[t].as_int(), 0) << t;
  EXPECT_LE(rec["submitted"].as_int(), rec["started"].as_int());
  EXPECT_LE(rec["completed"].as_int(), rec["received"].as_int());

  rec = record(balanced.msg_ids()[0]);
  EXPECT_EQ(rec["queue"], Value("balanced"));
  EXPECT_EQ(rec["target"], Value(-1));
  EXPECT_GE(rec["engine"].as_int(), 0);
  EXPECT_EQ(record(mapped.msg_ids()[1])["kind"], Value("map"));
  rec = record(failed.msg_ids()[0]);
  EXPECT_EQ(rec["status"], Value("error"));
  EXPECT_EQ(rec["error"]["type"], Value("std::domain_error"));
  EXPECT_EQ(record(executed.msg_ids()[0])["kind"], Value("execute"));
  EXPECT_EQ(record(pushed.msg_ids()[0])["kind"], Value("push"));
  EXPECT_EQ(record(pulled.msg_ids()[0])["kind"], Value("pull"));
  // Every record has the same client session.
  const Value mine = rc_->db_query({{"client", "==", record(direct.msg_ids()[0])["client"]}});
  EXPECT_EQ(mine.size(), 8u);
  EXPECT_EQ(rc_->hub_history().size(), 8u);
  EXPECT_EQ(rc_->hub_history(2).back(), pulled.msg_ids()[0]);
}

TEST_F(HubTest, ResultsFromAnotherClientProcess) {
  start_with(1);
  // Submitted by one ippctl process, which exits...
  const std::string out = ctl("--json apply mul 5 6 --targets 0");
  ASSERT_EQ(last_code_, 0) << out;
  const auto msg_id = nlohmann::json::parse(out)["msg_ids"][0].get<std::string>();
  // ...and fetched by another, and by a new client library instance.
  EXPECT_EQ(ctl("result " + msg_id), "30\n");
  Client other(ClientOptions{.profile_dir = dir_.path()});
  EXPECT_EQ(other.get_result(msg_id), Value(30));
  EXPECT_EQ(other.result_status({msg_id, "nope"}).repr(),
            "{'completed': ['" + msg_id + "'], 'pending': [], 'unknown': ['nope']}");

  // A failed task raises its error again; an unknown id says so.
  const std::string bad = ctl("--json apply divide 1 0 --targets 0");
  const auto bad_id = nlohmann::json::parse(bad)["msg_ids"][0].get<std::string>();
  try {
    (void)other.get_result(bad_id);
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.type(), "std::domain_error");
  }
  (void)ctl("result " + bad_id);
  EXPECT_NE(last_err_.find("division by zero"), std::string::npos) << last_err_;
  EXPECT_EQ(last_code_, 1);
  EXPECT_THROW((void)other.get_result("no-such-id"), RemoteError);

  // A task still running: get_result waits for it (or times out).
  AsyncResult slow = (*rc_)[0].apply_async("wait_here", {0.5});
  const std::string slow_id = slow.msg_ids()[0];
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (other.result_status({slow_id})["pending"].size() == 0 && !slow.ready()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_THROW((void)other.get_result(slow_id, 10ms), TimeoutError);
  EXPECT_EQ(other.get_result(slow_id, 30s), slow.get(30s));
}

TEST_F(HubTest, ResubmitRunsAgainWithTheStoredArguments) {
  start_with(2);
  const std::string a = (*rc_)[1].apply_async("mul", {6, 7}).msg_ids()[0];
  const std::string b = rc_->load_balanced_view().apply_async("add", {1, 2}).msg_ids()[0];
  ASSERT_EQ(rc_->get_result(a, 30s), Value(42));
  ASSERT_EQ(rc_->get_result(b, 30s), Value(3));
  AsyncResult again = rc_->resubmit({a, b});
  EXPECT_EQ(again.get(30s).repr(), "[42, 3]");
  const auto ids = again.msg_ids();
  EXPECT_NE(ids[0], a);
  EXPECT_EQ(record(ids[0])["resubmitted_from"], Value(a));
  EXPECT_EQ(record(ids[0])["target"], Value(1));
  EXPECT_EQ(record(ids[1])["queue"], Value("balanced"));
  const std::string out = ctl("resubmit " + a);
  EXPECT_EQ(out, "42\n");
  EXPECT_THROW((void)rc_->resubmit({"no-such-id"}), RemoteError);
}

// A task queued before any engine exists is written as pending, and the hub then keeps little
// of it in memory; once it runs, its row is completed in place and keeps what was submitted.
TEST_F(HubTest, ARecordWrittenWhileQueuedIsCompletedInPlace) {
  start_with(0);
  const AsyncResult queued = rc_->load_balanced_view().apply_async("mul", {6, 7});
  const std::string id = queued.msg_ids()[0];
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (rc_->db_query({{"msg_id", "==", id}}).size() != 1) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "never recorded";
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(record(id)["status"], Value("pending"));
  add_engine();
  ASSERT_EQ(queued.get(30s), Value(42));
  Value r;
  while (true) {  // the hub records from copies of the traffic: it may be a moment behind
    r = record(id);
    if (r["status"] == Value("ok")) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << r.repr();
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(r["task"], Value("arith.mul"));
  EXPECT_EQ(r["queue"], Value("balanced"));
  EXPECT_EQ(r["kind"], Value("apply"));
  EXPECT_EQ(r["plugin"], Value("arith"));
  EXPECT_EQ(r["engine"], Value(0));
  EXPECT_GT(r["completed"].as_int(), 0);
  EXPECT_EQ(rc_->get_result(id), Value(42));
  EXPECT_EQ(rc_->resubmit({id}).get(30s), Value(42));  // the arguments are still there
}

TEST_F(HubTest, QueriesAndPurge) {
  start_with(1);
  for (int i = 0; i < 5; ++i)
    (void)(*rc_)[0].apply("mul", {i, 2});
  (void)(*rc_)[0].execute("x = 1").get(30s);
  ASSERT_TRUE(rc_->wait(30s));
  EXPECT_EQ(rc_->db_query({{"task", "==", "arith.mul"}}).size(), 5u);
  EXPECT_EQ(rc_->db_query({{"task", "glob", "arith.*"}}).size(), 5u);  // as the README says
  EXPECT_EQ(rc_->db_query({{"kind", "in", Value::list({"execute", "push"})}}).size(), 1u);
  EXPECT_EQ(
      rc_->db_query({{"task", "glob", "arith.m*"}}, {"status"}, 2).repr().find("'status': 'ok'") !=
          std::string::npos,
      true);
  EXPECT_EQ(rc_->db_query({}, {"status"}, 2)[0].as_map().size(), 2u);  // status and msg_id
  EXPECT_THROW((void)rc_->db_query({{"colour", "==", 1}}), UsageError);
  EXPECT_EQ(ctl("query 'task == arith.mul' --keys status --limit 3").size(),
            3 * std::string("{'msg_id': '', 'status': 'ok'}\n").size() + 3 * 32);
  EXPECT_EQ(ctl("--json history --limit 2").substr(0, 12), "{\"result\":[\"");
  (void)ctl("query 'nope == 1'");
  EXPECT_NE(last_err_.find("unknown field 'nope'"), std::string::npos) << last_err_;
  EXPECT_EQ(last_code_, 2);

  const auto first = rc_->hub_history(0).front();
  EXPECT_EQ(rc_->purge_results({first}), 1);
  EXPECT_EQ(rc_->hub_history().size(), 5u);
  EXPECT_EQ(rc_->purge_results_before(std::chrono::system_clock::now() - 1h), 0);
  EXPECT_EQ(ctl("purge --all"), "5 records removed\n");
  EXPECT_TRUE(rc_->hub_history().empty());
  EXPECT_EQ(ctl("purge"), "");
  EXPECT_EQ(last_code_, 2);
  EXPECT_NE(last_err_.find("purge takes"), std::string::npos) << last_err_;
}

// Answers that grow with the records (history, db_query, result_status) travel in the reply's
// payload: rows of more than 16 MiB come back whole, where a header past its 16 MiB limit
// would be refused by the client.
TEST_F(HubTest, QueryAnswersLargerThanAHeaderComeBackWhole) {
  start_with(1);
  rc_->push_plugin(test::plugin("errors"));
  // Tasks that fail with the longest message a reply carries: their rows add up to more than
  // a header may hold (16 MiB), so the answer travels as a payload.
  constexpr int kTasks = 300;
  const std::string message(net::kMaxErrorMessageBytes, 'x');
  std::vector<AsyncResult> results;
  std::vector<std::string> ids;
  for (int i = 0; i < kTasks; ++i) {
    results.push_back((*rc_)[0].apply_async("errors.fail", {std::to_string(i) + message}));
    ids.push_back(results.back().msg_ids()[0]);
  }
  for (auto& r : results)
    EXPECT_THROW((void)r.get(30s), RemoteError);
  // Some 20 MB of rows to read and encode: a sanitized build on a busy machine takes longer
  // than queries usually wait.
  const Client patient(ClientOptions{.profile_dir = dir_.path(), .timeout = Duration(120000)});
  const Value rows = patient.db_query({{"status", "==", "error"}});
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(kTasks));
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i]["msg_id"], Value(ids[i]));
    bytes += rows[i]["error"]["message"].as_string().size();
  }
  EXPECT_GT(bytes, std::size_t{16} << 20);
  EXPECT_EQ(patient.hub_history().size(), static_cast<std::size_t>(kTasks));
  EXPECT_EQ(patient.result_status(ids)["completed"].size(), static_cast<std::size_t>(kTasks));
  EXPECT_EQ((*rc_)[0].apply("mul", {6, 7}), Value(42));
}

TEST_F(HubTest, MemoryAndNoDatabase) {
  start_with(1, {"--db", "memory", "--db-record-limit", "3"});
  for (int i = 0; i < 6; ++i)
    (void)(*rc_)[0].apply("mul", {i, 1});
  EXPECT_EQ(rc_->hub_history().size(), 3u);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "tasks.db"));
}

TEST_F(HubTest, NoDatabaseSaysSo) {
  start_with(1, {"--db", "none"});
  const std::string id = (*rc_)[0].apply_async("mul", {1, 1}).msg_ids()[0];
  EXPECT_EQ((*rc_)[0].apply("mul", {2, 3}), Value(6));  // tasks run as usual
  try {
    (void)rc_->get_result(id);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--db none"), std::string::npos) << e.what();
  }
}

TEST(HubStart, ACorruptDatabaseStopsTheControllerWithAClearError) {
  test::TempDir dir;
  std::ofstream(dir / "tasks.db") << std::string(4096, '!');
  test::Process controller(
      {test::binary("ippcontroller"), "--profile-dir", dir.path().string(), "--log-level", "warn"});
  EXPECT_EQ(controller.wait(20s), 1);
  EXPECT_FALSE(std::filesystem::exists(dir / net::kClientFile)) << "it must not serve";
}

}  // namespace
}  // namespace ipp

namespace ipp {
namespace {

TEST_F(HubTest, ResultsAClientHadButTheHubHadNotRecordedSurviveAKillAndRestore) {
  // A hub slowed down on purpose (300 ms per copy): the results reach the client long before
  // the hub records them, and the controller is killed in between.
  start_with(1, {"--hub-delay-us", "300000"});
  std::vector<std::string> ids;
  for (int i = 1; i <= 4; ++i) {
    AsyncResult r = (*rc_)[0].apply_async("mul", {i, 10});
    EXPECT_EQ(r.get(30s), Value(i * 10));
    ids.push_back(r.msg_ids()[0]);
  }
  controller_->signal(SIGKILL);
  ASSERT_NE(controller_->wait(10s), -1);
  controller_ = std::make_unique<test::Process>(
      std::vector<std::string>{test::binary("ippcontroller"), "--profile-dir", dir_.path().string(),
                               "--heartbeat-ms", "1000", "--log-level", "warn", "--restore"});
  // The engine registers with the restored controller and sends its recent results again:
  // each task is recorded with the result its client had, none as failed by the restart.
  Client rc(ClientOptions{.profile_dir = dir_.path()});
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    while (true) {
      try {
        EXPECT_EQ(rc.get_result(ids[i], Duration(5000)),
                  Value(static_cast<std::int64_t>(i + 1) * 10))
            << ids[i];
        break;
      } catch (const Error& e) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << ids[i] << ": " << e.what();
        std::this_thread::sleep_for(50ms);
      }
    }
  }
}

TEST_F(HubTest, TasksTheDeadControllerNeverRecordedGetARowFromTheirClient) {
  // A hub slowed down on purpose (300 ms per copy): the controller dies before it recorded
  // the tasks its client sent. One task per engine thread at a time (--hwm 1): most of them
  // wait in the balanced queue, where only their client knows them once the controller died.
  start_with(1, {"--hub-delay-us", "300000", "--hwm", "1"});
  std::vector<AsyncResult> sent;
  for (int i = 0; i < 6; ++i)
    sent.push_back(rc_->load_balanced_view().apply_async("wait_here", {0.3}));
  std::this_thread::sleep_for(100ms);  // sent: two run on the engine, four wait in the queue
  controller_->signal(SIGKILL);
  ASSERT_NE(controller_->wait(10s), -1);
  controller_ = std::make_unique<test::Process>(
      std::vector<std::string>{test::binary("ippcontroller"), "--profile-dir", dir_.path().string(),
                               "--heartbeat-ms", "1000", "--log-level", "warn", "--restore"});
  // The client sees the new controller, fails what it had in flight and lists it to the hub.
  for (auto& r : sent)
    EXPECT_THROW((void)r.get(60s), ConnectionError);
  std::vector<std::string> ids;
  for (auto& r : sent)
    ids.push_back(r.msg_ids()[0]);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (true) {
    const Value status = rc_->result_status(ids);
    if (status["unknown"].size() == 0 && status["pending"].size() == 0) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "rows: " << status.repr() << " (the dead controller never recorded these)";
    std::this_thread::sleep_for(50ms);
  }
  // Each is failed by the restart, or has its result from the engine that ran it.
  for (const auto& id : ids) {
    try {
      EXPECT_EQ(rc_->get_result(id, Duration(5000)).kind(), Value::Kind::integer);
    } catch (const ConnectionError& e) {
      EXPECT_NE(std::string(e.what()).find("restarted"), std::string::npos) << e.what();
    }
  }
}

TEST_F(HubTest, AControllerKilledAndRestoredKeepsEnginesPluginsAndResults) {
  start_with(2);
  const Value pids_before = rc_->direct_view().apply("getpid");
  const std::string done = (*rc_)[1].apply_async("mul", {5, 6}).msg_ids()[0];
  ASSERT_EQ(rc_->get_result(done, 30s), Value(30));
  // A task still running on engine 0 when the controller dies.
  AsyncResult in_flight = (*rc_)[0].apply_async("wait_here", {1.5});
  const std::string running = in_flight.msg_ids()[0];
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (rc_->result_status({running})["pending"].size() == 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(10ms);
  }
  std::this_thread::sleep_for(200ms);  // it is running on the engine now

  controller_->signal(SIGKILL);
  ASSERT_NE(controller_->wait(10s), -1);
  controller_ = std::make_unique<test::Process>(
      std::vector<std::string>{test::binary("ippcontroller"), "--profile-dir", dir_.path().string(),
                               "--heartbeat-ms", "1000", "--log-level", "warn", "--restore"});

  // The old client is told its in-flight task cannot be answered, and where to look.
  try {
    (void)in_flight.get(60s);
    FAIL() << "an in-flight task after a controller restart";
  } catch (const ConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find("restarted"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(running), std::string::npos) << e.what();
  }

  // Engines come back with their ids; plugins are still pushed.
  Client rc(ClientOptions{.profile_dir = dir_.path()});
  const auto back = std::chrono::steady_clock::now() + 30s;
  while (rc.ids() != std::vector<std::int64_t>{0, 1}) {
    ASSERT_LT(std::chrono::steady_clock::now(), back) << "engines did not re-register";
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(rc.direct_view().apply("getpid"), pids_before) << "the same processes";
  EXPECT_EQ(rc.direct_view().apply("mul", {2, 3}).repr(), "[6, 6]");
  EXPECT_EQ(rc.plugins().size(), 1u);

  // What finished before the crash is still there; what was running is recorded when its
  // engine's reply arrives after it reconnected, and was run once.
  EXPECT_EQ(rc.get_result(done), Value(30));
  const auto recorded = std::chrono::steady_clock::now() + 30s;
  while (true) {
    try {
      EXPECT_EQ(rc.get_result(running).as_int(), pids_before[0].as_int());
      break;
    } catch (const ConnectionError&) {
      ASSERT_LT(std::chrono::steady_clock::now(), recorded) << "the late result never arrived";
      std::this_thread::sleep_for(50ms);
    }
  }
  EXPECT_EQ(rc.db_query({{"task", "==", "arith.wait_here"}}).size(), 1u) << "not run twice";
}

}  // namespace
}  // namespace ipp

namespace ipp {
namespace {

TEST_F(HubTest, PayloadsOverTheLimitAreRecordedBySizeOnly) {
  start_with(1, {"--db-max-payload", "4096"});
  AsyncResult echoed = (*rc_)[0].apply_async("echo", {std::vector<double>(10000, 1.5)});
  const std::string big = echoed.msg_ids()[0];
  ASSERT_EQ(echoed.get(30s).size(), 10000u);
  const std::string small = (*rc_)[0].apply_async("mul", {2, 2}).msg_ids()[0];
  ASSERT_EQ(rc_->get_result(small, 30s), Value(4));
  const Value rec = record(big);
  EXPECT_EQ(rec["status"], Value("ok"));
  EXPECT_GT(rec["args_bytes"].as_int(), 80000);
  EXPECT_GT(rec["result_bytes"].as_int(), 80000);
  EXPECT_EQ(rec["payloads_kept"], Value(false));
  EXPECT_EQ(record(small)["payloads_kept"], Value(true));
  try {
    (void)rc_->get_result(big);
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--db-max-payload 4096"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)rc_->resubmit({big}), UsageError);
}

// Large arguments and results (here through shared memory) are kept as files beside the
// database: results and resubmission read them back, and a purge removes them.
TEST_F(HubTest, LargePayloadsAreKeptAsFilesAndGoWithTheirRecords) {
  start_with(1);
  std::vector<double> big(300000);
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = 0.5 * static_cast<double>(i);
  AsyncResult echoed = (*rc_)[0].apply_async("echo", {big});
  const std::string id = echoed.msg_ids()[0];
  ASSERT_EQ(echoed.get(30s).size(), big.size());
  const Value stored = rc_->get_result(id, 30s);
  ASSERT_EQ(stored.size(), big.size());
  EXPECT_EQ(stored.as_array().view<double>()[299999], 0.5 * 299999);
  EXPECT_EQ(record(id)["payloads_kept"], Value(true));
  const auto files = dir_ / "tasks.db.payloads";
  auto count = [&] {
    std::size_t n = 0;
    if (std::filesystem::exists(files)) {
      for ([[maybe_unused]] const auto& f : std::filesystem::directory_iterator(files))
        ++n;
    }
    return n;
  };
  EXPECT_EQ(count(), 2u);  // its arguments and its result
  AsyncResult resubmitted = rc_->resubmit({id});
  const Value again = resubmitted.get(30s);
  ASSERT_EQ(again.size(), big.size());
  EXPECT_EQ(again.as_array().view<double>()[12345], 0.5 * 12345);
  // A query answers from everything recorded so far: the new record is written by then.
  EXPECT_EQ(record(resubmitted.msg_ids()[0])["status"], Value("ok"));
  EXPECT_EQ(count(), 4u);
  EXPECT_EQ(rc_->purge_all_results(), 2);
  EXPECT_EQ(count(), 0u);
  EXPECT_THROW((void)rc_->get_result(id), RemoteError);
}

}  // namespace
}  // namespace ipp

namespace ipp {
namespace {

TEST_F(HubTest, MalformedQueriesGetAnErrorAndTheHubGoesOn) {
  start_with(1);
  const std::vector<std::pair<std::string, Value>> bad = {
      {"result", Value()},
      {"result", Value::map({{"msg_id", 5}})},
      {"result_status", Value::map({{"msg_ids", "x"}})},
      {"db_query", Value::map({{"where", Value::list({1})}})},
      {"db_query", Value::map({{"where", Value::list({Value::list({"task"})})}})},
      {"db_query", Value::map({{"where", Value::list({Value::list({"task", "==", ref("x")})})}})},
      {"db_query", Value::map({{"keys", Value::list({"nope"})}})},
      {"history", Value::map({{"limit", "ten"}})},
      {"purge", Value::map({{"msg_ids", 3}})},
      {"purge", Value()},
      {"request", Value::map({{"msg_id", "unknown"}})},
  };
  for (const auto& [what, info] : bad) {
    const test::Reply r = client_->query(what, info);
    EXPECT_TRUE(r.header.error.has_value()) << what << " " << info.repr();
  }
  EXPECT_EQ((*rc_)[0].apply("mul", {6, 7}), Value(42));
  EXPECT_EQ(client_->query("ids").value.size(), 1u);
}

}  // namespace
}  // namespace ipp

namespace ipp {
namespace {

TEST_F(HubTest, BytesThatAreNotUtf8AreRecordedAndTheControllerGoesOn) {
  start_with(1);
  rc_->push_plugin(test::plugin("errors"));
  const std::string bytes = "bad \xff\xfe bytes";
  AsyncResult thrown = (*rc_)[0].apply_async("errors.fail", {bytes});
  EXPECT_THROW((void)thrown.get(10s), RemoteError);
  AsyncResult unknown = (*rc_)[0].apply_async(bytes, {1});
  EXPECT_THROW((void)unknown.get(10s), Error);
  AsyncResult statements = (*rc_)[0].execute("x\xff = 1");
  EXPECT_THROW((void)statements.get(10s), Error);
  // The controller recorded all three and still serves.
  for (const auto& id : {thrown.msg_ids()[0], unknown.msg_ids()[0], statements.msg_ids()[0]}) {
    const Value r = record(id);
    EXPECT_EQ(r["status"], Value("error")) << id;
  }
  EXPECT_EQ(record(thrown.msg_ids()[0])["error"]["message"],
            Value("bad \xEF\xBF\xBD\xEF\xBF\xBD bytes"))
      << "kept, with each byte that is not UTF-8 replaced by U+FFFD";
  EXPECT_EQ((*rc_)[0].apply("mul", {6, 7}), Value(42));
  // ippctl's JSON output copes too.
  const std::string out = ctl("--json query --limit 10");
  EXPECT_EQ(last_code_, 0) << last_err_;
  EXPECT_NE(out.find("\xEF\xBF\xBD"), std::string::npos) << "invalid bytes become U+FFFD";
}

TEST_F(HubTest, IppctlReachesAControllerItDidNotStartThroughItsConnectionFile) {
  start_with(2);  // a controller and engines started by hand: no cluster.json
  const std::string file = (dir_ / net::kClientFile).string();
  // In the profile: cluster status asks the controller, and names each engine's pid and host.
  const std::string status = ctl("cluster status");
  EXPECT_EQ(last_code_, 0) << last_err_;
  EXPECT_NE(status.find("controller at tcp://127.0.0.1:"), std::string::npos) << status;
  EXPECT_NE(status.find(fmt::format("pid {} on {}", engine_process(0).pid(), net::host_name())),
            std::string::npos)
      << status;
  // From anywhere: --file, or IPP_CONNECTION_FILE, for any subcommand.
  test::TempDir elsewhere;
  const test::CtlResult ids = test::ippctl(elsewhere.path(), "--file '" + file + "' ids");
  EXPECT_EQ(ids.code, 0) << ids.err;
  EXPECT_EQ(ids.out, "[0, 1]\n");
  const std::string cmd = "IPP_CONNECTION_FILE='" + file + "' " + test::binary("ippctl") +
                          " --profile-dir '" + elsewhere.path().string() + "' apply mul 6 7 > '" +
                          (elsewhere.path() / "out").string() + "'";
  EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 0);
  EXPECT_EQ(test::slurp(elsewhere.path() / "out"), "[42, 42]\n");
  const test::CtlResult remote =
      test::ippctl(elsewhere.path(), "--file '" + file + "' cluster status");
  EXPECT_NE(remote.out.find("2 engine(s)"), std::string::npos) << remote.out;
  // The C++ client too, when it is given no profile.
  ::setenv("IPP_CONNECTION_FILE", file.c_str(), 1);
  {
    Client from_env{ClientOptions{}};
    EXPECT_EQ(from_env.ids().size(), 2u);
    EXPECT_THROW(Client(ClientOptions{.profile_dir = elsewhere.path()}), ConnectionError)
        << "a profile given is the profile used";
  }
  ::unsetenv("IPP_CONNECTION_FILE");
  // Starting processes is for a profile on this host.
  const test::CtlResult refused =
      test::ippctl(elsewhere.path(), "--file '" + file + "' cluster start -n 1");
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("--file names a controller started elsewhere"), std::string::npos)
      << refused.err;
  // And stopping it: the controller shuts down, its engines with it.
  EXPECT_EQ(test::ippctl(elsewhere.path(), "--file '" + file + "' cluster stop").code, 0);
  EXPECT_NE(controller_->wait(std::chrono::seconds(10)), -1);
  const test::CtlResult gone =
      test::ippctl(elsewhere.path(), "--file '" + file + "' cluster status");
  EXPECT_EQ(gone.code, 3);
  EXPECT_EQ(gone.out, "no cluster running\n");
}

}  // namespace
}  // namespace ipp
