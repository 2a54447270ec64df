// The hub's queries without sockets, over the in-memory database, a registry and a plugin
// distributor: every query name, the errors of malformed and unknown queries, and queries that
// need a database on a controller without one.

#include "hub_queries.hpp"

#include <gtest/gtest.h>

#include "ipp/codec.hpp"
#include "ipp/net/message.hpp"
#include "support/paths.hpp"

namespace ipp::ctrl {
namespace {

struct HubQueriesTest : ::testing::Test {
  test::TempDir dir;
  hub::TaskDb db{hub::TaskDb::Options{}};
  EngineRegistry registry{"session-9", std::chrono::milliseconds(1000)};
  PluginDistributor plugins{dir / "plugins", false};
  HubRecorder recorder{&db, {.max_payload = 1024}, [](const std::string&) {
                         return std::pair<std::string, std::string>();
                       }};
  int caught_up = 0, shutdowns = 0;
  std::vector<std::pair<std::int64_t, std::string>> dropped;
  std::vector<bool> crashed;
  bool with_db = true;

  HubQueries queries() {
    return HubQueries({.db = with_db ? &db : nullptr,
                       .registry = registry,
                       .plugins = plugins,
                       .recorder = recorder,
                       .catch_up = [this] { ++caught_up; },
                       .drop_engine =
                           [this](std::int64_t id, const std::string& why, bool crash) {
                             dropped.emplace_back(id, why);
                             crashed.push_back(crash);
                           },
                       .shutdown = [this] { ++shutdowns; },
                       .db_max_payload = 1024,
                       .session = "session-9"});
  }

  /// Asks `name` with `info`; returns the reply's header and payload value (null when none).
  std::pair<net::Header, Value> ask(const std::string& name, Value info = Value()) {
    net::Header h;
    h.type = net::MsgType::QueryRequest;
    h.msg_id = net::new_id();
    h.task = name;
    h.info = std::move(info);
    net::Envelope env = net::make_message(h);
    env.route.emplace_back(std::string_view("client"));
    auto q = queries();
    auto reply = q.answer(env, h);
    if (!reply) return {};
    EXPECT_EQ(reply->route[0].to_string_view(), "client");
    net::Header r = net::decode_header(reply->parts.at(0));
    EXPECT_EQ(r.parent_id, h.msg_id);
    EXPECT_EQ(r.session, "session-9");
    Payload p = net::payload_of(*reply);
    return {r, p.root.empty() ? Value() : decode(p)};
  }

  /// A finished task in the database: `args` in, `result` out (or `error`).
  std::string task(Value args, Value result, std::optional<ErrorRecord> error = std::nullopt) {
    const std::string id = net::new_id();
    net::Header s;
    s.type = net::MsgType::ApplyRequest;
    s.msg_id = id;
    s.task = "mul";
    net::Header r;
    r.type = net::MsgType::TaskReply;
    r.msg_id = net::new_id();
    r.parent_id = id;
    r.engine = 0;
    r.error = error;
    std::vector<EngineLoadChange> loads;
    recorder.record(Traffic::submit(true, net::PackedMessage(net::make_message(s, encode(args))),
                                    net::now_us()),
                    loads);
    recorder.record(Traffic::reply(0, net::PackedMessage(net::make_message(
                                          r, error ? Payload{} : encode(result)))),
                    loads);
    recorder.flush();
    return id;
  }

  std::int64_t engine(std::int64_t pid) {
    net::Header h;
    h.type = net::MsgType::RegisterRequest;
    h.msg_id = net::new_id();
    h.info = Value::map({{"pid", pid}});
    net::Envelope env = net::make_message(h);
    env.route.emplace_back(std::string_view("engine"));
    auto* e = registry.register_engine(env, h);
    registry.mark_ready(*e);
    (void)registry.take_messages();
    (void)registry.take_events();
    return e->id;
  }
};

TEST_F(HubQueriesTest, AnUnknownQueryIsAnsweredWithAnError) {
  const auto [r, v] = ask("nope");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "ipp::UsageError");
  EXPECT_EQ(r.error->message, "unknown query 'nope'");
  EXPECT_NE(HubQueries::names().find("db_query"), std::string::npos);
}

TEST_F(HubQueriesTest, EnginesIdsAndQueues) {
  const auto a = engine(100);
  (void)engine(101);
  registry.apply({EngineLoadChange::Kind::dispatched, a, net::TaskId{0, 1}});
  EXPECT_EQ(ask("ids").first.info, Value::list({0, 1}));
  EXPECT_EQ(ask("engines").first.info[1]["pid"], Value(101));
  const auto [r, v] = ask("queue_status");
  EXPECT_EQ(r.info["0"]["queue"], Value(1));
  EXPECT_EQ(caught_up, 1) << "counted from everything sent before the query";
}

TEST_F(HubQueriesTest, ResultsAndRequestsComeFromTheDatabase) {
  const std::string id = task(Value::list({6, 7}), Value(42));
  const auto [r, result] = ask("result", Value::map({{"msg_id", id}}));
  EXPECT_FALSE(r.error.has_value());
  EXPECT_EQ(r.info["status"], Value("ok"));
  EXPECT_EQ(result, Value(42));
  EXPECT_EQ(ask("request", Value::map({{"msg_id", id}})).second, Value::list({6, 7}));
  EXPECT_GE(caught_up, 2);
}

TEST_F(HubQueriesTest, AFailedTaskComesBackWithItsError) {
  const std::string id =
      task(Value(1), Value(), make_error_record(ErrorCode::remote, "boom", "arith.mul", 0));
  const auto [r, v] = ask("result", Value::map({{"msg_id", id}}));
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->message, "boom");
  EXPECT_EQ(r.info["failure"]["code"], Value(static_cast<std::int64_t>(ErrorCode::remote)));
}

TEST_F(HubQueriesTest, UnknownTasksAndPayloadsNotKeptAreNamed) {
  auto [r, v] = ask("result", Value::map({{"msg_id", "0123"}}));
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "ipp::NameError");
  EXPECT_EQ(r.error->message, "no task with msg_id '0123' in the task database");
  const std::string big = task(Value(std::string(4096, 'x')), Value(1));
  std::tie(r, v) = ask("request", Value::map({{"msg_id", big}}));
  ASSERT_TRUE(r.error.has_value());
  EXPECT_NE(r.error->message.find("larger than the hub keeps (--db-max-payload 1024)"),
            std::string::npos)
      << r.error->message;
}

TEST_F(HubQueriesTest, ResultStatusSortsTasks) {
  const std::string done = task(Value(1), Value(2));
  const auto [r, v] = ask("result_status", Value::map({{"msg_ids", Value::list({done, "gone"})}}));
  EXPECT_EQ(v["completed"], Value::list({done}));
  EXPECT_EQ(v["unknown"], Value::list({"gone"}));
  EXPECT_EQ(v["pending"], Value::list({}));
}

TEST_F(HubQueriesTest, HistoryDbQueryAndPurge) {
  const std::string a = task(Value(1), Value(2));
  const std::string b = task(Value(3), Value(4));
  EXPECT_EQ(ask("history").second, Value::list({a, b}));
  const auto rows =
      ask("db_query", Value::map({{"where", Value::list({Value::list({"msg_id", "==", b})})},
                                  {"keys", Value::list({"status"})}}))
          .second;
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["status"], Value("ok"));
  EXPECT_EQ(rows[0]["msg_id"], Value(b));
  const auto bad = ask("db_query", Value::map({{"keys", Value::list({"nonsense"})}})).first;
  ASSERT_TRUE(bad.error.has_value());
  EXPECT_EQ(bad.error->message, "unknown key 'nonsense'");
  EXPECT_EQ(ask("purge").first.error->message, "purge needs msg_ids, before or all");
  EXPECT_EQ(ask("purge", Value::map({{"msg_ids", Value::list({a})}})).first.info["purged"],
            Value(1));
  EXPECT_EQ(ask("purge", Value::map({{"all", true}})).first.info["purged"], Value(1));
}

TEST_F(HubQueriesTest, AMalformedQueryIsAnsweredSayingSo) {
  const auto [r, v] = ask("result_status", Value::map({{"msg_ids", 12}}));
  ASSERT_TRUE(r.error.has_value());
  // The conversion says what it expected; the record keeps its type.
  EXPECT_EQ(r.error->type, "ipp::ArgumentError") << r.error->message;
  EXPECT_EQ(r.error->message, "expected list[string], got int");
  // A shape no conversion checks (a list read as a row of three) is a malformed query.
  const auto [bad, _] =
      ask("db_query", Value::map({{"where", Value::list({Value::list({"status"})})}}));
  ASSERT_TRUE(bad.error.has_value());
  EXPECT_EQ(bad.error->message.rfind("malformed 'db_query' query: ", 0), 0u) << bad.error->message;
}

TEST_F(HubQueriesTest, TasksAClientLostInARestartAreRecordedOnce) {
  const std::string known = task(Value::list({2, 3}), Value(6));
  const std::string lost = net::new_id();
  auto lost_query = [&] {
    return ask("lost",
               Value::map({{"tasks", Value::list({Value::list({known, "apply", "mul", 1}),
                                                  Value::list({lost, "apply", "mul", 2})})}}));
  };
  const auto [r, v] = lost_query();
  ASSERT_FALSE(r.error.has_value()) << r.error->message;
  EXPECT_EQ(r.info["recorded"], Value(1));
  EXPECT_GE(caught_up, 1) << "what the schedulers handed over is recorded first";
  recorder.flush();
  EXPECT_EQ(db.get(lost)->status, "error");
  EXPECT_EQ(db.get(known)->status, "ok");
  EXPECT_EQ(lost_query().first.info["recorded"], Value(0));
  // Malformed: an id that is none, a name past the limit.
  for (const Value& bad : {Value::list({"not-an-id", "apply", "mul", 1}),
                           Value::list({net::new_id(), "apply", std::string(5000, 'x'), 1})}) {
    const auto [e, _] = ask("lost", Value::map({{"tasks", Value::list({bad})}}));
    ASSERT_TRUE(e.error.has_value());
    EXPECT_EQ(e.error->code, ErrorCode::usage) << e.error->message;
  }
}

TEST_F(HubQueriesTest, WithoutADatabaseTheDatabaseQueriesSaySo) {
  with_db = false;
  for (const char* name : {"result", "history", "db_query", "purge", "result_status"}) {
    const auto [r, v] = ask(name, Value::map({{"msg_id", "x"}}));
    ASSERT_TRUE(r.error.has_value()) << name;
    EXPECT_EQ(r.error->message, "this controller keeps no task database (started with --db none)");
  }
  EXPECT_EQ(ask("ids").first.info, Value::list({}));
}

TEST_F(HubQueriesTest, AnEngineThatExitedIsDroppedWithItsReason) {
  const auto id = engine(4242);
  const auto [r, v] = ask("engine_exited", Value::map({{"pid", 4242}, {"reason", "was killed"}}));
  EXPECT_EQ(r.info["engine"], Value(id));
  EXPECT_EQ(dropped, (std::vector<std::pair<std::int64_t, std::string>>{{id, "was killed"}}));
  EXPECT_EQ(crashed, std::vector<bool>{false}) << "no `crash` field: nothing is blamed";
  EXPECT_EQ(ask("engine_exited", Value::map({{"pid", 1}, {"reason", "x"}})).first.info["engine"],
            Value(-1));
}

TEST_F(HubQueriesTest, AnEngineThatCrashedIsDroppedAsCrashed) {
  const auto a = engine(4242);
  const auto b = engine(4343);
  (void)ask("engine_exited",
            Value::map({{"pid", 4242}, {"reason", "was killed by signal 11"}, {"crash", true}}));
  (void)ask("engine_exited",
            Value::map({{"pid", 4343}, {"reason", "was killed by signal 9"}, {"crash", false}}));
  EXPECT_EQ(dropped, (std::vector<std::pair<std::int64_t, std::string>>{
                         {a, "was killed by signal 11"}, {b, "was killed by signal 9"}}));
  EXPECT_EQ(crashed, (std::vector<bool>{true, false}));
}

TEST_F(HubQueriesTest, ARemovalIsAnsweredLaterAndShutdownStops) {
  const auto id = engine(1);
  net::Header h;
  h.type = net::MsgType::QueryRequest;
  h.msg_id = net::new_id();
  h.task = "remove_engines";
  h.info = Value::map({{"ids", Value::list({id})}});
  net::Envelope env = net::make_message(h);
  auto q = queries();
  EXPECT_FALSE(q.answer(env, h).has_value());
  EXPECT_EQ(registry.take_events(), std::vector<EngineEvent>{EngineEvent::drain(id)});
  const auto [r, v] = ask("remove_engines", Value::map({{"ids", Value::list({99})}}));
  ASSERT_TRUE(r.error.has_value()) << "an unknown engine is answered at once";
  (void)ask("shutdown");
  EXPECT_EQ(shutdowns, 1);
}

}  // namespace
}  // namespace ipp::ctrl
