// The client's table of requests waiting for replies, alone: a reply completes its request
// and tells its result state, failures name why, a restart fails all but the request that
// showed it, waiters wake when none is left, and the tasks in flight are listed for the hub.
#include "pending_requests.hpp"

#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "ipp/net/message.hpp"

namespace ipp::detail {
namespace {

using namespace std::chrono_literals;

struct Request {
  std::shared_ptr<ResultState> state = std::make_shared<ResultState>();
  std::shared_ptr<Slot> slot = std::make_shared<Slot>();
  explicit Request(net::MsgType type = net::MsgType::ApplyRequest, std::string task = "mul") {
    slot->msg_id = net::new_id();
    slot->type = type;
    slot->task = std::move(task);
    slot->submitted = 17;
    state->slots.push_back(slot);
    state->remaining = 1;
  }
  /// The reply a scheduler would send, with `v` as its result.
  [[nodiscard]] net::Envelope reply(Value v) const {
    net::Header h;
    h.type = net::MsgType::TaskReply;
    h.msg_id = net::new_id();
    h.parent_id = slot->msg_id;
    h.engine = 2;
    return net::make_message(h, encode(v));
  }
};

bool finish(PendingRequests& p, net::Envelope env) {
  return p.finish(net::decode_header(env.parts.at(0)), env);
}

TEST(PendingRequests, AReplyCompletesItsRequestOnce) {
  PendingRequests pending;
  Request r;
  pending.add(r.slot, r.state);
  EXPECT_FALSE(pending.empty());
  EXPECT_TRUE(finish(pending, r.reply(Value(42))));
  EXPECT_TRUE(r.slot->done);
  EXPECT_EQ(r.state->remaining, 0u);
  EXPECT_EQ(decode(r.slot->payload), Value(42));
  EXPECT_EQ(r.slot->reply.engine, 2);
  EXPECT_GT(r.slot->received, 0);
  EXPECT_TRUE(pending.empty());
  EXPECT_FALSE(finish(pending, r.reply(Value(43)))) << "a second reply finds nothing";
  EXPECT_EQ(decode(r.slot->payload), Value(42));
}

TEST(PendingRequests, SilentTasksAreThoseSentOnTheSharedConnectionsStillWaitingEachOnce) {
  PendingRequests pending;
  Request direct, balanced, answered, own, query(net::MsgType::QueryRequest, "ids"), young;
  direct.slot->channel = 1;
  balanced.slot->channel = 2;
  answered.slot->channel = 1;
  own.slot->channel = 1;
  own.slot->own_connection = true;  // a synchronous caller asks on its own connection
  query.slot->channel = 0;          // not a task: no scheduler has it
  young.slot->channel = 2;
  young.slot->submitted = 1000;
  for (Request* r : {&direct, &balanced, &answered, &own, &query, &young})
    pending.add(r->slot, r->state);
  EXPECT_TRUE(finish(pending, answered.reply(Value(1))));
  const auto silent = pending.silent(100, 10);
  EXPECT_EQ(silent, (std::vector<std::pair<int, std::string>>{{1, direct.slot->msg_id},
                                                              {2, balanced.slot->msg_id}}));
  EXPECT_TRUE(pending.silent(100, 10).empty()) << "each is asked about once";
  EXPECT_EQ(pending.silent(2000, 10),
            (std::vector<std::pair<int, std::string>>{{2, young.slot->msg_id}}));
}

TEST(PendingRequests, FailuresNameWhyAndARestartSparesTheRequestThatShowedIt) {
  PendingRequests pending;
  Request a, b, probe(net::MsgType::QueryRequest, "ids");
  for (auto* r : {&a, &b, &probe})
    pending.add(r->slot, r->state);
  pending.fail(a.slot->msg_id, "could not be sent");
  ASSERT_TRUE(a.slot->reply.error.has_value());
  EXPECT_EQ(a.slot->reply.error->code, ErrorCode::connection);
  EXPECT_EQ(a.slot->reply.error->message, "could not be sent");
  pending.fail_all([](const std::string& id) { return "restarted: " + id; }, probe.slot->msg_id);
  ASSERT_TRUE(b.slot->done);
  EXPECT_EQ(b.slot->reply.error->message, "restarted: " + b.slot->msg_id);
  EXPECT_FALSE(probe.slot->done);
  EXPECT_FALSE(pending.empty());
  EXPECT_TRUE(finish(pending, probe.reply(Value::list({0, 1}))));
  EXPECT_TRUE(pending.empty());
}

TEST(PendingRequests, WaitersWakeWhenNoneIsLeft) {
  PendingRequests pending;
  Request r;
  pending.add(r.slot, r.state);
  EXPECT_FALSE(pending.wait_all(10ms));
  auto waiter = std::async(std::launch::async, [&] { return pending.wait_all(10s); });
  std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(finish(pending, r.reply(Value(1))));
  EXPECT_TRUE(waiter.get());
  Request forgotten;
  pending.add(forgotten.slot, forgotten.state);
  pending.forget(forgotten.slot->msg_id);
  EXPECT_TRUE(pending.wait_all(std::nullopt));
  EXPECT_FALSE(forgotten.slot->done) << "forgotten, not failed";
}

TEST(PendingRequests, OneAtATimeForTheSynchronousPath) {
  PendingRequests pending;
  Request first, second;
  EXPECT_TRUE(pending.add_if_none(first.slot, first.state));
  EXPECT_FALSE(pending.add_if_none(second.slot, second.state));
  Request bad;
  bad.slot->msg_id = "not an id";
  EXPECT_THROW(pending.add(bad.slot, bad.state), UsageError);
}

TEST(PendingRequests, TheTasksInFlightAreThoseTheHubRecords) {
  PendingRequests pending;
  Request apply, map(net::MsgType::MapRequest), pull(net::MsgType::NamespaceRequest, "pull"),
      query(net::MsgType::QueryRequest, "ids");
  for (auto* r : {&apply, &map, &pull, &query})
    pending.add(r->slot, r->state);
  std::map<std::string, Value> listed;
  for (const auto& t : pending.tasks_in_flight())
    listed[t[0].as_string()] = t;
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed[apply.slot->msg_id], Value::list({apply.slot->msg_id, "apply", "mul", 17}));
  EXPECT_EQ(listed[map.slot->msg_id][1], Value("map"));
  EXPECT_EQ(listed[pull.slot->msg_id][1], Value("pull"));
}

}  // namespace
}  // namespace ipp::detail
