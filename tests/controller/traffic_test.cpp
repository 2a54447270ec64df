// The schedulers' feed of traffic copies to the hub: order kept, nothing dropped, and a
// wake-up only when the hub had taken everything.

#include "traffic.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace ipp::ctrl {
namespace {

net::TaskId id(std::uint64_t n) {
  return net::TaskId{0, n};
}

struct Wakes {
  zmq::context_t ctx;
  zmq::socket_t pull{ctx, zmq::socket_type::pull};
  zmq::socket_t push{ctx, zmq::socket_type::push};
  Wakes() {
    pull.bind("inproc://traffic-test");
    push.connect("inproc://traffic-test");
  }
  int count() {
    int n = 0;
    zmq::message_t m;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    while (pull.recv(m, zmq::recv_flags::dontwait))
      ++n;
    return n;
  }
};

TEST(TrafficFeed, HandsOverEverythingInOrderAndEmptiesTheBatch) {
  Wakes w;
  TrafficFeed feed;
  std::vector<Traffic> batch{Traffic::dispatch(id(1), 3), Traffic::dispatch(id(2), 4)};
  feed.push(batch, w.push);
  EXPECT_TRUE(batch.empty());
  batch = {Traffic::dispatch(id(3), 5)};
  feed.push(batch, w.push);
  const auto got = feed.take();
  ASSERT_EQ(got.size(), 3u);
  for (std::uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(got[i].kind, Traffic::Kind::dispatch);
    EXPECT_EQ(got[i].msg_id, id(i + 1));
    EXPECT_EQ(got[i].engine, static_cast<std::int32_t>(i + 3));
  }
  EXPECT_TRUE(feed.take().empty());
}

TEST(TrafficFeed, WakesTheHubOnlyWhenItHadTakenEverything) {
  Wakes w;
  TrafficFeed feed;
  std::vector<Traffic> batch{Traffic::dispatch(id(1), 0)};
  feed.push(batch, w.push);
  batch = {Traffic::dispatch(id(2), 0)};
  feed.push(batch, w.push);  // still queued: no second wake-up
  EXPECT_EQ(w.count(), 1);
  (void)feed.take();
  batch = {Traffic::dispatch(id(3), 0)};
  feed.push(batch, w.push);
  EXPECT_EQ(w.count(), 1);
}

TEST(TrafficFeed, AnEmptyBatchIsNoNews) {
  Wakes w;
  TrafficFeed feed;
  std::vector<Traffic> batch;
  feed.push(batch, w.push);
  EXPECT_EQ(w.count(), 0);
  EXPECT_TRUE(feed.take().empty());
}

TEST(TrafficFeed, LosesNothingBetweenTwoPushingThreads) {
  Wakes w;
  TrafficFeed feed;
  zmq::socket_t push2(w.ctx, zmq::socket_type::push);
  push2.connect("inproc://traffic-test");
  constexpr std::uint64_t kEach = 5000;
  std::atomic<int> finished{0};
  auto producer = [&](std::uint64_t base, zmq::socket_t& wake) {
    std::vector<Traffic> batch;
    for (std::uint64_t i = 0; i < kEach; ++i) {
      batch.push_back(Traffic::dispatch(id(base + i), 0));
      if (batch.size() == 7) feed.push(batch, wake);
    }
    feed.push(batch, wake);
    ++finished;
  };
  std::vector<std::uint64_t> seen_a, seen_b;
  auto collect = [&] {
    for (const auto& t : feed.take())
      (t.msg_id.lo < 1'000'000 ? seen_a : seen_b).push_back(t.msg_id.lo);
  };
  std::thread a(producer, 0, std::ref(w.push));
  std::thread b(producer, 1'000'000, std::ref(push2));
  while (finished.load() < 2)
    collect();  // taking while both push
  a.join();
  b.join();
  collect();
  ASSERT_EQ(seen_a.size(), kEach);
  ASSERT_EQ(seen_b.size(), kEach);
  for (std::uint64_t i = 0; i < kEach; ++i) {  // each thread's copies in its own order
    EXPECT_EQ(seen_a[i], i);
    EXPECT_EQ(seen_b[i], 1'000'000 + i);
  }
}

}  // namespace
}  // namespace ipp::ctrl
