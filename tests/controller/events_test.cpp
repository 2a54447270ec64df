// Engine events between the controller's threads: each kind round-trips through a frame and
// through a real inproc socket pair, and frames that are not events are refused.

#include "events.hpp"

#include <gtest/gtest.h>

namespace ipp::ctrl {
namespace {

TEST(EngineEvent, EveryKindSurvivesItsFrame) {
  for (const auto& e : {EngineEvent::known(0), EngineEvent::up(7, 16), EngineEvent::drain(3),
                        EngineEvent::down(12, "was killed by signal 11 (SIGSEGV)"),
                        EngineEvent::down(4, ""), EngineEvent::silent(1LL << 40)}) {
    const auto back = EngineEvent::decode(e.encode());
    ASSERT_TRUE(back.has_value()) << to_string(e.kind);
    EXPECT_EQ(*back, e) << to_string(e.kind);
  }
}

TEST(EngineEvent, ReasonsKeepArbitraryBytes) {
  const std::string reason("\xff\xfe\0tail", 7);
  const auto back = EngineEvent::decode(EngineEvent::down(2, reason).encode());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->reason, reason);
}

TEST(EngineEvent, RefusesFramesThatAreNotEvents) {
  EXPECT_FALSE(EngineEvent::decode(zmq::message_t()).has_value());
  EXPECT_FALSE(EngineEvent::decode(zmq::message_t(std::string_view("up"))).has_value());
  zmq::message_t bad_kind = EngineEvent::up(1, 1).encode();
  static_cast<std::uint8_t*>(bad_kind.data())[0] = 200;
  EXPECT_FALSE(EngineEvent::decode(bad_kind).has_value());
}

TEST(EngineEvent, TravelsInOrderOverASocketAndSkipsGarbage) {
  zmq::context_t ctx;
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.bind("inproc://events-test");
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.connect("inproc://events-test");

  EXPECT_FALSE(EngineEvent::receive(pull).has_value());  // nothing waits: no blocking
  EngineEvent::known(5).send(push);
  (void)push.send(zmq::message_t(std::string_view("garbage")), zmq::send_flags::none);
  EngineEvent::up(5, 4).send(push);
  EngineEvent::down(5, "stopped answering heartbeats").send(push);

  std::vector<EngineEvent> got;
  for (int tries = 0; tries < 1000 && got.size() < 3; ++tries) {
    if (auto e = EngineEvent::receive(pull))
      got.push_back(*e);
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], EngineEvent::known(5));
  EXPECT_EQ(got[1], EngineEvent::up(5, 4));
  EXPECT_EQ(got[2], EngineEvent::down(5, "stopped answering heartbeats"));
}

TEST(EngineEvent, ATasksEventCarriesItsNames) {
  for (const auto& e : {EngineEvent::tasks(4, {"mul", "arith.mul"}, true),
                        EngineEvent::tasks(5, {}, false), EngineEvent::tasks(6, {"x"}, false)}) {
    const auto back = EngineEvent::decode(e.encode());
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, e);
  }
}

}  // namespace
}  // namespace ipp::ctrl
