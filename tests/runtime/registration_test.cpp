// The engine's registration and plugin answers, with a real runtime and an inproc router
// standing for the hub: the first registration (an id, the controller's period and instance,
// refusals and silence), registering again and what each answer means, and a pushed plugin
// loaded, described, refused and unloaded.
#include "engine/registration.hpp"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <iterator>

#include <gtest/gtest.h>

#include "engine/plugin_messages.hpp"
#include "ipp/codec.hpp"
#include "ipp/error.hpp"
#include "ipp/net/address.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/message.hpp"
#include "ipp/runtime/runtime.hpp"
#include "support/paths.hpp"

namespace ipp::engine {
namespace {

using namespace std::chrono_literals;

class RegistrationTest : public ::testing::Test {
 protected:
  RegistrationTest() {
    hub_.bind("inproc://registration");
    engine_.set(zmq::sockopt::linger, 0);
    engine_.connect("inproc://registration");
  }
  Registration make(std::chrono::milliseconds timeout = 5000ms) {
    return Registration({.socket = engine_,
                         .signer = signer_,
                         .endpoint = "inproc://registration",
                         .threads = 4,
                         .wanted_id = 7,
                         .heartbeat = 1000ms,
                         .timeout = timeout});
  }
  /// What the engine sent the hub, with its route.
  std::optional<net::Envelope> from_engine(std::chrono::milliseconds wait = 5000ms) {
    hub_.set(zmq::sockopt::rcvtimeo, static_cast<int>(wait.count()));
    return net::recv(hub_, signer_);
  }
  /// The hub's RegisterReply to `request`, from controller instance `session`.
  void answer(const net::Envelope& request, const std::string& session, std::int64_t id,
              std::optional<ErrorRecord> error = std::nullopt) {
    const net::Header h = net::decode_header(request.parts.at(0));
    net::Header r;
    r.type = net::MsgType::RegisterReply;
    r.msg_id = net::new_id();
    r.parent_id = h.msg_id;
    r.session = session;
    r.engine = id;
    r.info = Value::map({{"heartbeat_ms", 40}, {"now_us", net::now_us() + 10'000'000}});
    r.error = std::move(error);
    net::Envelope env = net::make_message(r);
    env.route = net::copy_route(request.route);
    net::send(hub_, signer_, env);
  }
  /// Registers `reg` with the hub answering as instance `session`.
  void register_first(Registration& reg, const std::string& session) {
    std::atomic<bool> stop{false};
    auto done = std::async(std::launch::async, [&] { return reg.first(stop); });
    auto request = from_engine();
    ASSERT_TRUE(request.has_value());
    answer(*request, session, 7);
    ASSERT_TRUE(done.get());
  }

  zmq::context_t ctx_;
  net::Signer signer_{net::Signer::new_key()};
  zmq::socket_t hub_{ctx_, zmq::socket_type::router};
  zmq::socket_t engine_{ctx_, zmq::socket_type::dealer};
};

TEST_F(RegistrationTest, TheFirstRegistrationLearnsTheIdPeriodAndController) {
  Registration reg = make();
  std::atomic<bool> stop{false};
  auto done = std::async(std::launch::async, [&] { return reg.first(stop); });
  auto request = from_engine();
  ASSERT_TRUE(request.has_value());
  const net::Header h = net::decode_header(request->parts.at(0));
  EXPECT_EQ(h.type, net::MsgType::RegisterRequest);
  EXPECT_EQ(h.threads, 4);
  EXPECT_EQ(h.engine, 7) << "the id it asks for";
  EXPECT_EQ(h.info["pid"], Value(static_cast<std::int64_t>(::getpid())));
  EXPECT_EQ(h.info["host"], Value(net::host_name())) << "pids are per host";
  answer(*request, "controller-1", 7);
  EXPECT_TRUE(done.get());
  EXPECT_EQ(reg.id(), 7);
  EXPECT_EQ(reg.period(), 40ms) << "the controller's period, not the engine's own";
  EXPECT_EQ(reg.controller_session(), "controller-1");
}

TEST_F(RegistrationTest, EachAnswerIsASampleOfTheControllersClock) {
  net::ClockOffset clock;
  Registration reg({.socket = engine_,
                    .signer = signer_,
                    .endpoint = "inproc://registration",
                    .threads = 1,
                    .clock = &clock});
  std::atomic<bool> stop{false};
  auto done = std::async(std::launch::async, [&] { return reg.first(stop); });
  auto request = from_engine();
  ASSERT_TRUE(request.has_value());
  answer(*request, "controller-1", 3);  // its time: 10 s ahead of this clock
  ASSERT_TRUE(done.get());
  EXPECT_GE(clock.rtt_us(), 0);
  EXPECT_NEAR(static_cast<double>(clock.offset_us()), 10e6, 1e6);
}

TEST_F(RegistrationTest, ARefusalOrSilenceIsAConnectionErrorAndAStopEndsTheWait) {
  Registration refused = make();
  std::atomic<bool> stop{false};
  auto done = std::async(std::launch::async, [&] { return refused.first(stop); });
  auto request = from_engine();
  ASSERT_TRUE(request.has_value());
  answer(*request, "c", -1, make_error_record(ErrorCode::usage, "engine id 7 belongs to another"));
  try {
    (void)done.get();
    ADD_FAILURE() << "refused, yet registered";
  } catch (const ConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find("registration refused: engine id 7"), std::string::npos)
        << e.what();
  }
  Registration silent = make(200ms);
  try {
    (void)silent.first(stop);
    ADD_FAILURE() << "no answer, yet registered";
  } catch (const ConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find("inproc://registration within 200 ms"), std::string::npos)
        << e.what();
  }
  Registration stopped = make();
  stop = true;
  EXPECT_FALSE(stopped.first(stop));
}

TEST_F(RegistrationTest, RegisteringAgainSaysWhichControllerAnswered) {
  Registration reg = make();
  register_first(reg, "controller-1");
  const auto t0 = std::chrono::steady_clock::now();
  reg.again(t0);
  reg.again(t0 + 100ms);  // one attempt under way: nothing sent
  auto request = from_engine();
  ASSERT_TRUE(request.has_value());
  EXPECT_EQ(net::decode_header(request->parts.at(0)).engine, 7) << "under the same id";
  EXPECT_FALSE(from_engine(100ms).has_value()) << "a second attempt too soon";
  net::Header unrelated;
  unrelated.type = net::MsgType::RegisterReply;
  unrelated.parent_id = "an older attempt";
  EXPECT_EQ(reg.answered(unrelated), Registration::Answer::stale);

  net::Header same;
  same.type = net::MsgType::RegisterReply;
  same.parent_id = net::decode_header(request->parts.at(0)).msg_id;
  same.session = "controller-1";
  EXPECT_EQ(reg.answered(same), Registration::Answer::same_controller);
  EXPECT_EQ(reg.answered(same), Registration::Answer::stale) << "answered once";

  reg.again(t0 + 200ms);
  request = from_engine();
  ASSERT_TRUE(request.has_value());
  net::Header restarted = same;
  restarted.parent_id = net::decode_header(request->parts.at(0)).msg_id;
  restarted.session = "controller-2";
  EXPECT_EQ(reg.answered(restarted), Registration::Answer::new_controller);
  EXPECT_EQ(reg.controller_session(), "controller-2");

  reg.again(t0 + 300ms);
  request = from_engine();
  ASSERT_TRUE(request.has_value());
  net::Header refused = same;
  refused.parent_id = net::decode_header(request->parts.at(0)).msg_id;
  refused.error = make_error_record(ErrorCode::usage, "engine id 7 belongs to another process");
  EXPECT_EQ(reg.answered(refused), Registration::Answer::refused);
}

/// A PluginPush carrying `file`'s bytes.
net::Envelope push_of(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  net::Header h;
  h.type = net::MsgType::PluginPush;
  h.msg_id = net::new_id();
  h.info = Value::map({{"hash", "0123456789abcdef"}, {"load_timeout_ms", 30000}});
  return net::make_message(h, encode(Value(Bytes{Buffer::copy(bytes.data(), bytes.size())})));
}

TEST(PluginMessages, APushedPluginIsLoadedAndDescribedAndUnloaded) {
  test::TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path(), .engine_id = 3});
  const net::Envelope push = push_of(test::plugin("arith"));
  const net::Header h = net::decode_header(push.parts.at(0));
  const net::Header r = load_pushed(rt, 3, h, push);
  EXPECT_EQ(r.type, net::MsgType::PluginLoaded);
  EXPECT_EQ(r.parent_id, h.msg_id);
  EXPECT_EQ(r.engine, 3);
  ASSERT_FALSE(r.error.has_value()) << r.error->message;
  EXPECT_EQ(r.info["name"], Value("arith"));
  bool has_mul = false;
  for (const auto& t : r.info["tasks"].as_list())
    has_mul = has_mul || t["name"] == Value("mul");
  EXPECT_TRUE(has_mul);
  EXPECT_EQ(rt.call("mul", {6, 7}), Value(42));

  net::Header unload;
  unload.type = net::MsgType::PluginUnload;
  unload.msg_id = net::new_id();
  unload.task = "arith";
  const net::Header u = unload_pushed(rt, 3, unload);
  EXPECT_EQ(u.info["unloaded"], Value(true));
  EXPECT_EQ(unload_pushed(rt, 3, unload).info["unloaded"], Value(false));
}

TEST(PluginMessages, AFileThatIsNotAPluginIsRefusedWithWhy) {
  test::TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path(), .engine_id = 3});
  const net::Envelope push = push_of(test::test_plugin("plain"));
  const net::Header r = load_pushed(rt, 3, net::decode_header(push.parts.at(0)), push);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, ErrorCode::plugin_load);
  EXPECT_EQ(r.error->engine, 3);
}

}  // namespace
}  // namespace ipp::engine
