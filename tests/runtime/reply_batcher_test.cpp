// The engine's sending of replies, over real ZeroMQ sockets (inproc) to a router standing for
// the schedulers: a reply goes at once when nothing waits behind it, is held for company while
// tasks are queued and the receiving loop comes back soon, never while that loop sleeps; a
// full batch goes; replies sent lately are kept (small ones only) and sent again.
#include "engine/reply_batcher.hpp"

#include <atomic>

#include <gtest/gtest.h>

#include "ipp/codec.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"
#include "ipp/net/shm.hpp"

namespace ipp::engine {
namespace {

using namespace std::chrono_literals;

class ReplyBatcherTest : public ::testing::Test {
 protected:
  ReplyBatcherTest() {
    router_.bind("inproc://schedulers");
    for (int c = 0; c < 2; ++c) {
      out_[c].set(zmq::sockopt::routing_id, c == 0 ? "direct" : "balanced");
      out_[c].set(zmq::sockopt::linger, 0);
      out_[c].connect("inproc://schedulers");
    }
  }

  static net::Envelope reply(const std::string& parent, std::size_t result_bytes = 8) {
    net::Header h;
    h.type = net::MsgType::TaskReply;
    h.msg_id = net::new_id();
    h.parent_id = parent;
    return net::make_message(h, encode(Value(std::string(result_bytes, 'x'))));
  }

  /// The messages the router has now, each as the channel it came on and its replies' parents.
  std::vector<std::pair<std::string, std::vector<std::string>>> received(
      std::chrono::milliseconds wait = 200ms) {
    std::vector<std::pair<std::string, std::vector<std::string>>> out;
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    while (zmq::poll(&item, 1, out.empty() ? wait : 20ms) > 0) {
      std::vector<net::Envelope> in;
      if (!net::recv_all(router_, signer_, in, zmq::recv_flags::dontwait)) break;
      std::vector<std::string> parents;
      for (auto& env : in)
        parents.push_back(net::decode_header(env.parts.at(0)).parent_id);
      out.emplace_back(in.at(0).route.at(0).to_string(), std::move(parents));
    }
    return out;
  }

  zmq::context_t ctx_;
  net::Signer signer_{net::Signer::new_key()};
  zmq::socket_t router_{ctx_, zmq::socket_type::router};
  zmq::socket_t out_[2] = {{ctx_, zmq::socket_type::dealer}, {ctx_, zmq::socket_type::dealer}};
  std::atomic<std::size_t> queued_{0};
  ReplyBatcher replies_{{&out_[0], &out_[1]}, signer_, {}, 7, [this] { return queued_.load(); }};
};

TEST_F(ReplyBatcherTest, AReplyWithNothingQueuedBehindItGoesAtOnceOnItsChannel) {
  replies_.post(1, reply("a"), "a");
  const auto got = received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, "balanced");
  EXPECT_EQ(got[0].second, std::vector<std::string>{"a"});
  EXPECT_EQ(replies_.take_finished(), std::vector<std::string>{"a"});
  EXPECT_TRUE(replies_.take_finished().empty());
}

TEST_F(ReplyBatcherTest, WhileTasksAreQueuedRepliesWaitForTheLoopsTurnAndGoAsOneBatch) {
  queued_ = 5;
  for (const char* id : {"a", "b", "c"})
    replies_.post(0, reply(id), id);
  EXPECT_TRUE(received(50ms).empty()) << "held for company";
  // The receiving loop's turn: they go, and it comes back within kHoldAtMost.
  EXPECT_EQ(replies_.before_wait(100ms), ReplyBatcher::kHoldAtMost);
  replies_.after_wait();
  const auto got = received();
  ASSERT_EQ(got.size(), 1u) << "one message";
  EXPECT_EQ(got[0].second, (std::vector<std::string>{"a", "b", "c"}));
  // A task that finished without a reply to send (it was answered before) is still reported.
  replies_.post(0, std::nullopt, "d");
  EXPECT_EQ(replies_.take_finished(), (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST_F(ReplyBatcherTest, NothingIsHeldWhileTheLoopSleepsAndAFullBatchGoes) {
  // Nothing queued: the loop sleeps its whole wait, so a reply finishing then goes at once
  // even if tasks were queued meanwhile.
  EXPECT_EQ(replies_.before_wait(100ms), 100ms);
  queued_ = 5;
  replies_.post(0, reply("a"), "a");
  EXPECT_EQ(received().size(), 1u);
  replies_.after_wait();
  for (std::size_t i = 0; i < ReplyBatcher::kMaxBatch; ++i)
    replies_.post(1, reply(std::to_string(i)), std::to_string(i));
  const auto got = received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].second.size(), ReplyBatcher::kMaxBatch);
}

TEST_F(ReplyBatcherTest, RepliesSentLatelyAreKeptAndSentAgainLargeOnesAreNot) {
  replies_.post(0, reply("small"), "small");
  replies_.post(1, reply("large", net::SharedMemory::kThreshold), "large");
  ASSERT_EQ(received().size(), 2u);
  EXPECT_EQ(replies_.kept().first, 1u) << "a large reply's parts may be in shared memory";
  EXPECT_EQ(replies_.resend_kept(), 1u);
  const auto again = received();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].first, "direct") << "on the channel it first went";
  EXPECT_EQ(again[0].second, std::vector<std::string>{"small"});
  EXPECT_EQ(replies_.kept().first, 1u) << "kept again: the next restart may need it too";
}

TEST_F(ReplyBatcherTest, KeptRepliesExpireWithoutNewOnesBeingSent) {
  replies_.post(0, reply("a"), "a");
  replies_.post(1, reply("b"), "b");
  ASSERT_EQ(received().size(), 2u);
  ASSERT_EQ(replies_.kept().first, 2u);
  const auto now = std::chrono::steady_clock::now();
  EXPECT_EQ(replies_.expire_kept(now), 0u) << "still young";
  EXPECT_EQ(replies_.expire_kept(now + ReplyBatcher::kKeepSent + 1s), 2u);
  EXPECT_EQ(replies_.kept(), (std::pair<std::size_t, std::size_t>{0, 0}));
  EXPECT_EQ(replies_.resend_kept(), 0u);
}

}  // namespace
}  // namespace ipp::engine
