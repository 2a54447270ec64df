// The hub's loop on its own thread over real inproc sockets: an engine registers and is
// announced, queries are answered, a silent engine is dropped, traffic copies are recorded,
// and at the end every engine is told to stop.

#include "hub.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "ipp/net/message.hpp"
#include "support/paths.hpp"

namespace ipp::ctrl {
namespace {

using namespace std::chrono_literals;

struct HubRig : ::testing::Test {
  test::TempDir dir;
  zmq::context_t ctx;
  net::Signer client_signer{net::Signer::new_key()};  // clients and engines: two keys
  net::Signer engine_signer{net::Signer::new_key()};
  TrafficFeed traffic;
  hub::TaskDb db{hub::TaskDb::Options{}};
  zmq::socket_t registration{ctx, zmq::socket_type::router};
  zmq::socket_t engine{ctx, zmq::socket_type::dealer};
  zmq::socket_t client{ctx, zmq::socket_type::dealer};
  zmq::socket_t events{ctx, zmq::socket_type::sub};
  zmq::socket_t silent{ctx, zmq::socket_type::push};
  zmq::socket_t wake{ctx, zmq::socket_type::push};
  ControllerOptions options;
  std::atomic<bool> stopping{false};
  std::thread thread;

  void SetUp() override {
    registration.bind("inproc://hub-registration");
    options.profile_dir = dir.path();
    options.heartbeat = 1000ms;
    std::atomic<bool> ready{false};
    thread = std::thread([&] {
      Hub hub({ctx,
               registration,
               client_signer,
               engine_signer,
               traffic,
               "inproc://hub-events",
               "inproc://hub-in",
               "inproc://hub-monitor",
               {}},
              options, &db, "instance-1", stopping);
      ready = true;
      hub.run();
    });
    while (!ready)
      std::this_thread::sleep_for(1ms);
    events.connect("inproc://hub-events");
    events.set(zmq::sockopt::subscribe, "");
    silent.connect("inproc://hub-in");
    wake.connect("inproc://hub-monitor");
    engine.connect("inproc://hub-registration");
    client.connect("inproc://hub-registration");
    std::this_thread::sleep_for(20ms);  // the subscription reaches the hub's PUB
  }
  void TearDown() override {
    stopping = true;
    thread.join();
  }

  /// The key `s` holds: the engine's or the client's.
  const net::Signer& signer_of(const zmq::socket_t& s) const {
    return &s == &engine ? engine_signer : client_signer;
  }
  std::optional<net::Header> next(zmq::socket_t& s, std::chrono::milliseconds wait = 2000ms) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) <= 0) return std::nullopt;
    auto env = net::recv(s, signer_of(s), zmq::recv_flags::dontwait);
    if (!env) return std::nullopt;
    return net::decode_header(env->parts.at(0));
  }
  std::optional<EngineEvent> next_event(std::chrono::milliseconds wait = 2000ms) {
    zmq::pollitem_t item{events.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) <= 0) return std::nullopt;
    return EngineEvent::receive(events);
  }
  net::Header query(const std::string& name, Value info = Value()) {
    net::Header h;
    h.type = net::MsgType::QueryRequest;
    h.msg_id = net::new_id();
    h.task = name;
    h.info = std::move(info);
    net::send(client, client_signer, net::make_message(h));
    auto r = next(client);
    EXPECT_TRUE(r.has_value()) << name;
    return r.value_or(net::Header{});
  }
  std::int64_t register_engine() {
    net::Header h;
    h.type = net::MsgType::RegisterRequest;
    h.msg_id = net::new_id();
    h.threads = 3;
    h.info = Value::map({{"pid", 777}});
    net::send(engine, engine_signer, net::make_message(h));
    auto r = next(engine);
    EXPECT_TRUE(r.has_value());
    return r ? r->engine : -1;
  }
};

TEST_F(HubRig, AnEngineRegistersIsAnnouncedAndListed) {
  EXPECT_EQ(register_engine(), 0);
  EXPECT_EQ(next_event(), EngineEvent::known(0));
  EXPECT_EQ(next_event(), EngineEvent::up(0, 3)) << "no plugins to wait for";
  const auto ids = query("ids");
  EXPECT_EQ(ids.info, Value::list({0}));
  EXPECT_EQ(ids.session, "instance-1");
  EXPECT_EQ(query("engines").info[0]["pid"], Value(777));
}

TEST_F(HubRig, ASilentEngineIsDroppedWithTheReason) {
  (void)register_engine();
  (void)next_event();
  (void)next_event();
  EngineEvent::silent(0).send(silent);
  EXPECT_EQ(next_event(), EngineEvent::down(0, "stopped answering heartbeats"));
  EXPECT_EQ(query("ids").info, Value::list({}));
}

TEST_F(HubRig, TrafficCopiesAreRecordedAndQueriesSeeThem) {
  (void)register_engine();
  const std::string id = net::new_id();
  net::Header s;
  s.type = net::MsgType::ApplyRequest;
  s.msg_id = id;
  s.task = "mul";
  std::vector<Traffic> batch{
      Traffic::submit(false, net::PackedMessage(net::make_message(s)), net::now_us()),
      Traffic::dispatch(*net::TaskId::parse(id), 0)};
  traffic.push(batch, wake);
  const auto status = query("queue_status");
  EXPECT_EQ(status.info["0"]["queue"], Value(1)) << "the query caught up with the copies first";
  // The database belongs to the hub's thread: read it through a query.
  const auto row = query("result", Value::map({{"msg_id", id}}));
  EXPECT_EQ(row.info["status"], Value("running"));
  EXPECT_EQ(row.info["engine"], Value(0));
}

TEST_F(HubRig, GarbageOnTheRegistrationSocketIsDroppedAndTheHubGoesOn) {
  (void)client.send(zmq::message_t(std::string_view("garbage")), zmq::send_flags::none);
  EXPECT_EQ(query("ids").info, Value::list({}));
  EXPECT_EQ(query("nope").error->message, "unknown query 'nope'");
}

TEST_F(HubRig, ShutdownTellsEveryEngineToStop) {
  (void)register_engine();
  (void)query("shutdown");
  const auto stop = next(engine);
  ASSERT_TRUE(stop.has_value());
  EXPECT_EQ(stop->type, net::MsgType::Stop);
}

TEST_F(HubRig, AnEnginesKeyMayRegisterButNotQueryPushOrShutDown) {
  (void)register_engine();
  auto as_engine = [&](net::MsgType type, const std::string& task) {
    net::Header h;
    h.type = type;
    h.msg_id = net::new_id();
    h.task = task;
    net::send(engine, engine_signer, net::make_message(h));
    while (auto r = next(engine)) {
      if (r->parent_id == h.msg_id) return *r;
    }
    ADD_FAILURE() << "no answer to " << task;
    return net::Header{};
  };
  for (const auto& [type, task] : {std::pair{net::MsgType::QueryRequest, "shutdown"},
                                   std::pair{net::MsgType::QueryRequest, "ids"},
                                   std::pair{net::MsgType::PushRequest, "arith"}}) {
    const net::Header r = as_engine(type, task);
    ASSERT_TRUE(r.error) << task;
    EXPECT_EQ(r.error->code, ErrorCode::permission) << task;
    EXPECT_NE(r.error->message.find("an engine's credentials"), std::string::npos)
        << r.error->message;
  }
  // Nothing of it happened: the hub still serves, and the engine is still there.
  EXPECT_EQ(query("ids").info, Value::list({0}));
}

TEST_F(HubRig, AClientsKeyCannotRegisterAnEngine) {
  net::Header h;
  h.type = net::MsgType::RegisterRequest;
  h.msg_id = net::new_id();
  h.threads = 1;
  h.info = Value::map({{"pid", 778}});
  net::send(client, client_signer, net::make_message(h));
  const auto r = next(client);
  ASSERT_TRUE(r.has_value()) << "answered, not left waiting";
  EXPECT_EQ(r->type, net::MsgType::RegisterReply);
  ASSERT_TRUE(r->error);
  EXPECT_EQ(r->error->code, ErrorCode::permission);
  EXPECT_NE(r->error->message.find("ipp-engine.json"), std::string::npos) << r->error->message;
  EXPECT_EQ(query("ids").info, Value::list({}));
}

TEST_F(HubRig, APluginsOutcomeOnAnEngineTellsTheSchedulersWhichTasksItHas) {
  (void)register_engine();
  (void)next_event();
  (void)next_event();
  auto loaded = [&](Value info) {
    net::Header h;
    h.type = net::MsgType::PluginLoaded;
    h.msg_id = net::new_id();
    h.parent_id = net::new_id();
    h.engine = 0;
    h.info = std::move(info);
    net::send(engine, engine_signer, net::make_message(h));
  };
  loaded(Value::map(
      {{"name", "arith"},
       {"tasks", Value::list({Value::map({{"name", "mul"}}), Value::map({{"name", "add"}})})}}));
  EXPECT_EQ(next_event(), EngineEvent::tasks(0, {"mul", "arith.mul", "add", "arith.add"}, true));
  loaded(Value::map({{"name", "arith"}, {"unloaded", true}}));
  EXPECT_EQ(next_event(), EngineEvent::tasks(0, {"mul", "arith.mul", "add", "arith.add"}, false));
}

}  // namespace
}  // namespace ipp::ctrl
