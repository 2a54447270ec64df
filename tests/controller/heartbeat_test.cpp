// The heartbeat monitor's thread over real inproc sockets: pings of registered engines are
// echoed, an unregistered engine is told so, and an engine that goes silent is reported to
// the hub.

#include "heartbeat.hpp"

#include <gtest/gtest.h>

#include <thread>

#include "ipp/net/message.hpp"

namespace ipp::ctrl {
namespace {

using namespace std::chrono_literals;

struct HeartbeatRig : ::testing::Test {
  zmq::context_t ctx;
  net::Signer signer{net::Signer::new_key()};
  zmq::socket_t socket{ctx, zmq::socket_type::router};
  zmq::socket_t events{ctx, zmq::socket_type::xpub};
  zmq::socket_t hub_in{ctx, zmq::socket_type::pull};
  zmq::socket_t engine{ctx, zmq::socket_type::dealer};
  std::atomic<bool> stopping{false};
  std::thread thread;

  void SetUp() override {
    socket.bind("inproc://heart");
    events.bind("inproc://heart-events");
    hub_in.bind("inproc://heart-hub-in");
    thread = std::thread([&] {
      Heartbeat(ctx, socket, signer, 200ms, "inproc://heart-events", "inproc://heart-hub-in")
          .run(stopping);
    });
    zmq::pollitem_t item{events.handle(), 0, ZMQ_POLLIN, 0};
    ASSERT_GT(zmq::poll(&item, 1, 2000ms), 0) << "the monitor never subscribed";
    zmq::message_t sub;
    (void)events.recv(sub);
    engine.connect("inproc://heart");
  }
  void TearDown() override {
    stopping = true;
    thread.join();
  }
  void ping(std::int64_t id) {
    net::Header h;
    h.type = net::MsgType::Ping;
    h.engine = id;
    net::send(engine, signer, net::make_message(h));
  }
  std::optional<net::Header> answer() {
    zmq::pollitem_t item{engine.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 2000ms) <= 0) return std::nullopt;
    auto env = net::recv(engine, signer);
    return env ? std::optional(net::decode_header(env->parts.at(0))) : std::nullopt;
  }
};

TEST_F(HeartbeatRig, AnUnregisteredEngineIsToldSo) {
  ping(4);
  const auto r = answer();
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->error.has_value());
  EXPECT_EQ(r->error->message, "engine 4 is not registered");
}

TEST_F(HeartbeatRig, ARegisteredEngineIsEchoedAndReportedWhenItGoesSilent) {
  EngineEvent::up(2, 1).send(events);
  // The event and the ping travel on different sockets: ping until the echo says registered.
  std::optional<net::Header> r;
  for (int i = 0; i < 50; ++i) {
    ping(2);
    r = answer();
    if (r && !r->error) break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->error.has_value()) << "echoed";
  EXPECT_EQ(r->engine, 2);
  // Then silence: reported within a few periods.
  zmq::pollitem_t item{hub_in.handle(), 0, ZMQ_POLLIN, 0};
  ASSERT_GT(zmq::poll(&item, 1, 2000ms), 0);
  EXPECT_EQ(EngineEvent::receive(hub_in), EngineEvent::silent(2));
}

}  // namespace
}  // namespace ipp::ctrl
