// The hub's plugins, with real plugin files and no engines' processes: pushes checked without
// loading, sent to every engine and answered when all have; replays to late engines and after
// a restore; engines that go away; and the names of tasks' plugins as engines report them.

#include "plugin_distributor.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <iterator>

#include "ipp/net/message.hpp"
#include "support/paths.hpp"

namespace ipp::ctrl {
namespace {

/// Whether `text` holds `n` lowercase hex digits in a row (a SHA-256 in hex is 64).
bool has_hex_run(const std::string& text, std::size_t n) {
  std::size_t run = 0;
  for (const char c : text) {
    run = (std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f')) ? run + 1 : 0;
    if (run >= n) return true;
  }
  return false;
}

std::vector<zmq::message_t> route(std::string_view name) {
  std::vector<zmq::message_t> r;
  r.emplace_back(name);
  return r;
}

net::Envelope push_request(const std::filesystem::path& file, const std::string& name,
                           std::string& msg_id) {
  std::ifstream in(file, std::ios::binary);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  net::Header h;
  h.type = net::MsgType::PushRequest;
  h.msg_id = msg_id = net::new_id();
  h.task = name;
  net::Envelope env = net::make_message(h, encode(Value(Bytes{Buffer::adopt(std::move(bytes))})));
  env.route = route("client");
  return env;
}

net::Header header(const net::Envelope& env) {
  return net::decode_header(env.parts.at(0));
}

/// Engine `engine`'s answer to the PluginPush `push`: loaded (reporting the plugin's tasks) or
/// failed with `error`.
net::Header loaded(std::int64_t engine, const net::Envelope& push,
                   std::optional<std::string> error = std::nullopt) {
  const net::Header p = header(push);
  net::Header h;
  h.type = net::MsgType::PluginLoaded;
  h.msg_id = net::new_id();
  h.parent_id = p.msg_id;
  h.engine = engine;
  if (error) {
    h.error = make_error_record(ErrorCode::plugin_load, *error, {}, engine);
  } else {
    h.info = Value::map(
        {{"name", "arith"},
         {"hash", p.info["hash"]},
         {"tasks", Value::list({Value::map({{"name", "mul"}}), Value::map({{"name", "add"}})})}});
  }
  return h;
}

struct PluginDistributorTest : ::testing::Test {
  test::TempDir dir;
  std::vector<zmq::message_t> r0 = route("engine-0"), r1 = route("engine-1");
  std::vector<PluginDistributor::Target> two{{0, &r0}, {1, &r1}};
};

TEST_F(PluginDistributorTest, APushGoesToEveryEngineAndIsAnsweredWhenAllHave) {
  PluginDistributor d(dir / "plugins", false);
  std::string first_id;
  const auto first = push_request(test::plugin("arith"), "arith", first_id);
  EXPECT_EQ(d.push(first, header(first), {}).size(), 1u);  // no engines yet: answered at once
  std::string request_id;
  const auto request = push_request(test::plugin("arith"), "arith", request_id);
  const auto out = d.push(request, header(request), two);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(header(out[0]).type, net::MsgType::PluginPush);
  EXPECT_EQ(out[0].route[0].to_string_view(), "engine-0");
  EXPECT_EQ(out[1].route[0].to_string_view(), "engine-1");
  EXPECT_EQ(d.size(), 1u) << "the same file pushed twice is one plugin";

  EXPECT_TRUE(d.loaded(loaded(0, out[0])).empty()) << "engine 1 has not answered";
  const auto reply = d.loaded(loaded(1, out[1]));
  ASSERT_EQ(reply.size(), 1u);
  const net::Header r = header(reply[0]);
  EXPECT_EQ(r.type, net::MsgType::PushReply);
  EXPECT_EQ(r.parent_id, request_id);
  EXPECT_FALSE(r.error.has_value());
  EXPECT_EQ(r.info["name"], Value("arith"));
  EXPECT_EQ(r.info["engines"]["0"], Value("ok"));
  EXPECT_EQ(reply[0].route[0].to_string_view(), "client");
  EXPECT_EQ(d.in_flight(), 0u);
}

TEST_F(PluginDistributorTest, AnEngineThatFailsToLoadMakesThePushFailNamingIt) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  const auto request = push_request(test::plugin("arith"), "arith", id);
  const auto out = d.push(request, header(request), two);
  ASSERT_EQ(out.size(), 2u);
  (void)d.loaded(loaded(0, out[0]));
  const auto reply = d.loaded(loaded(1, out[1], "undefined symbol: foo"));
  ASSERT_EQ(reply.size(), 1u);
  const net::Header r = header(reply[0]);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->type, "ipp::PluginLoadError");
  EXPECT_EQ(r.error->message,
            "1 of 2 engines failed to load the plugin\n  engine 1: undefined symbol: foo");
}

TEST_F(PluginDistributorTest, AFileThatIsNotAPluginIsRefusedAndNotKept) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  const auto request = push_request(test::test_plugin("plain"), "plain", id);
  const auto out = d.push(request, header(request), two);
  ASSERT_EQ(out.size(), 1u);
  const net::Header r = header(out[0]);
  EXPECT_EQ(r.type, net::MsgType::PushReply);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, ErrorCode::plugin_load);
  EXPECT_NE(r.error->message.find("not an ipp plugin"), std::string::npos) << r.error->message;
  EXPECT_EQ(d.size(), 0u);
  std::size_t files = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir / "plugins"))
    files += f.path().extension() == ".so";
  EXPECT_EQ(files, 0u);
}

TEST_F(PluginDistributorTest, APushWithNoEnginesIsAnsweredAtOnce) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  const auto request = push_request(test::plugin("arith"), "arith", id);
  const auto out = d.push(request, header(request), {});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(header(out[0]).type, net::MsgType::PushReply);
  EXPECT_FALSE(header(out[0]).error.has_value());
  EXPECT_EQ(d.in_flight(), 0u);
}

TEST_F(PluginDistributorTest, AnEngineThatGoesAwayCountsAsFailed) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  const auto request = push_request(test::plugin("arith"), "arith", id);
  const auto out = d.push(request, header(request), two);
  (void)d.loaded(loaded(0, out[0]));
  const auto reply = d.engine_gone(1, "was killed by signal 9 (SIGKILL)", false);
  ASSERT_EQ(reply.size(), 1u);
  const net::Header r = header(reply[0]);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_NE(r.error->message.find("engine 1 was killed by signal 9 (SIGKILL)"), std::string::npos);
  EXPECT_TRUE(d.engine_gone(0, "was removed", false).empty()) << "nothing waits for it";
}

TEST_F(PluginDistributorTest, LateEnginesAndRestoredControllersGetEveryPlugin) {
  std::string id;
  {
    PluginDistributor d(dir / "plugins", false);
    const auto request = push_request(test::plugin("arith"), "arith", id);
    (void)d.push(request, header(request), {});
    std::set<std::string> awaiting;
    const auto out = d.replay_to({7, &r0}, awaiting);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(awaiting, std::set<std::string>{header(out[0]).msg_id});
  }
  PluginDistributor restored(dir / "plugins", true);
  EXPECT_EQ(restored.size(), 1u);
  std::set<std::string> awaiting;
  EXPECT_EQ(restored.replay_to({0, &r0}, awaiting).size(), 1u);
  PluginDistributor fresh(dir / "plugins", false);
  EXPECT_EQ(fresh.size(), 0u) << "only a restore replays what was pushed before";
}

TEST_F(PluginDistributorTest, TasksAreNamedByTheirPluginOnceAnEngineDescribedIt) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  const auto request = push_request(test::plugin("arith"), "arith", id);
  const auto out = d.push(request, header(request), two);
  EXPECT_EQ(d.plugin_of("mul"), (std::pair<std::string, std::string>()));
  EXPECT_EQ(d.describe()[0]["name"], Value("(not loaded by any engine yet)"));
  (void)d.loaded(loaded(0, out[0]));
  const std::string hash = header(out[0]).info["hash"].as_string();
  EXPECT_EQ(d.plugin_of("mul"), (std::pair<std::string, std::string>("arith", hash)));
  EXPECT_EQ(d.plugin_of("arith.anything"), (std::pair<std::string, std::string>("arith", hash)));
  EXPECT_EQ(d.plugin_of("nope"), (std::pair<std::string, std::string>()));
  EXPECT_EQ(d.describe()[0]["name"], Value("arith"));
}

}  // namespace
}  // namespace ipp::ctrl

namespace ipp::ctrl {
namespace {

/// Engine `engine`'s answer to `push` for a plugin named `name`.
net::Header loaded_as(std::int64_t engine, const net::Envelope& push, const std::string& name) {
  net::Header h = loaded(engine, push);
  h.info.as_map()["name"] = name;
  return h;
}

/// The hashes a fresh engine would be sent, in order.
std::vector<std::string> replayed(PluginDistributor& d, const std::vector<zmq::message_t>& r) {
  std::set<std::string> awaiting;
  std::vector<std::string> hashes;
  for (const auto& m : d.replay_to({99, &r}, awaiting))
    hashes.push_back(header(m).info["hash"].as_string());
  (void)d.engine_gone(99, "was removed", false);
  return hashes;
}

TEST_F(PluginDistributorTest, AFreshControllerStartsWithNoPushedPlugins) {
  {
    PluginDistributor d(dir / "plugins", false);
    std::string id;
    const auto request = push_request(test::plugin("arith"), "arith", id);
    (void)d.push(request, header(request), {});
  }
  PluginDistributor fresh(dir / "plugins", false);
  EXPECT_EQ(fresh.size(), 0u);
  PluginDistributor restored(dir / "plugins", true);
  EXPECT_EQ(restored.size(), 0u) << "a restore after a fresh start replays the fresh session's set";
}

TEST_F(PluginDistributorTest, APluginThatFailedOnEveryEngineIsNotReplayed) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  const auto request = push_request(test::plugin("arith"), "arith", id);
  const auto out = d.push(request, header(request), two);
  (void)d.loaded(loaded(0, out[0], "initializer threw"));
  (void)d.engine_gone(1, "was killed by signal 11 (SIGSEGV)", true);
  EXPECT_EQ(d.size(), 0u);
  EXPECT_TRUE(replayed(d, r0).empty());
  PluginDistributor restored(dir / "plugins", true);
  EXPECT_EQ(restored.size(), 0u);
}

TEST_F(PluginDistributorTest, APluginThatWorkedSomewhereIsReplayed) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  const auto request = push_request(test::plugin("arith"), "arith", id);
  const auto out = d.push(request, header(request), two);
  (void)d.loaded(loaded(0, out[0]));
  (void)d.loaded(loaded(1, out[1], "no room"));
  EXPECT_EQ(d.size(), 1u);
}

TEST_F(PluginDistributorTest, APluginThatKillsAnEngineAsItLoadsIsReplayedNoMore) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  const auto request = push_request(test::plugin("arith"), "arith", id);
  (void)d.push(request, header(request), {});  // no engines yet: kept
  ASSERT_EQ(d.size(), 1u);
  std::set<std::string> awaiting;
  const auto out = d.replay_to({4, &r0}, awaiting);
  ASSERT_EQ(out.size(), 1u);
  // The engine dies before acknowledging it: the plugin took it down; the next engine
  // that registers must not be sent it again, or it crash-loops.
  (void)d.engine_gone(4, "was killed by signal 11 (SIGSEGV)", true);
  EXPECT_EQ(d.size(), 0u);
  EXPECT_TRUE(replayed(d, r1).empty());
}

TEST_F(PluginDistributorTest, AnEngineKilledFromOutsideOrPausedAsItLoadsBlamesNoPlugin) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  const auto request = push_request(test::plugin("arith"), "arith", id);
  (void)d.push(request, header(request), {});
  std::set<std::string> awaiting;
  ASSERT_EQ(d.replay_to({4, &r0}, awaiting).size(), 1u);
  (void)d.engine_gone(4, "was killed by signal 9 (SIGKILL)", false);
  ASSERT_EQ(d.replay_to({5, &r0}, awaiting).size(), 1u);
  (void)d.engine_gone(5, "stopped answering heartbeats", false);
  EXPECT_EQ(d.size(), 1u) << "a SIGKILL or a pause is not the plugin's doing";
  EXPECT_EQ(replayed(d, r1).size(), 1u);
}

TEST_F(PluginDistributorTest, APushWhoseEnginesWereAllKilledFromOutsideIsReplayed) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  const auto request = push_request(test::plugin("arith"), "arith", id);
  (void)d.push(request, header(request), two);
  (void)d.engine_gone(0, "was killed by signal 9 (SIGKILL)", false);
  const auto reply = d.engine_gone(1, "stopped answering heartbeats", false);
  ASSERT_EQ(reply.size(), 1u);
  EXPECT_TRUE(header(reply[0]).error.has_value()) << "the push is answered with what happened";
  EXPECT_EQ(d.size(), 1u) << "but the plugin is kept for the engines that replace them";
  (void)d.engine_gone(1, "was removed", false);
  const auto again = d.push(request, header(request), two);
  (void)d.engine_gone(0, "was killed by signal 11 (SIGSEGV)", true);
  (void)d.loaded(loaded(1, again[1], "initializer threw"));
  EXPECT_EQ(d.size(), 0u) << "a crash and a load error: the plugin's doing";
}

TEST_F(PluginDistributorTest, OneBuildPerPluginNameTheLastPushedAlsoOnARollback) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  const auto v1 = push_request(test::test_plugin("reload_v1"), "reload_v1", id);
  auto out = d.push(v1, header(v1), {{0, &r0}});
  const std::string h1 = header(out[0]).info["hash"].as_string();
  (void)d.loaded(loaded_as(0, out[0], "reload"));
  const auto v2 = push_request(test::test_plugin("reload_v2"), "reload_v2", id);
  out = d.push(v2, header(v2), {{0, &r0}});
  const std::string h2 = header(out[0]).info["hash"].as_string();
  (void)d.loaded(loaded_as(0, out[0], "reload"));
  EXPECT_EQ(replayed(d, r1), std::vector<std::string>{h2}) << "the newer build replaces the older";
  // Rolled back: v1 pushed again is the one a restarted engine gets.
  out = d.push(v1, header(v1), {{0, &r0}});
  (void)d.loaded(loaded_as(0, out[0], "reload"));
  EXPECT_EQ(replayed(d, r1), std::vector<std::string>{h1});
  PluginDistributor restored(dir / "plugins", true);
  EXPECT_EQ(replayed(restored, r1), std::vector<std::string>{h1}) << "and so does a restore";
  const Value listed = d.describe();
  ASSERT_EQ(listed.size(), 2u) << "`plugins` lists every build";
  EXPECT_EQ(listed[0]["active"], Value(true)) << "v1, rolled back to";
  EXPECT_EQ(listed[1]["active"], Value(false));
}

TEST_F(PluginDistributorTest, RefusalsNameTheUsersFileNotTheStoresHash) {
  PluginDistributor d(dir / "plugins", false);
  std::string id;
  auto request = push_request(test::test_plugin("plain"), "plain", id);
  const auto out = d.push(request, header(request), {});
  const std::string message = header(out[0]).error->message;
  EXPECT_NE(message.find("'plain.so'"), std::string::npos) << message;
  EXPECT_FALSE(has_hex_run(message, 64)) << message << " names the store's hash";
}

}  // namespace
}  // namespace ipp::ctrl

namespace ipp::ctrl {
namespace {

TEST_F(PluginDistributorTest, APushThatEnginesDoNotFinishLoadingIsAnsweredAtItsDeadline) {
  PluginDistributor d(dir / "plugins", false, std::chrono::seconds(30));
  std::string id;
  const auto request = push_request(test::plugin("arith"), "arith", id);
  const auto t0 = PluginDistributor::Clock::now();
  const auto out = d.push(request, header(request), two, t0);
  (void)d.loaded(loaded(0, out[0]));
  EXPECT_TRUE(d.expire(t0 + std::chrono::seconds(29)).empty());
  const auto reply = d.expire(t0 + std::chrono::seconds(31));
  ASSERT_EQ(reply.size(), 1u);
  const net::Header r = header(reply[0]);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_NE(r.error->message.find("engine 1 did not finish loading the plugin within 30 s"),
            std::string::npos)
      << r.error->message;
  EXPECT_EQ(r.info["engines"]["0"], Value("ok"));
  EXPECT_EQ(d.in_flight(), 0u);
  EXPECT_TRUE(d.loaded(loaded(1, out[1])).empty()) << "a late answer changes nothing";
  EXPECT_EQ(d.size(), 1u) << "it worked on engine 0: still sent to new engines";
}

}  // namespace
}  // namespace ipp::ctrl

namespace ipp::ctrl {
namespace {

net::Envelope unload_request(const std::string& name, std::string& msg_id) {
  net::Header h;
  h.type = net::MsgType::PushRequest;
  h.msg_id = msg_id = net::new_id();
  h.task = name;
  h.info = Value::map({{"unload", true}});
  net::Envelope env = net::make_message(h);
  env.route = route("client");
  return env;
}

TEST_F(PluginDistributorTest, AnUnloadGoesToEveryEngineAndTheReplaySetAndIsAnsweredWhenAllHave) {
  PluginDistributor d(dir / "plugins", false);
  std::string push_id;
  const auto push = push_request(test::plugin("arith"), "arith", push_id);
  (void)d.push(push, header(push), {});
  ASSERT_EQ(d.size(), 1u);

  std::string id;
  const auto request = unload_request("arith", id);
  const auto out = d.unload(request, header(request), two);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(header(out[0]).type, net::MsgType::PluginUnload);
  EXPECT_EQ(header(out[0]).task, "arith");
  EXPECT_EQ(out[1].route[0].to_string_view(), "engine-1");
  EXPECT_EQ(d.size(), 0u) << "engines that register later do not get it";
  std::set<std::string> awaiting;
  EXPECT_TRUE(d.replay_to({5, &r0}, awaiting).empty());
  EXPECT_FALSE(d.describe()[0]["active"].as_bool());

  auto ack = [&](std::int64_t engine) {
    net::Header h;
    h.type = net::MsgType::PluginLoaded;
    h.msg_id = net::new_id();
    h.parent_id = header(out[0]).msg_id;
    h.engine = engine;
    h.info = Value::map({{"name", "arith"}, {"unloaded", true}});
    return h;
  };
  EXPECT_TRUE(d.loaded(ack(0)).empty());
  const auto reply = d.loaded(ack(1));
  ASSERT_EQ(reply.size(), 1u);
  const net::Header r = header(reply[0]);
  EXPECT_EQ(r.parent_id, id);
  EXPECT_FALSE(r.error.has_value());
  EXPECT_EQ(r.info["engines"]["1"], Value("ok"));
  PluginDistributor restored(dir / "plugins", true);
  EXPECT_EQ(restored.size(), 0u) << "a restore does not bring it back";
}

TEST_F(PluginDistributorTest, UnloadingANameThatIsNotLoadedSaysWhatIs) {
  PluginDistributor d(dir / "plugins", false);
  std::string push_id, id;
  const auto push = push_request(test::plugin("arith"), "arith", push_id);
  (void)d.push(push, header(push), {});
  const auto request = unload_request("arihm", id);
  const auto out = d.unload(request, header(request), two);
  ASSERT_EQ(out.size(), 1u);
  const net::Header r = header(out[0]);
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(r.error->code, ErrorCode::usage);
  EXPECT_EQ(r.error->message, "no plugin named 'arihm' is loaded (loaded: arith)");
  EXPECT_EQ(d.size(), 1u);
}

}  // namespace
}  // namespace ipp::ctrl
