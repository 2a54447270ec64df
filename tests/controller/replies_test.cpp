// The controller's reply helpers: headers that answer their request, error replies that carry
// the record in the header, and Stop messages addressed to their engine.

#include "replies.hpp"

#include <gtest/gtest.h>

namespace ipp::ctrl {
namespace {

TEST(Replies, AReplyHeaderAnswersItsRequestWithAFreshId) {
  const auto a = reply_header(net::MsgType::QueryReply, "parent");
  const auto b = reply_header(net::MsgType::QueryReply, "parent");
  EXPECT_EQ(a.type, net::MsgType::QueryReply);
  EXPECT_EQ(a.parent_id, "parent");
  EXPECT_TRUE(net::TaskId::parse(a.msg_id).has_value());
  EXPECT_NE(a.msg_id, b.msg_id);
}

TEST(Replies, ATaskErrorReplyCarriesItsRecordEngineAndTask) {
  const std::string parent = net::new_id();
  const auto env = task_error_reply(
      parent, make_error_record(ErrorCode::engine, "engine 3 died", "arith.mul", 3));
  const net::Header h = net::decode_header(env.parts.at(0));
  EXPECT_EQ(h.type, net::MsgType::TaskReply);
  EXPECT_EQ(h.parent_id, parent);
  EXPECT_EQ(h.engine, 3);
  EXPECT_EQ(h.task, "arith.mul");
  EXPECT_GT(h.completed, 0);
  ASSERT_TRUE(h.error.has_value());
  EXPECT_EQ(h.error->code, ErrorCode::engine);
  EXPECT_EQ(h.error->type, "ipp::EngineError");
  EXPECT_EQ(h.error->message, "engine 3 died");
}

TEST(Replies, AStopGoesToTheRouteItWasGiven) {
  std::vector<zmq::message_t> route;
  route.emplace_back(std::string_view("engine-7"));
  const auto env = stop_message(std::move(route));
  ASSERT_EQ(env.route.size(), 1u);
  EXPECT_EQ(env.route[0].to_string_view(), "engine-7");
  EXPECT_EQ(net::decode_header(env.parts.at(0)).type, net::MsgType::Stop);
}

}  // namespace
}  // namespace ipp::ctrl
