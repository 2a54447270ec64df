// A scheduler's book of clients: one number per route, kept once, with the latest word on
// whether the client maps shared memory.

#include "clients.hpp"

#include <gtest/gtest.h>

namespace ipp::ctrl {
namespace {

std::vector<zmq::message_t> route(std::initializer_list<std::string_view> frames) {
  std::vector<zmq::message_t> r;
  for (auto f : frames)
    r.emplace_back(f);
  return r;
}

TEST(Clients, OneNumberPerRoute) {
  Clients c;
  const auto a = c.intern(route({"client-a"}), false);
  const auto b = c.intern(route({"client-b"}), true);
  EXPECT_NE(a, b);
  EXPECT_EQ(c.intern(route({"client-a"}), false), a);
  EXPECT_EQ(c.size(), 2u);
  ASSERT_EQ(c.route(b).size(), 1u);
  EXPECT_EQ(c.route(b)[0].to_string_view(), "client-b");
}

TEST(Clients, FramesAreNotConfusedByWhereTheySplit) {
  Clients c;
  const auto one = c.intern(route({"ab", "c"}), false);
  const auto two = c.intern(route({"a", "bc"}), false);
  const auto three = c.intern(route({"abc"}), false);
  EXPECT_NE(one, two);
  EXPECT_NE(two, three);
  EXPECT_NE(one, three);
}

TEST(Clients, TheLatestMessageSaysWhetherAClientMaps) {
  Clients c;
  const auto a = c.intern(route({"a"}), true);
  EXPECT_TRUE(c.maps(a));
  EXPECT_EQ(c.intern(route({"a"}), false), a);
  EXPECT_FALSE(c.maps(a));
}

TEST(Clients, AnUnknownNumberThrows) {
  Clients c;
  EXPECT_THROW((void)c.route(0), std::out_of_range);
}

}  // namespace
}  // namespace ipp::ctrl
