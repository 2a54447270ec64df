// A scheduler's I/O half over real inproc sockets in one process: requests in, replies and
// tasks out in batches, errors for requests it cannot take, engines it cannot reach, engine
// events, and copies of the traffic for the hub.

#include "relay.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "ipp/net/message.hpp"

namespace ipp::ctrl {
namespace {

using namespace std::chrono_literals;

struct RelayRig {
  zmq::context_t ctx;
  TrafficFeed traffic;
  net::Signer client_signer{net::Signer::new_key()};  // clients and engines: two keys
  net::Signer engine_signer{net::Signer::new_key()};
  zmq::socket_t events{ctx, zmq::socket_type::pub};
  zmq::socket_t monitor{ctx, zmq::socket_type::pull};
  zmq::socket_t client_side{ctx, zmq::socket_type::router};
  zmq::socket_t engine_side{ctx, zmq::socket_type::router};
  zmq::socket_t client{ctx, zmq::socket_type::dealer};
  zmq::socket_t engine{ctx, zmq::socket_type::dealer};
  std::unique_ptr<Relay> relay;

  RelayRig() {
    events.bind("inproc://relay-events");
    monitor.bind("inproc://relay-monitor");
    client_side.bind("inproc://relay-clients");
    engine_side.set(zmq::sockopt::router_mandatory, true);
    engine_side.bind("inproc://relay-engines");
    relay = std::make_unique<Relay>(
        RelayWiring{ctx, traffic, nullptr, client_signer, engine_signer, "inproc://relay-events",
                    "inproc://relay-monitor", "test-instance"},
        client_side, engine_side, "test scheduler");
    client.connect("inproc://relay-clients");
    engine.set(zmq::sockopt::routing_id, std::string_view("e3"));
    engine.connect("inproc://relay-engines");
  }

  /// Polls the relay's three sockets once (up to `wait`) and hands what came to the handlers.
  template <typename OnEvent, typename OnRequest, typename OnReply>
  bool turn(OnEvent&& on_event, OnRequest&& on_request, OnReply&& on_reply,
            std::chrono::milliseconds wait = 2000ms) {
    zmq::pollitem_t items[] = {{client_side.handle(), 0, ZMQ_POLLIN, 0},
                               {engine_side.handle(), 0, ZMQ_POLLIN, 0},
                               {relay->events().handle(), 0, ZMQ_POLLIN, 0}};
    if (zmq::poll(items, 3, wait) <= 0) return false;
    relay->take(items, on_event, on_request, on_reply);
    return true;
  }

  /// Every message waiting for `peer` (a DEALER), waiting up to 2 s for the first.
  std::vector<net::Header> received(zmq::socket_t& peer) {
    std::vector<net::Envelope> in;
    zmq::pollitem_t item{peer.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 2000ms) > 0) {
      while (net::recv_all(peer, &peer == &client ? client_signer : engine_signer, in,
                           zmq::recv_flags::dontwait)) {
      }
    }
    std::vector<net::Header> out;
    for (auto& env : in)
      out.push_back(net::decode_header(env.parts.at(0)));
    return out;
  }
};

net::Header apply_request(std::string msg_id, std::int64_t target) {
  net::Header h;
  h.type = net::MsgType::ApplyRequest;
  h.msg_id = std::move(msg_id);
  h.task = "arith.mul";
  h.target = target;
  return h;
}

auto ignore = [](auto&&...) {};

TEST(Relay, ARequestComesInAndItsReplyGoesBackAtTheEndOfTheTurn) {
  RelayRig rig;
  const std::string id = net::new_id();
  net::send(rig.client, rig.client_signer, net::make_message(apply_request(id, 3)));
  std::vector<net::Header> got;
  std::uint32_t who = 0;
  ASSERT_TRUE(rig.turn(
      ignore,
      [&](net::Envelope& env, const net::Header& h) {
        who = rig.relay->book.intern(env.route, env.peer_maps);
        got.push_back(h);
        EXPECT_EQ(rig.relay->task_id(who, h, env), net::TaskId::parse(id));
        rig.relay->feed_submit(false, net::PackedMessage(env));
      },
      ignore));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].msg_id, id);

  net::Header reply;
  reply.type = net::MsgType::TaskReply;
  reply.msg_id = net::new_id();
  reply.parent_id = id;
  rig.relay->to_client(who, net::make_message(reply));
  EXPECT_TRUE(rig.relay->flush().empty());
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].parent_id, id);

  const auto copies = rig.traffic.take();
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].kind, Traffic::Kind::submit);
  zmq::message_t wake;
  EXPECT_TRUE(rig.monitor.recv(wake, zmq::recv_flags::dontwait)) << "the hub was woken";
}

TEST(Relay, ARequestWithAMalformedIdIsAnsweredWithAnError) {
  RelayRig rig;
  net::send(rig.client, rig.client_signer, net::make_message(apply_request("not-an-id", 3)));
  ASSERT_TRUE(rig.turn(
      ignore,
      [&](net::Envelope& env, const net::Header& h) {
        const auto who = rig.relay->book.intern(env.route, env.peer_maps);
        EXPECT_FALSE(rig.relay->task_id(who, h, env).has_value());
      },
      ignore));
  (void)rig.relay->flush();
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  ASSERT_TRUE(back[0].error.has_value());
  EXPECT_EQ(back[0].error->type, "ipp::UsageError");
  EXPECT_NE(back[0].error->message.find("not-an-id"), std::string::npos);
  EXPECT_EQ(back[0].parent_id, "not-an-id");
}

TEST(Relay, MessagesThatAreNotTaskRequestsAreDropped) {
  RelayRig rig;
  net::Header h;
  h.type = net::MsgType::Ping;
  h.msg_id = net::new_id();
  net::send(rig.client, rig.client_signer, net::make_message(h));
  ASSERT_TRUE(rig.turn(
      ignore,
      [&](net::Envelope& env, const net::Header& in) {
        const auto who = rig.relay->book.intern(env.route, env.peer_maps);
        EXPECT_FALSE(rig.relay->task_id(who, in, env).has_value());
      },
      ignore));
  (void)rig.relay->flush();
  EXPECT_TRUE(rig.received(rig.client).empty());
}

TEST(Relay, UnsignedGarbageIsDroppedAndTheNextRequestStillComes) {
  RelayRig rig;
  (void)rig.client.send(zmq::message_t(std::string_view("garbage")), zmq::send_flags::none);
  const std::string id = net::new_id();
  net::send(rig.client, rig.client_signer, net::make_message(apply_request(id, 0)));
  std::vector<std::string> ids;
  for (int i = 0; i < 3 && ids.empty(); ++i) {
    (void)rig.turn(
        ignore, [&](net::Envelope&, const net::Header& h) { ids.push_back(h.msg_id); }, ignore,
        500ms);
  }
  EXPECT_EQ(ids, std::vector<std::string>{id});
}

TEST(Relay, TasksGoToTheirEngineInOrderAndControlFollowsThem) {
  RelayRig rig;
  // The engine's hello makes its route known to the ROUTER.
  net::Header hello;
  hello.type = net::MsgType::Ping;
  hello.engine = 3;
  net::send(rig.engine, rig.engine_signer, net::make_message(hello));
  bool said_hello = false;
  ASSERT_TRUE(rig.turn(ignore, ignore, [&](net::Envelope& env, net::Header& h) {
    rig.relay->from_engine(env, h);
    said_hello = h.type == net::MsgType::Ping && h.engine == 3;
  }));
  ASSERT_TRUE(said_hello);
  const std::string a = net::new_id(), b = net::new_id();
  rig.relay->to_engine(3, net::TaskId::parse(a), net::make_message(apply_request(a, 3)));
  rig.relay->to_engine(3, net::TaskId::parse(b), net::make_message(apply_request(b, 3)));
  rig.relay->control_engine(3, "abort", {a});
  EXPECT_TRUE(rig.relay->flush().empty());
  const auto got = rig.received(rig.engine);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].msg_id, a);
  EXPECT_EQ(got[1].msg_id, b);
  EXPECT_EQ(got[2].type, net::MsgType::ControlRequest);
  EXPECT_EQ(got[2].task, "abort");
  EXPECT_EQ(control_ids(got[2]), std::vector<std::string>{a});
  EXPECT_EQ(rig.traffic.take().size(), 0u) << "to_engine alone records nothing";
}

TEST(Relay, TasksForAnEngineWithoutARouteComeBackAsUnreachable) {
  RelayRig rig;
  const std::string a = net::new_id();
  rig.relay->to_engine(9, net::TaskId::parse(a), net::make_message(apply_request(a, 9)));
  rig.relay->control_engine(9, "cancel", {a});  // no task of its own: not listed
  const auto lost = rig.relay->flush();
  ASSERT_EQ(lost.size(), 1u);
  EXPECT_EQ(lost[0].first, 9);
  EXPECT_EQ(lost[0].second, *net::TaskId::parse(a));
}

TEST(Relay, EngineEventsFromTheHubReachTheScheduler) {
  RelayRig rig;
  std::vector<EngineEvent> seen;
  for (int i = 0; i < 40 && seen.empty(); ++i) {
    EngineEvent::up(3, 2).send(rig.events);  // PUB drops until the subscription arrived
    (void)rig.turn([&](const EngineEvent& e) { seen.push_back(e); }, ignore, ignore, 50ms);
  }
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen[0], EngineEvent::up(3, 2));
}

TEST(Relay, AnErrorReplyIsCopiedForTheHubToo) {
  RelayRig rig;
  net::send(rig.client, rig.client_signer, net::make_message(apply_request(net::new_id(), 1)));
  std::uint32_t who = 0;
  ASSERT_TRUE(rig.turn(
      ignore,
      [&](net::Envelope& env, const net::Header&) {
        who = rig.relay->book.intern(env.route, env.peer_maps);
      },
      ignore));
  const std::string id = net::new_id();
  rig.relay->reply_error(who, id, make_error_record(ErrorCode::engine, "gone", "arith.mul", 1));
  (void)rig.relay->flush();
  const auto copies = rig.traffic.take();
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].kind, Traffic::Kind::reply);
  EXPECT_EQ(copies[0].engine, 1);
  const auto back = rig.received(rig.client);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].parent_id, id);
  EXPECT_EQ(back[0].error->type, "ipp::EngineError");
}

}  // namespace
}  // namespace ipp::ctrl
