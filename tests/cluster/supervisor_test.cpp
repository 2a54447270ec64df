// Engines that die: `ippctl cluster start` supervises its engines (a crash is reported at once
// and the engine restarted under its id, with a growing back-off), and `cluster add` /
// `cluster remove` change a running cluster. Real processes, driven as a user would.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ipp/client.hpp"
#include "ipp/net/address.hpp"
#include "support/paths.hpp"
#include "support/process.hpp"

namespace ipp {
namespace {

using test::alive;
using test::slurp;

using namespace std::chrono_literals;
using json = nlohmann::json;

using test::CtlResult;

class Supervised : public ::testing::Test {
 protected:
  CtlResult ctl(const std::string& args) { return test::ippctl(dir_.path(), args); }
  void TearDown() override { (void)ctl("cluster stop"); }

  json cluster_file() { return json::parse(slurp(dir_ / "cluster.json")); }
  /// cluster.json's record of the supervised engine with id `id` (the supervisor learns ids
  /// from the hub soon after its engines register: waits for it).
  json supervised(std::int64_t id) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      const json file = cluster_file();
      for (const auto& e : file["supervised"]) {
        if (e["engine"] == id) return e;
      }
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "no supervised engine " << id << " in " << slurp(dir_ / "cluster.json");
    return json();
  }
  Client client() { return Client(ClientOptions{.profile_dir = dir_.path()}); }
  void wait_for_ids(Client& rc, const std::vector<std::int64_t>& ids) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (rc.ids() != ids) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "engines did not register";
      std::this_thread::sleep_for(20ms);
    }
  }
  test::TempDir dir_;
};

TEST_F(Supervised, ASegfaultIsReportedAtOnceAndTheEngineComesBackUnderItsId) {
  // A heartbeat period of a minute: the death can only be learnt from the supervisor.
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 2 --heartbeat-ms 60000").code, 0);
  ASSERT_EQ(ctl("push " + test::test_plugin("crash").string()).code, 0);
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  Client rc = client();
  const std::int64_t pid_before = rc[1].apply("getpid").as_int();
  try {
    (void)rc[1].apply("segv");
    FAIL() << "segv returned";
  } catch (const EngineError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("engine 1 died while running task 'segv'"), std::string::npos) << what;
    EXPECT_NE(what.find("was killed by signal 11 (SIGSEGV)"), std::string::npos) << what;
  }
  EXPECT_EQ(rc[0].apply("mul", {2, 3}), Value(6)) << "the other engine goes on";

  wait_for_ids(rc, {0, 1});
  EXPECT_EQ(rc[1].apply("mul", {5, 6}), Value(30)) << "back with the pushed plugins";
  EXPECT_NE(rc[1].apply("getpid").as_int(), pid_before) << "a new process";
  const json e = supervised(1);
  EXPECT_EQ(e["restarts"], 1) << e;
  EXPECT_EQ(e["last_exit"], "was killed by signal 11 (SIGSEGV)") << e;
}

TEST_F(Supervised, EngineLogsAreNamedByEngineIdAndHostAcrossRestarts) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 1").code, 0);
  const auto logs = dir_ / "logs";
  const std::string host = net::host_name();
  const auto log_of = [&](int id) { return logs / fmt::format("engine-{}-{}.log", id, host); };
  const auto count = [&](int id, const std::string& line) {
    const std::string text = slurp(log_of(id));
    std::size_t n = 0;
    for (auto at = text.find(line); at != std::string::npos; at = text.find(line, at + 1))
      ++n;
    return n;
  };
  const auto wait_until = [&](auto done, const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << what;
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
  };
  wait_until(
      [&] { return count(0, "engine 0 registered") == 1 && count(1, "engine 1 registered") == 1; },
      "each engine's log is named by its id and host");
  for (const auto& f : std::filesystem::directory_iterator(logs))
    EXPECT_EQ(f.path().filename().string().find("engine-slot-"), std::string::npos)
        << f.path() << ": every engine has an id by now";
  EXPECT_EQ(supervised(0)["log"], log_of(0).string()) << "cluster.json says where";
  // Engine 0 dies and comes back under its id: its log goes on in the same file.
  const pid_t first = supervised(0)["pid"].get<pid_t>();
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  wait_until([&] { return count(0, "engine 0 registered") == 2; },
             "the restarted engine writes on in its log");
}

TEST_F(Supervised, AnEngineThatKeepsCrashingIsRestartedLessOftenThenLeftDown) {
  ASSERT_EQ(ctl("cluster start -n 1 --engine-threads 1").code, 0);
  ASSERT_EQ(ctl("push " + test::test_plugin("crash").string()).code, 0);
  Client rc = client();
  for (int crash = 1; crash <= 5; ++crash) {
    wait_for_ids(rc, {0});
    EXPECT_THROW((void)rc[0].apply("segv"), EngineError) << "crash " << crash;
    // The supervisor has heard of it once the state changes from running.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (supervised(0)["last_exit"] == "" ||
           supervised(0)["state"].get<std::string>().starts_with("starting") ||
           supervised(0)["state"] == "running") {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline);
      std::this_thread::sleep_for(20ms);
    }
  }
  const json e = supervised(0);
  EXPECT_EQ(e["backoff_ms"], json::parse("[250, 500, 1000, 2000]")) << "each wait doubles";
  EXPECT_EQ(e["done"], true) << e;
  EXPECT_EQ(e["state"],
            "crashed 5 times in 60 s (last: killed by signal 11 (SIGSEGV)); not restarted");
  const CtlResult status = ctl("cluster status");
  EXPECT_NE(status.out.find("engine 0: crashed 5 times in 60 s (last: killed by signal 11 "
                            "(SIGSEGV)); not restarted"),
            std::string::npos)
      << status.out;
  EXPECT_TRUE(rc.ids().empty());
}

TEST_F(Supervised, AddedEnginesRegisterAndRemovedOnesDrainThenStopCleanly) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 2").code, 0);
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  const CtlResult added = ctl("cluster add -n 1");
  ASSERT_EQ(added.code, 0) << added.err;
  EXPECT_NE(added.out.find("added engine 2"), std::string::npos) << added.out;
  Client rc = client();
  EXPECT_EQ(rc.ids(), (std::vector<std::int64_t>{0, 1, 2}));
  EXPECT_EQ(rc[2].apply("mul", {3, 4}), Value(12)) << "it has the pushed plugins";

  // A task running on engine 2 when it is removed finishes, and its result is delivered.
  AsyncResult running = rc[2].apply_async("wait_here", {1.0});
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (rc.queue_status()["2"]["queue"].as_int() == 0) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(5ms);
  }
  const std::int64_t pid = supervised(2)["pid"];
  const CtlResult removed = ctl("--json cluster remove 2");
  ASSERT_EQ(removed.code, 0) << removed.err;
  const json r = json::parse(removed.out);
  EXPECT_EQ(r["removed"][0]["id"], 2) << removed.out;
  EXPECT_EQ(r["removed"][0]["reason"], "was removed") << removed.out;
  EXPECT_EQ(r["removed"][0]["exit"], "exited with code 0") << removed.out;
  EXPECT_EQ(running.get(10s).as_int(), pid);
  EXPECT_FALSE(alive(static_cast<pid_t>(pid)));
  EXPECT_EQ(rc.ids(), (std::vector<std::int64_t>{0, 1}));
  EXPECT_EQ(supervised(2)["restarts"], 0) << "not restarted";
  EXPECT_EQ(supervised(2)["done"], true);
  EXPECT_EQ(rc.direct_view().apply("mul", {2, 2}).repr(), "[4, 4]") << "the others go on";

  const CtlResult unknown = ctl("cluster remove 2 9");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("no engine 2, 9 is registered (engines: [0, 1])"), std::string::npos)
      << unknown.err;
}

TEST_F(Supervised, ATaskThatEndsItsProcessIsReportedAsSuchAndItsEngineRestarted) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 2").code, 0);
  ASSERT_EQ(ctl("push " + test::test_plugin("crash").string()).code, 0);
  Client rc = client();
  // exit(0) from a task is no request to stop: the engine is restarted, the cause named.
  try {
    (void)rc[0].apply("call_exit", {0});
    FAIL() << "the engine survived exit(0)";
  } catch (const EngineError& e) {
    EXPECT_NE(std::string(e.what()).find("a task called exit(0)"), std::string::npos) << e.what();
  }
  wait_for_ids(rc, {0, 1});
  EXPECT_EQ(supervised(0)["last_exit"], "exited: a task called exit(0)");
  // _Exit(3), the code an engine once used for "lost its controller", is a crash like any other.
  EXPECT_THROW((void)rc[1].apply("exit_now", {3}), EngineError);
  wait_for_ids(rc, {0, 1});
  EXPECT_EQ(supervised(1)["last_exit"], "exited with code 3");
  EXPECT_EQ(rc.direct_view().apply("sysinfo.engine_id").repr(), "[0, 1]") << "both serve";
}

TEST_F(Supervised, ARestoreWhileAnEngineIsBeingRestartedStartsNoExtraEngine) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 1").code, 0);
  Client rc = client();
  const pid_t engine = supervised(1)["pid"].get<pid_t>();
  const pid_t controller = cluster_file()["controller"].get<pid_t>();
  // Engine 1 dies; while its supervisor waits to start it again, the controller dies too.
  ASSERT_EQ(::kill(engine, SIGKILL), 0);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (supervised(1)["alive"] == true) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the supervisor did not notice";
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(::kill(controller, SIGKILL), 0);
  while (alive(controller))
    std::this_thread::sleep_for(5ms);
  const CtlResult restored = ctl("cluster start -n 2 --engine-threads 1");
  ASSERT_EQ(restored.code, 0) << restored.err;
  EXPECT_NE(restored.out.find("2 engine(s) came back, 0 started"), std::string::npos)
      << restored.out;
  Client after = client();
  wait_for_ids(after, {0, 1});
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(after.ids(), (std::vector<std::int64_t>{0, 1})) << "no third engine";
  EXPECT_EQ(cluster_file()["supervised"].size(), 2u) << cluster_file();
}

TEST_F(Supervised, ARestoredControllerGivesANewEngineAnIdNoEngineHadBefore) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 1").code, 0);
  const json c = cluster_file();
  const pid_t controller = c["controller"].get<pid_t>();
  std::vector<pid_t> engines;
  for (const auto& e : c["supervised"])
    engines.push_back(e["pid"].get<pid_t>());
  ASSERT_EQ(engines.size(), 2u);
  // The old engines are held back (paused) while the controller is restored and a new
  // engine joins: the new one must not take an id the old ones will ask for.
  for (pid_t p : engines)
    ASSERT_EQ(::kill(p, SIGSTOP), 0);
  ASSERT_EQ(::kill(controller, SIGKILL), 0);
  while (alive(controller))
    std::this_thread::sleep_for(5ms);
  test::Process restored({std::string(IPP_BUILD_DIR) + "/bin/ippcontroller", "--profile-dir",
                          dir_.path().string(), "--restore", "--log-level", "warn"});
  test::Process newcomer({std::string(IPP_BUILD_DIR) + "/bin/ippengine", "--profile-dir",
                          dir_.path().string(), "--threads", "1", "--log-level", "warn"});
  Client rc = client();
  wait_for_ids(rc, {2});
  for (pid_t p : engines)
    ASSERT_EQ(::kill(p, SIGCONT), 0);
  wait_for_ids(rc, {0, 1, 2});
  for (pid_t p : engines)
    EXPECT_TRUE(alive(p)) << "an old engine was refused its id";
}

TEST_F(Supervised, ClusterStopLeavesNoProcessBehind) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 1").code, 0);
  ASSERT_EQ(ctl("push " + test::test_plugin("crash").string()).code, 0);
  Client rc = client();
  EXPECT_THROW((void)rc[0].apply("exit_now", {7}), EngineError);
  wait_for_ids(rc, {0, 1});
  EXPECT_EQ(supervised(0)["last_exit"], "exited with code 7");
  const json c = cluster_file();
  std::vector<pid_t> pids{c["controller"].get<pid_t>(), c["supervisor"].get<pid_t>()};
  for (const auto& e : c["supervised"])
    pids.push_back(e["pid"].get<pid_t>());
  ASSERT_EQ(pids.size(), 4u);
  for (const pid_t p : pids)
    EXPECT_TRUE(alive(p)) << p;
  ASSERT_EQ(ctl("cluster stop").code, 0);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (const pid_t p : pids) {
    while (alive(p) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    EXPECT_FALSE(alive(p)) << "process " << p << " is still running";
  }
}

}  // namespace
}  // namespace ipp
