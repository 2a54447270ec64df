// The engine's handling of task-channel messages, with a real runtime and plugins and inproc
// sockets to a router standing for the schedulers: a task's reply, namespace operations,
// abort and cancel verdicts, a request that could not be read, and a task past its time limit
// answered at once and its slot freed when it returns.
#include "engine/task_dispatcher.hpp"

#include <deque>

#include <gtest/gtest.h>

#include "ipp/codec.hpp"
#include "ipp/net/message.hpp"
#include "support/paths.hpp"

namespace ipp::engine {
namespace {

using namespace std::chrono_literals;

class TaskDispatcherTest : public ::testing::Test {
 protected:
  TaskDispatcherTest() {
    rt_.load(test::plugin("arith"));
    rt_.load(test::test_plugin("sched"));
    router_.bind("inproc://schedulers");
    const char* names[4] = {"direct", "balanced", "direct-out", "balanced-out"};
    for (int i = 0; i < 4; ++i) {
      sockets_[i].set(zmq::sockopt::routing_id, names[i]);
      sockets_[i].set(zmq::sockopt::linger, 0);
      sockets_[i].connect("inproc://schedulers");
    }
  }
  ~TaskDispatcherTest() override { rt_.executor().wait_idle(); }

  /// A request of `type` for `task` with `args`; `limit_ms`: its time limit.
  static net::Envelope request(net::MsgType type, const std::string& task, Value args,
                               std::int64_t limit_ms = 0) {
    net::Header h;
    h.type = type;
    h.msg_id = net::new_id();
    h.session = "client";
    h.task = task;
    h.flags.time_limit_ms = limit_ms;
    return net::make_message(h, encode(args));
  }
  static net::Envelope control(const std::string& what, const std::string& msg_id) {
    net::Header h;
    h.type = net::MsgType::ControlRequest;
    h.msg_id = net::new_id();
    h.task = what;
    h.info = Value::list({msg_id});
    return net::make_message(h);
  }
  static std::string id_of(const net::Envelope& env) {
    return net::decode_header(env.parts.at(0)).msg_id;
  }

  /// The next message the router has (its route's first frame names the socket), or nullopt
  /// after `wait`.
  std::optional<net::Envelope> next(std::chrono::milliseconds wait = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (in_.empty()) {
      std::vector<net::Envelope> got;
      if (net::recv_all(router_, signer_, got, zmq::recv_flags::dontwait)) {
        for (auto& e : got)
          in_.push_back(std::move(e));
        continue;
      }
      if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
      (void)replies_.before_wait(1ms);  // the receiving loop's turn: held replies go
      replies_.after_wait();
      tasks_.enforce_limits();
      std::this_thread::sleep_for(1ms);
    }
    auto e = std::move(in_.front());
    in_.pop_front();
    return e;
  }

  test::TempDir dir_;
  Runtime rt_{{.threads = 1, .store_dir = dir_.path(), .engine_id = 3}};
  zmq::context_t ctx_;
  net::Signer signer_{net::Signer::new_key()};
  zmq::socket_t router_{ctx_, zmq::socket_type::router};
  zmq::socket_t sockets_[4] = {{ctx_, zmq::socket_type::dealer},
                               {ctx_, zmq::socket_type::dealer},
                               {ctx_, zmq::socket_type::dealer},
                               {ctx_, zmq::socket_type::dealer}};
  JobTable jobs_{std::chrono::seconds(30)};
  net::ClockOffset clock_;
  ReplyBatcher replies_{
      {&sockets_[2], &sockets_[3]}, signer_, {}, 3, [this] { return rt_.executor().queued(); }};
  TaskDispatcher tasks_{{.runtime = rt_,
                         .jobs = jobs_,
                         .replies = replies_,
                         .channels = {&sockets_[0], &sockets_[1]},
                         .signer = signer_,
                         .to_controller = {},
                         .engine = 3,
                         .clock = &clock_}};
  std::deque<net::Envelope> in_;
};

TEST_F(TaskDispatcherTest, RepliesAreStampedInTheControllersTime) {
  const std::int64_t t = net::now_us();
  clock_.sample(t, t + 5'000'000 + 50, t + 100);  // the controller's clock 5 s ahead
  tasks_.on_message(1, request(net::MsgType::ApplyRequest, "mul", Value::list({6, 7})));
  auto reply = next();
  ASSERT_TRUE(reply.has_value());
  const net::Header h = net::decode_header(reply->parts.at(0));
  const std::int64_t now = net::now_us();
  EXPECT_GT(h.started, now + 4'000'000);
  EXPECT_LT(h.completed, now + 6'000'000);
  EXPECT_GE(h.completed, h.started);
}

TEST_F(TaskDispatcherTest, ATaskRunsOnTheRuntimeAndItsReplyGoesOnItsChannel) {
  net::Envelope req = request(net::MsgType::ApplyRequest, "mul", Value::list({6, 7}));
  const std::string id = id_of(req);
  tasks_.on_message(1, std::move(req));
  auto reply = next();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->route.at(0).to_string(), "balanced-out");
  const net::Header h = net::decode_header(reply->parts.at(0));
  EXPECT_EQ(h.type, net::MsgType::TaskReply);
  EXPECT_EQ(h.parent_id, id);
  EXPECT_EQ(h.engine, 3);
  EXPECT_EQ(h.session, "client");
  EXPECT_FALSE(h.error.has_value());
  EXPECT_EQ(decode(net::payload_of(*reply)), Value(42));
}

TEST_F(TaskDispatcherTest, NamespaceOperationsRunInOrder) {
  tasks_.on_message(0, request(net::MsgType::NamespaceRequest, "push", Value::map({{"a", 5}})));
  tasks_.on_message(0, request(net::MsgType::NamespaceRequest, "pull", Value::list({"a"})));
  tasks_.on_message(0, request(net::MsgType::NamespaceRequest, "pull", Value::list({"nope"})));
  ASSERT_TRUE(next().has_value());  // the push
  auto pulled = next();
  ASSERT_TRUE(pulled.has_value());
  EXPECT_EQ(decode(net::payload_of(*pulled)), Value::list({5}));
  auto missing = next();
  ASSERT_TRUE(missing.has_value());
  const net::Header h = net::decode_header(missing->parts.at(0));
  ASSERT_TRUE(h.error.has_value());
  EXPECT_EQ(h.error->code, ErrorCode::name_error);
  EXPECT_NE(h.error->message.find("'nope' is not defined on engine 3"), std::string::npos);
}

TEST_F(TaskDispatcherTest, AnAbortStopsAQueuedTaskACancelStopsARunningOne) {
  // One pool thread: the first task runs, the second waits behind it.
  net::Envelope running =
      request(net::MsgType::ApplyRequest, "until_cancelled", Value::list({20.0}));
  net::Envelope queued = request(net::MsgType::ApplyRequest, "mul", Value::list({2, 3}));
  const std::string running_id = id_of(running), queued_id = id_of(queued);
  tasks_.on_message(0, std::move(running));
  tasks_.on_message(0, std::move(queued));
  tasks_.on_message(0, control("abort", queued_id));
  tasks_.on_message(0, control("cancel", running_id));
  std::map<std::string, ErrorCode> codes;
  for (int i = 0; i < 2; ++i) {
    auto reply = next();
    ASSERT_TRUE(reply.has_value());
    const net::Header h = net::decode_header(reply->parts.at(0));
    ASSERT_TRUE(h.error.has_value()) << h.parent_id;
    codes[h.parent_id] = h.error->code;
  }
  EXPECT_EQ(codes[queued_id], ErrorCode::aborted);
  EXPECT_EQ(codes[running_id], ErrorCode::cancelled);
}

TEST_F(TaskDispatcherTest, ARequestThatCouldNotBeReadIsAnsweredAndNotRun) {
  net::Envelope req = request(net::MsgType::ApplyRequest, "mul", Value::list({6, 7}));
  req.unreadable = "part 1 is not in shared memory";
  tasks_.on_message(0, std::move(req));
  auto reply = next();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->route.at(0).to_string(), "direct") << "sent by the receiving loop";
  const net::Header h = net::decode_header(reply->parts.at(0));
  ASSERT_TRUE(h.error.has_value());
  EXPECT_EQ(h.error->code, ErrorCode::protocol);
  EXPECT_NE(h.error->message.find("part 1 is not in shared memory"), std::string::npos);
  EXPECT_TRUE(jobs_.empty());
}

TEST_F(TaskDispatcherTest, ATaskPastItsTimeLimitIsAnsweredAtOnceAndItsSlotFreedWhenItReturns) {
  // `stubborn` does not look at cancellation: it returns when its sleep is over.
  net::Envelope req =
      request(net::MsgType::ApplyRequest, "stubborn", Value::list({0.3}), /*limit_ms=*/50);
  const std::string id = id_of(req);
  tasks_.on_message(1, std::move(req));
  auto timeout = next();
  ASSERT_TRUE(timeout.has_value());
  const net::Header t = net::decode_header(timeout->parts.at(0));
  EXPECT_EQ(timeout->route.at(0).to_string(), "balanced");
  ASSERT_TRUE(t.error.has_value());
  EXPECT_EQ(t.error->code, ErrorCode::timeout);
  EXPECT_EQ(t.info["held"], Value(true));
  auto freed = next();
  ASSERT_TRUE(freed.has_value());
  const net::Header f = net::decode_header(freed->parts.at(0));
  EXPECT_EQ(f.type, net::MsgType::SlotFreed);
  EXPECT_EQ(f.parent_id, id);
}

}  // namespace
}  // namespace ipp::engine
