// The one answer to "may engine N take a task here?": announced by the hub, said hello on the
// scheduler's channel, not being removed; in whichever order the two arrive.

#include "engine_gate.hpp"

#include <gtest/gtest.h>

namespace ipp::ctrl {
namespace {

using V = EngineGate::Verdict;

TEST(EngineGate, AnEngineNobodyAnnouncedIsUnknown) {
  EngineGate g;
  EXPECT_EQ(g.check(0), V::unknown);
  EXPECT_FALSE(g.reachable(0));
  EXPECT_EQ(g.registered_ids(), "");
}

TEST(EngineGate, UsableOnceAnnouncedAndConnectedInEitherOrder) {
  EngineGate g;
  EXPECT_FALSE(g.up(1, 4)) << "no hello yet";
  EXPECT_EQ(g.check(1), V::not_connected);
  EXPECT_TRUE(g.hello(1));
  EXPECT_EQ(g.check(1), V::usable);

  EXPECT_FALSE(g.hello(2)) << "not announced yet";
  EXPECT_EQ(g.check(2), V::unknown) << "a hello alone makes no engine";
  EXPECT_TRUE(g.up(2, 1));
  EXPECT_EQ(g.check(2), V::usable);
  EXPECT_EQ(g.registered_ids(), "1, 2");
}

TEST(EngineGate, SlotsAreAtLeastOne) {
  EngineGate g;
  (void)g.up(1, 8);
  (void)g.up(2, 0);
  (void)g.up(3, -5);
  EXPECT_EQ(g.slots(1), 8);
  EXPECT_EQ(g.slots(2), 1);
  EXPECT_EQ(g.slots(3), 1);
  EXPECT_EQ(g.slots(99), 1);
}

TEST(EngineGate, ADrainingEngineTakesNothingNewButStaysReachable) {
  EngineGate g;
  (void)g.up(1, 1);
  (void)g.hello(1);
  g.drain(1);
  EXPECT_EQ(g.check(1), V::draining);
  EXPECT_TRUE(g.reachable(1)) << "what it accepted before may still go";
  (void)g.up(1, 1);  // announced again: the drain is over
  EXPECT_EQ(g.check(1), V::usable);
}

TEST(EngineGate, DrainingComesBeforeNotConnected) {
  EngineGate g;
  (void)g.up(1, 1);
  g.drain(1);
  EXPECT_EQ(g.check(1), V::draining);
  g.drain(7);  // unknown: nothing to drain
  EXPECT_EQ(g.check(7), V::unknown);
}

TEST(EngineGate, AnEngineDownIsForgottenUntilItComesBack) {
  EngineGate g;
  (void)g.up(3, 2);
  (void)g.hello(3);
  EXPECT_TRUE(g.down(3));
  EXPECT_FALSE(g.down(3));
  EXPECT_EQ(g.check(3), V::unknown);
  EXPECT_FALSE(g.reachable(3));
  EXPECT_FALSE(g.up(3, 2)) << "a new registration needs a new hello";
  EXPECT_TRUE(g.hello(3));
  EXPECT_EQ(g.check(3), V::usable);
}

}  // namespace
}  // namespace ipp::ctrl
