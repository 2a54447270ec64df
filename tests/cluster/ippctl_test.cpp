// ippctl as a user runs it: a real process, its output and its exit code.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "ipp/client.hpp"
#include "ipp/net/connection_file.hpp"
#include "support/paths.hpp"
#include "support/process.hpp"

namespace ipp {
namespace {

using test::slurp;

using namespace std::chrono_literals;

using test::CtlResult;

class Ippctl : public ::testing::Test {
 protected:
  CtlResult ctl(const std::string& args) { return test::ippctl(dir_.path(), args); }
  void TearDown() override { (void)ctl("cluster stop"); }
  test::TempDir dir_;
};

TEST_F(Ippctl, TheTutorialSteps) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 2").code, 0);
  EXPECT_EQ(ctl("ids").out, "[0, 1]\n");
  const std::string arith = test::plugin("arith").string();
  EXPECT_EQ(ctl("push " + arith).out, "{'0': 'ok', '1': 'ok'}\n");
  EXPECT_EQ(ctl("apply mul 5 6 --targets 0").out, "30\n");
  EXPECT_EQ(ctl("apply mul 5 6").out, "[30, 30]\n");
  EXPECT_EQ(ctl("apply mul 5 6 --targets 0,1").out, "[30, 30]\n");
  EXPECT_EQ(ctl("apply mul 5 6 --balanced").out, "30\n");
  EXPECT_EQ(ctl("map mul 1..9 2..10").out, "[2, 6, 12, 20, 30, 42, 56, 72, 90]\n");
  EXPECT_EQ(ctl("map mul 1..9 2..10 --balanced --chunksize 2").out,
            "[2, 6, 12, 20, 30, 42, 56, 72, 90]\n");
  EXPECT_EQ(ctl("map mul '[1, 2]' 3..4").out, "[3, 8]\n");
  EXPECT_EQ(ctl("map mul 1..9 2").out, "[2, 4, 6, 8, 10, 12, 14, 16, 18]\n");  // broadcast
  EXPECT_EQ(ctl("map mul 3 1..3 --balanced").out, "[3, 6, 9]\n");
  EXPECT_EQ(ctl("map mul 3 4").code, 2);        // nothing to map over
  EXPECT_EQ(ctl("apply upper hello").code, 1);  // no strings plugin pushed: unknown task
  const CtlResult json = ctl("--json map mul 1..3 1..3");
  EXPECT_NE(json.out.find("\"result\":[1,4,9]"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"msg_ids\":["), std::string::npos) << json.out;
  // Global options anywhere on the line.
  const CtlResult after = ctl("map mul 1..3 1..3 --json");
  EXPECT_NE(after.out.find("\"result\":[1,4,9]"), std::string::npos) << after.out << after.err;
  EXPECT_EQ(ctl("ids --json").out, "{\"result\":[0,1]}\n");
  EXPECT_EQ(ctl("ids --timeout-ms 5000").out, "[0, 1]\n");
  // Two engines wait at once: two distinct pids.
  const CtlResult pids = ctl("apply wait_here 0.3");
  ASSERT_EQ(pids.code, 0) << pids.err;
  const auto comma = pids.out.find(',');
  ASSERT_NE(comma, std::string::npos);
  EXPECT_NE(pids.out.substr(1, comma - 1), pids.out.substr(comma + 2, pids.out.size() - comma - 4))
      << pids.out;
  EXPECT_EQ(ctl("cluster stop").code, 0);
  EXPECT_EQ(ctl("ids").code, 3);
}

TEST_F(Ippctl, WhatTasksPrintIsShownUnderTheResult) {
  ASSERT_EQ(ctl("cluster start -n 2").code, 0);
  ASSERT_EQ(ctl("push " + test::test_plugin("printing").string()).code, 0);
  CtlResult r = ctl("apply say_each 5");
  EXPECT_EQ(r.out, "[5, 5]\n[stdout:0] element 5\n[stdout:1] element 5\n");
  r = ctl("apply say hi --targets 1");
  EXPECT_EQ(r.out, "2\n[stdout:1]\nprintf hi\nputs hi\ncout hi\n");
  EXPECT_EQ(r.err, "[stderr:1] cerr hi\n");
  r = ctl("--json apply say_each 3 --targets 0");
  EXPECT_NE(r.out.find(R"("printed":{"stdout":["element 3\n"],"stderr":[""]})"), std::string::npos)
      << r.out;
  // A failed task's output is shown too: it is what explains the failure.
  r = ctl("apply say 5 --targets 0");
  EXPECT_EQ(r.code, 1);
}

TEST_F(Ippctl, VersionIsSaid) {
  const CtlResult r = ctl("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, std::string("ippctl ") + IPP_VERSION + "\n");
}

TEST_F(Ippctl, BadInputGetsAClearErrorAndTheRightExitCode) {
  ASSERT_EQ(ctl("cluster start -n 1").code, 0);
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  CtlResult r = ctl("apply nope");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no task named 'nope'"), std::string::npos) << r.err;
  r = ctl("apply mul 1 '\"x\"' --targets 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("argument 2 (int64): expected int64, got string"), std::string::npos)
      << r.err;
  r = ctl("apply mul 1 --targets 0");
  EXPECT_NE(r.err.find("expected 2 arguments, got 1"), std::string::npos) << r.err;
  r = ctl("apply mul 1 2 --targets 5");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no engine 5 is registered"), std::string::npos) << r.err;
  r = ctl("apply mul 1 2 --targets x");
  EXPECT_EQ(r.code, 2);
  r = ctl("apply mul '[1' 2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unterminated list"), std::string::npos) << r.err;
  r = ctl("push " + test::test_plugin("plain").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("not an ipp plugin"), std::string::npos) << r.err;
  ASSERT_EQ(ctl("push " + test::test_plugin("twin").string()).code, 0);
  r = ctl("apply mul 1 2");
  EXPECT_NE(r.err.find("ambiguous"), std::string::npos) << r.err;
  EXPECT_EQ(ctl("apply twin.mul 1 2").out, "[-2]\n");
  EXPECT_EQ(ctl("bogus").code, 2);
  EXPECT_EQ(ctl("--help").code, 0);
  EXPECT_EQ(ctl("apply --help").code, 0);
  r = ctl("cluster start -n 1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("already running"), std::string::npos) << r.err;
}

TEST_F(Ippctl, AbsurdNumbersAndEmptyTargetsAreUsageErrors) {
  ASSERT_EQ(ctl("cluster start -n 1").code, 0);
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  // Each is exit code 2 and a message naming the option; none runs anything.
  const std::pair<const char*, const char*> cases[] = {
      {"map mul 1..3 1..3 --balanced --chunksize -1", "--chunksize"},
      {"map mul 1..3 1..3 --balanced --chunksize 0", "--chunksize"},
      {"apply mul 1 2 --balanced --timeout nan", "--timeout"},
      {"apply mul 1 2 --balanced --timeout -3", "--timeout"},
      {"apply mul 1 2 --time-limit inf", "--time-limit"},
      {"apply mul 1 2 --balanced --retries -1", "--retries"},
      {"apply mul 1 2 --targets ''", "no targets given"},
      {"apply mul 1 2 --balanced --targets ''", "no targets given"},
      {"map mul 1..3 1..3 --targets ','", "bad target ''"},
      {"execute 'a = 1' --targets ''", "no targets given"},
      {"--timeout-ms -5 ids", "--timeout-ms"},
      {"history --limit -2", "--limit"},
      {"purge --older-than nan", "--older-than"},
  };
  for (const auto& [args, named] : cases) {
    const CtlResult r = ctl(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(r.out, "") << args;
  }
  EXPECT_EQ(ctl("map mul 1..3 1..3 --balanced --chunksize 2").out, "[1, 4, 9]\n");
}

TEST_F(Ippctl, HowManyEnginesAndWhereIsSaidOnceAndClearly) {
  std::ofstream(dir_ / "hosts") << "node1:2\nnode2 many\n";
  // Each is exit code 2 and a message naming what is wrong; nothing is started.
  const std::pair<std::string, std::string> cases[] = {
      {"cluster start", "no engines asked for"},
      {"cluster start --engines ssh", "--hosts HOST:N"},
      {"cluster start --engines 2 -n 2", "give the number of engines once"},
      {"cluster start --engines lots", "local, ssh, or a number"},
      {"cluster start --engines local --hosts node1", "not with --engines local"},
      {"cluster start --hosts node1:0", "'node1:0'"},
      {"cluster start --hosts -oProxyCommand=x", "is not a host ssh can be given"},
      {"cluster start --engines ssh --hostfile '" + (dir_ / "hosts").string() + "'", "line 2"},
      {"cluster add", "no engines asked for"},
  };
  for (const auto& [args, named] : cases) {
    const CtlResult r = ctl(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << args << ": " << r.err;
    EXPECT_FALSE(std::filesystem::exists(dir_ / "cluster.json")) << args;
  }
  // The old spelling of the count still works.
  ASSERT_EQ(ctl("cluster start --engines 1").code, 0);
  EXPECT_EQ(ctl("ids").out, "[0]\n");
}

TEST_F(Ippctl, APluginThatKillsEnginesAsTheyLoadItIsNotSentToTheirSuccessors) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 1").code, 0);
  const CtlResult push = ctl("push " + test::test_plugin("crash_at_load").string());
  EXPECT_EQ(push.code, 1) << push.out << push.err;
  EXPECT_NE(push.err.find("2 of 2 engines failed to load the plugin"), std::string::npos)
      << push.err;
  // The supervisor restarts both; they register without it and serve.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (ctl("ids").out != "[0, 1]\n" && ctl("ids").out.find(", ") == std::string::npos) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "engines crash-loop";
    std::this_thread::sleep_for(200ms);
  }
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  const CtlResult r = ctl("apply mul 6 7");
  EXPECT_EQ(r.out, "[42, 42]\n") << r.err;
  EXPECT_EQ(ctl("plugins").out.find("crash_at_load"), std::string::npos);
}

TEST_F(Ippctl, AnEngineKilledFromOutsideAsItLoadsAPluginBlamesNotThePlugin) {
  ASSERT_EQ(ctl("cluster start -n 1 --engine-threads 1").code, 0);
  ASSERT_EQ(ctl("push " + test::test_plugin("slow_load").string()).code, 0);  // 3 s
  Client rc(ClientOptions{.profile_dir = dir_.path()});
  // The engine's pid once it is registered, ready (done loading) or not.
  const auto engine_pid = [&](bool ready) -> pid_t {
    const Value listed = rc.engines();
    for (const auto& e : listed.as_list())
      if ((e["ready"] == Value(true)) == ready) return static_cast<pid_t>(e["pid"].as_int());
    return -1;
  };
  const auto wait_for = [&](bool ready, pid_t other) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (true) {
      const pid_t p = engine_pid(ready);
      if (p > 0 && p != other) return p;
      if (std::chrono::steady_clock::now() > deadline) return pid_t{-1};
      std::this_thread::sleep_for(20ms);
    }
  };
  const pid_t first = wait_for(true, -1);
  ASSERT_GT(first, 0);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  // Its successor (restarted by the supervisor) is sent the plugin again, and is killed from
  // outside (a user, the OOM killer) while it loads it: that is not the plugin's doing.
  const pid_t loading = wait_for(false, first);
  ASSERT_GT(loading, 0) << "no restarted engine";
  ASSERT_EQ(::kill(loading, SIGKILL), 0);
  const pid_t third = wait_for(true, loading);
  ASSERT_GT(third, 0) << "the engine was not restarted";
  EXPECT_NE(third, first);
  const CtlResult r = ctl("apply slow_loaded 41 --balanced");
  EXPECT_EQ(r.out, "42\n") << r.err;
  EXPECT_NE(ctl("plugins").out.find("slow_load"), std::string::npos);
}

TEST_F(Ippctl, EnginesWhoseLoadingHangsAreRestartedWithoutThePlugin) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 1 --plugin-load-timeout 1").code, 0);
  Client rc(ClientOptions{.profile_dir = dir_.path()});
  std::set<std::int64_t> hung;
  const Value before = rc.engines();
  for (const auto& e : before.as_list())
    hung.insert(e["pid"].as_int());
  const CtlResult push = ctl("push " + test::test_plugin("hang_at_load").string());
  EXPECT_EQ(push.code, 1);
  EXPECT_NE(push.err.find("did not finish loading the plugin within 1 s"), std::string::npos)
      << push.err;
  // Half a second later each engine ends itself (the initializer's thread cannot be taken
  // back); the supervisor restarts them, and the controller no longer sends them the plugin.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  const auto ended = [&] {  // the supervisor's record of each engine's last exit
    const std::string file = slurp(dir_ / "cluster.json");
    std::size_t n = 0;
    for (auto at = file.find("loading a plugin did not finish in time"); at != std::string::npos;
         at = file.find("loading a plugin did not finish in time", at + 1))
      ++n;
    return n;
  };
  while (ended() < 2) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << slurp(dir_ / "cluster.json");
    std::this_thread::sleep_for(50ms);
  }
  const auto back = [&] {  // two engines ready, neither of the hung processes
    const Value listed = rc.engines();
    int n = 0;
    for (const auto& e : listed.as_list())
      n += e["ready"] == Value(true) && hung.count(e["pid"].as_int()) == 0 ? 1 : 0;
    return n == 2;
  };
  while (!back()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the engines are not back";
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  const CtlResult r = ctl("apply mul 6 7");
  EXPECT_EQ(r.out, "[42, 42]\n") << r.err;
  EXPECT_EQ(ctl("plugins").out.find("hang_at_load"), std::string::npos);
}

TEST_F(Ippctl, ClusterStartListensWhereToldAndTheFilesNameAnAddressPeersReach) {
  // Every interface: the files name an address peers can reach, never 0.0.0.0.
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 1 --ip 0.0.0.0").code, 0);
  std::string file = slurp(dir_ / "ipp-client.json");
  EXPECT_EQ(file.find("tcp://0.0.0.0"), std::string::npos) << file;
  EXPECT_NE(file.find("\"listen\": \"0.0.0.0\""), std::string::npos) << file;
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  EXPECT_EQ(ctl("apply mul 6 7").out, "[42, 42]\n");
  ASSERT_EQ(ctl("cluster stop").code, 0);
  // IPv6, on ports from a range (a firewall's).
  ASSERT_EQ(ctl("cluster start -n 1 --ip ::1 --port-range 47300-47399").code, 0);
  file = slurp(dir_ / "ipp-engine.json");
  EXPECT_NE(file.find("tcp://[::1]:473"), std::string::npos) << file;
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  EXPECT_EQ(ctl("apply mul 6 7").out, "[42]\n");
  ASSERT_EQ(ctl("cluster stop").code, 0);
  // A host name, and a location given: the files say what the user said.
  ASSERT_EQ(ctl("cluster start -n 1 --ip localhost --location localhost").code, 0);
  EXPECT_NE(slurp(dir_ / "ipp-client.json").find("tcp://localhost:"), std::string::npos);
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  EXPECT_EQ(ctl("apply mul 6 7").out, "[42]\n");
  ASSERT_EQ(ctl("cluster stop").code, 0);
  // Mistakes are usage errors that name what is wrong, and start nothing.
  const std::pair<std::string, std::string> bad[] = {
      {"--ip no-such-host.invalid", "no-such-host.invalid"},
      {"--ports 1,2", "--ports"},
      {"--port-range 9-3", "--port-range"},
      {"--port-range 1000-1100 --ports 1,2,3,4,5,6", "excludes"}};
  for (const auto& [args, named] : bad) {
    const CtlResult r = ctl("cluster start -n 1 " + args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_NE(r.err.find(named), std::string::npos) << args << ": " << r.err;
  }
  EXPECT_EQ(ctl("ids").code, 3) << "nothing started";
}

TEST_F(Ippctl, ClusterStartPassesTheSchemeAndHwmToTheController) {
  CtlResult r = ctl("cluster start -n 1 --scheme fastest");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("fastest"), std::string::npos) << r.err;
  EXPECT_EQ(ctl("cluster start -n 1 --hwm -1").code, 2);
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 1 --scheme lru --hwm 0").code, 0);
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  r = ctl("map mul 1..2000 2..2001 --balanced --chunksize 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 12), "[2, 6, 12, 2");
  EXPECT_NE(r.out.find(", 4002000]"), std::string::npos);
  const std::string log = slurp(dir_.path() / "logs" / "controller.log");
  EXPECT_NE(log.find("load balancing: lru, hwm none"), std::string::npos) << log;
}

TEST_F(Ippctl, SchedulingFlagsAbortAndCancel) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 1").code, 0);
  ASSERT_EQ(ctl("push " + test::test_plugin("sched").string()).code, 0);
  EXPECT_EQ(ctl("apply tag 5 --balanced --targets 1").out, "[5, 1]\n");
  EXPECT_EQ(ctl("apply fail_on 0 --balanced --targets 0,1 --retries 1 --priority 3").code, 0);
  EXPECT_EQ(ctl("map tag 0..3 --balanced --targets 0 --chunksize 1").out,
            "[[0, 0], [1, 0], [2, 0], [3, 0]]\n");
  CtlResult r = ctl("apply tag 1 --balanced --after 0123456789abcdef");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("InvalidDependency"), std::string::npos) << r.err;
  r = ctl("apply tag 1 --balanced --targets 9");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("ImpossibleDependency"), std::string::npos) << r.err;
  r = ctl("apply stubborn 1 --targets 0 --time-limit 0.2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("time limit of 200 ms"), std::string::npos) << r.err;
  r = ctl("apply tag 1 --retries 2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("need --balanced"), std::string::npos) << r.err;
  // A dependency by msg_id, as printed by --json.
  r = ctl("--json apply tag 7 --balanced --targets 1");
  const auto id_at = r.out.find("\"msg_ids\":[\"") + 12;
  const std::string id = r.out.substr(id_at, 32);
  EXPECT_EQ(ctl("apply tag 8 --balanced --follow " + id).out, "[8, 1]\n");
  EXPECT_EQ(ctl("apply tag 9 --balanced --after " + id + " --on-failure").code, 1);

  Client rc(ClientOptions{.profile_dir = dir_.path()});
  LoadBalancedView lb = rc.load_balanced_view().with({.targets = {0}});
  AsyncResult blocker = lb.apply_async("stubborn", {1.0});
  AsyncResult queued = lb.apply_async("tag", {1});
  AsyncResult later = lb.apply_async("tag", {2});
  r = ctl("abort " + queued.msg_ids()[0]);
  EXPECT_EQ(r.out, "1 removed from the queue, 0 passed on to their engines, 0 not pending\n");
  EXPECT_THROW(queued.get(30s), TaskAborted);
  r = ctl("--json cancel " + blocker.msg_ids()[0]);
  EXPECT_NE(r.out.find("\"signalled\":[\"" + blocker.msg_ids()[0]), std::string::npos) << r.out;
  EXPECT_THROW(blocker.get(30s), TaskCancelled);
  EXPECT_EQ(later.get(30s)[0], Value(2));
}

TEST_F(Ippctl, CtrlCCancelsWhatTheCommandSubmittedAndSaysSo) {
  ASSERT_EQ(ctl("cluster start -n 1 --engine-threads 1").code, 0);
  ASSERT_EQ(ctl("push " + test::test_plugin("sched").string()).code, 0);
  Client rc(ClientOptions{.profile_dir = dir_.path()});
  const std::size_t before = rc.hub_history().size();
  // Three tasks of a minute each on one thread: one runs, two wait in the queue.
  const auto err = dir_ / "map.err";
  test::Process map({"/bin/sh", "-c",
                     "exec '" + test::binary("ippctl") + "' --profile-dir '" +
                         dir_.path().string() +
                         "' map until_cancelled '[60, 60, 60]' --balanced --chunksize 1 > '" +
                         (dir_ / "map.out").string() + "' 2> '" + err.string() + "'"});
  std::vector<std::string> ids;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (ids.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    const auto all = rc.hub_history();
    ids.assign(all.begin() + static_cast<std::ptrdiff_t>(std::min(before, all.size())), all.end());
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(ids.size(), 3u);
  std::this_thread::sleep_for(300ms);  // the first one is running
  map.signal(SIGINT);
  EXPECT_EQ(map.wait(20000ms), 130);
  const std::string text = slurp(err);
  EXPECT_NE(text.find("ippctl: interrupted: cancelled 3 tasks"), std::string::npos) << text;
  EXPECT_NE(text.find(ids[0]), std::string::npos) << text;
  // Each task ended as cancelled (or aborted from the queue), in the database too; none ran on.
  for (const auto& id : ids) {
    try {
      (void)rc.get_result(id, 30s);
      ADD_FAILURE() << id << " finished";
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == ErrorCode::cancelled || e.code() == ErrorCode::aborted) << e.what();
    }
  }
  // The engine is free again at once, not after a minute.
  const auto t = std::chrono::steady_clock::now();
  EXPECT_EQ(ctl("apply tag 1 --balanced").out, "[1, 0]\n");
  EXPECT_LT(std::chrono::steady_clock::now() - t, 20s);
}

TEST_F(Ippctl, AMapTooLargeForMemoryIsAClearErrorAndTheEngineServesOn) {
  ASSERT_EQ(ctl("cluster start -n 1 --engine-threads 2").code, 0);
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  const CtlResult r = ctl("map mul 1..99999999999 1..99999999999 --targets 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("map output of 99999999999 int64 elements (745.1 GiB) does not fit in "
                       "the memory available"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(ctl("map mul 1..3 1..3").out, "[1, 4, 9]\n") << "the engine serves on";
}

TEST_F(Ippctl, ATaskThatIgnoresItsTimeLimitHoldsItsSlotThenItsEngineIsRestarted) {
  ASSERT_EQ(ctl("cluster start -n 1 --engine-threads 1 --time-limit-grace 1").code, 0);
  ASSERT_EQ(ctl("push " + test::test_plugin("sched").string()).code, 0);
  const auto t0 = std::chrono::steady_clock::now();
  CtlResult r = ctl("apply stubborn 60 --balanced --time-limit 0.3");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("time limit of 300 ms"), std::string::npos) << r.err;
  // The engine's only thread still runs it: the next task waits for a free slot instead of
  // queueing behind it there, and runs once the engine was restarted a second later.
  r = ctl("apply tag 5 --balanced");
  EXPECT_EQ(r.out, "[5, 0]\n") << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s) << "not after the minute it sleeps";
  r = ctl("--json cluster status");
  EXPECT_NE(r.out.find("a task ran past its time limit and did not stop when cancelled"),
            std::string::npos)
      << r.out;
}

TEST_F(Ippctl, UnloadTakesAPluginOffEveryEngineAndLateJoinersNeverGetIt) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 1").code, 0);
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  EXPECT_EQ(ctl("apply mul 2 3").out, "[6, 6]\n");
  EXPECT_EQ(ctl("unload arith").out, "{'0': 'ok', '1': 'ok'}\n");
  CtlResult r = ctl("apply mul 2 3 --targets 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("TaskNotFound"), std::string::npos) << r.err;
  r = ctl("unload arith");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "ippctl: no plugin named 'arith' is loaded (loaded: none)\n");
  ASSERT_EQ(ctl("cluster add -n 1").code, 0);
  r = ctl("apply mul 2 3 --targets 2");
  EXPECT_NE(r.err.find("TaskNotFound"), std::string::npos) << "not replayed: " << r.out << r.err;
  EXPECT_NE(ctl("--json plugins").out.find("\"active\":false"), std::string::npos);
}

TEST_F(Ippctl, AnEnginesConnectionFileCannotPushQueryOrShutTheClusterDown) {
  ASSERT_EQ(ctl("cluster start -n 1").code, 0);
  // The engine's file says it is no client's.
  const CtlResult engine_file =
      ctl("--file '" + (dir_.path() / "ipp-engine.json").string() + "' ids");
  EXPECT_EQ(engine_file.code, 3);
  EXPECT_NE(engine_file.err.find("is an engine's connection file"), std::string::npos)
      << engine_file.err;
  // What anyone reading the engine file on an engine's host could try: its key with the
  // client's endpoints (which a port scan finds).
  net::ConnectionInfo stolen = net::read_connection_file(dir_.path() / "ipp-client.json");
  stolen.key = net::read_connection_file(dir_.path() / "ipp-engine.json").key;
  net::write_connection_file(dir_.path() / "stolen.json", stolen);
  const std::string as_engine = "--file '" + (dir_.path() / "stolen.json").string() + "' ";
  for (const std::string& what : {"push " + test::plugin("arith").string(),
                                  std::string("cluster stop"), std::string("ids")}) {
    const CtlResult r = ctl(as_engine + what);
    EXPECT_NE(r.code, 0) << what;
    EXPECT_NE(r.err.find("PermissionDenied"), std::string::npos) << what << ": " << r.err;
    EXPECT_NE(r.err.find("an engine's credentials"), std::string::npos) << what << ": " << r.err;
  }
  // None of it happened: the cluster runs on, without the plugin.
  EXPECT_EQ(ctl("ids").out, "[0]\n");
  EXPECT_EQ(ctl("plugins").out.find("arith"), std::string::npos);
}

TEST_F(Ippctl, AnEncryptedClusterServesItsPeersAndRefusesKeysNotTheirs) {
  ASSERT_EQ(ctl("cluster start -n 2 --encryption on").code, 0);
  const auto client = net::read_connection_file(dir_.path() / "ipp-client.json");
  const auto engine = net::read_connection_file(dir_.path() / "ipp-engine.json");
  ASSERT_TRUE(client.curve.on());
  EXPECT_EQ(client.curve.server_key, engine.curve.server_key);
  EXPECT_NE(client.curve.public_key, engine.curve.public_key);
  // The controller's secret is in a file of its own, readable by its owner only, and in no
  // peer's file.
  const auto secrets = net::read_controller_file(dir_.path() / "ipp-controller.json");
  EXPECT_EQ(std::filesystem::status(dir_.path() / "ipp-controller.json").permissions() &
                std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  for (const auto* file : {"ipp-client.json", "ipp-engine.json"})
    EXPECT_EQ(slurp(dir_.path() / file).find(secrets.server.secret_key), std::string::npos);
  // Engines (through the Unix sockets and TCP) and clients work as without it.
  EXPECT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  EXPECT_EQ(ctl("map mul 1..9 2..10").out, "[2, 6, 12, 20, 30, 42, 56, 72, 90]\n");
  // A peer holding the server's key but a pair of its own, or the engines' pair where clients
  // connect, is refused at the handshake: its caller gets a ConnectionError, not a hang.
  net::ConnectionInfo stranger = client;
  const auto pair = net::CurvePair::generate();
  stranger.curve.public_key = pair.public_key;
  stranger.curve.secret_key = pair.secret_key;
  net::write_connection_file(dir_.path() / "stranger.json", stranger);
  net::ConnectionInfo engine_pair = client;
  engine_pair.curve = engine.curve;
  net::write_connection_file(dir_.path() / "engine-pair.json", engine_pair);
  const auto as = [&](const char* file) {
    return ctl("--timeout-ms 1500 --file '" + (dir_.path() / file).string() + "' apply mul 2 3");
  };
  CtlResult r = as("stranger.json");
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("closed this client's connection"), std::string::npos) << r.err;
  // The engines' pair may reach the hub (engines register there), never the task channels:
  // the refusal fails the tasks (1), or the whole command if it came first (3).
  r = as("engine-pair.json");
  EXPECT_TRUE(r.code == 1 || r.code == 3) << r.out << r.err;
  EXPECT_NE(r.err.find("closed this client's connection"), std::string::npos) << r.err;
  EXPECT_NE(slurp(dir_.path() / "logs" / "controller.log").find("refused a connection"),
            std::string::npos);
  EXPECT_EQ(ctl("apply mul 2 3").out, "[6, 6]\n");
}

TEST_F(Ippctl, NoControllerIsExitCodeThree) {
  const CtlResult r = ctl("ids");
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("is a controller running"), std::string::npos) << r.err;
  EXPECT_EQ(ctl("cluster status").code, 3);
}

}  // namespace
}  // namespace ipp

namespace ipp {
namespace {

TEST_F(Ippctl, NamespaceCommands) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 2").code, 0);
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);

  CtlResult r = ctl("execute 'import sysinfo; a = sysinfo.getpid()'");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  r = ctl("pull a");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.front(), '[');
  EXPECT_EQ(ctl("pull a --targets 0").out.find('['), std::string::npos);

  EXPECT_EQ(ctl("set n=5").code, 0);
  EXPECT_EQ(ctl("pull n").out, "[5, 5]\n");
  EXPECT_EQ(ctl("set 'xs=[1, 2]' --targets 1").code, 0);
  EXPECT_EQ(ctl("pull xs --targets 1").out, "[1, 2]\n");
  EXPECT_EQ(ctl("apply mul @n 3").out, "[15, 15]\n");
  EXPECT_EQ(ctl("execute 'm = mul(n, 2)' --targets 0").code, 0);
  EXPECT_EQ(ctl("pull m --targets 0").out, "10\n");

  EXPECT_EQ(ctl("scatter x 1..9").code, 0);
  EXPECT_EQ(ctl("pull x").out, "[range(1, 6), range(6, 10)]\n");
  EXPECT_EQ(ctl("gather x").out, "range(1, 10)\n");
  EXPECT_EQ(ctl("map mul @x @x").out, "[1, 4, 9, 16, 25, 36, 49, 64, 81]\n");
  EXPECT_EQ(ctl("scatter l '[1, \"b\", 3.5]'").code, 0);
  EXPECT_EQ(ctl("gather l").out, "[1, 'b', 3.5]\n");

  const CtlResult json = ctl("--json gather x");
  EXPECT_NE(json.out.find("\"result\":[1,2,3,4,5,6,7,8,9]"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"msg_ids\":["), std::string::npos) << json.out;
  EXPECT_NE(ctl("--json set q=1").out.find("\"result\":[null,null]"), std::string::npos);

  // Errors name what was wrong, with the right exit code.
  r = ctl("execute 'y = 1\nz = mul(y, ghost)' --targets 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("engine 1, line 2, column 12"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("name 'ghost' is not defined"), std::string::npos) << r.err;
  r = ctl("execute 'a = [1'");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("never closed"), std::string::npos) << r.err;
  r = ctl("pull nothing --targets 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("name 'nothing' is not defined on engine 0"), std::string::npos) << r.err;
  r = ctl("apply mul @nothing 1 --targets 0");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("'nothing'"), std::string::npos) << r.err;
  EXPECT_EQ(ctl("set 5=1").code, 2);
  EXPECT_EQ(ctl("set novalue").code, 2);
  EXPECT_EQ(ctl("scatter x 5").code, 1);
  EXPECT_NE(ctl("scatter x 5").err.find("scatter needs a sequence"), std::string::npos);

  EXPECT_EQ(ctl("clear").code, 0);
  EXPECT_EQ(ctl("pull n").code, 1);
  EXPECT_EQ(ctl("apply mul 2 3 --targets 1").out, "6\n");  // the engines go on
}

}  // namespace
}  // namespace ipp

namespace ipp {
namespace {

TEST_F(Ippctl, ClusterStartRestoresAProfileWhoseControllerDied) {
  ASSERT_EQ(ctl("cluster start -n 2 --engine-threads 2").code, 0);
  ASSERT_EQ(ctl("push " + test::plugin("arith").string()).code, 0);
  const CtlResult before = ctl("apply getpid");
  const CtlResult status = ctl("--json cluster status");
  const auto at = status.out.find("\"controller\":");
  ASSERT_NE(at, std::string::npos) << status.out;
  const pid_t controller = std::stoi(status.out.substr(at + 13));
  ASSERT_EQ(::kill(controller, SIGKILL), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let it die

  const CtlResult restart = ctl("cluster start -n 2");
  ASSERT_EQ(restart.code, 0) << restart.err;
  EXPECT_NE(restart.out.find("2 engine(s) came back, 0 started"), std::string::npos) << restart.out;
  EXPECT_EQ(ctl("ids").out, "[0, 1]\n");
  EXPECT_EQ(ctl("apply getpid").out, before.out) << "the same engine processes";
  EXPECT_EQ(ctl("apply mul 5 6").out, "[30, 30]\n") << "arith is still pushed";
}

}  // namespace
}  // namespace ipp
