// ipp across hosts. The test hosts are network namespaces on one virtual switch, each with an
// address, a /dev/shm and a host name of its own (scripts/test-hosts.sh): a controller on one,
// engines and clients on the others reach it over TCP only, and share no memory with it.
// Needs root; skipped otherwise.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ipp/client.hpp"
#include "ipp/net/connection_file.hpp"
#include "support/paths.hpp"
#include "support/process.hpp"

namespace ipp {
namespace {

using namespace std::chrono_literals;

class Hosts : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "test hosts are network namespaces: they need root";
    tag_ = "h" + std::to_string(::getpid() % 100000);
    ASSERT_EQ(script("up " + tag_ + " a b c d"), 0) << "cannot make the test hosts";
    up_ = true;
  }
  void TearDown() override {
    engines_.clear();
    if (!up_) return;
    (void)on("a", "ippctl --profile-dir '" + dir_.path().string() + "' cluster stop");
    (void)script("down " + tag_);
  }

  static std::string script_path() {
    return std::string(IPP_SOURCE_DIR) + "/scripts/test-hosts.sh";
  }
  static int script(const std::string& args) {
    const int status = std::system((script_path() + " " + args).c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  /// Runs the shell words `command` (a program of the build's bin/ first) on `host`.
  test::CtlResult on(const std::string& host, const std::string& command) {
    const auto out = dir_ / ("out-" + std::to_string(runs_));
    const auto err = dir_ / ("err-" + std::to_string(runs_++));
    const std::string cmd = script_path() + " exec " + tag_ + " " + host + " " +
                            std::string(IPP_BUILD_DIR) + "/bin/" + command + " > '" + out.string() +
                            "' 2> '" + err.string() + "'";
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), test::slurp(out),
            test::slurp(err)};
  }
  /// An engine on `host`, given the engine connection file.
  void engine_on(const std::string& host) {
    engines_.push_back(std::make_unique<test::Process>(
        std::vector<std::string>{script_path(), "exec", tag_, host, test::binary("ippengine"),
                                 "--file", (dir_ / net::kEngineFile).string(), "--threads", "2",
                                 "--log-level", "warn"},
        (dir_ / ("engine-" + host + ".log")).string()));
  }
  /// ippctl on `host`, reaching the controller through the client connection file.
  test::CtlResult ctl_on(const std::string& host, const std::string& args) {
    return on(host, "ippctl --file '" + (dir_ / net::kClientFile).string() + "' " + args);
  }

  /// What host `host` sent and received on its link while `body` ran, as tcpdump there
  /// captured it (a pcap file's bytes).
  std::string captured_on(const std::string& host, const std::function<void()>& body) {
    const auto file = dir_ / ("capture-" + host + ".pcap");
    const auto log = dir_ / ("tcpdump-" + host + ".log");
    {
      test::Process dump({script_path(), "exec", tag_, host, "tcpdump", "-i", "eth0",
                          "--immediate-mode", "-U", "-s", "0", "-w", file.string()},
                         log.string());
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (test::slurp(log).find("listening on") == std::string::npos) {
        if (std::chrono::steady_clock::now() > deadline) {
          ADD_FAILURE() << "tcpdump did not start: " << test::slurp(log);
          return {};
        }
        std::this_thread::sleep_for(50ms);
      }
      body();
      std::this_thread::sleep_for(300ms);
    }  // stopped: the file is complete
    const std::string bytes = test::slurp(file);
    if (bytes.size() <= 24) ADD_FAILURE() << "tcpdump captured nothing: " << test::slurp(log);
    return bytes;
  }
  /// Waits until `n` engines are registered, as a client on `host` sees them.
  bool engines_up(const std::string& host, const std::string& ids) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (ctl_on(host, "ids").out != ids) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(100ms);
    }
    return true;
  }

  /// Starts sshd on `hosts` (words); the ssh command that reaches them, or "" when there is no
  /// sshd here.
  std::string sshd_on(const std::string& hosts) {
    if (!std::filesystem::exists("/usr/sbin/sshd")) return {};
    const auto config = dir_ / "ssh-config-path";
    if (script("sshd " + tag_ + " " + hosts + " > '" + config.string() + "'") != 0) return {};
    std::string cfg = test::slurp(config);
    while (!cfg.empty() && cfg.back() == '\n')
      cfg.pop_back();
    return "ssh -F " + cfg;
  }
  /// ippctl on host a for the profile of this test.
  test::CtlResult here(const std::string& args) {
    return on("a", "ippctl --profile-dir '" + dir_.path().string() + "' " + args);
  }
  /// The supervised entries of `cluster status --json` on host a.
  nlohmann::json supervised() {
    const test::CtlResult r = here("--json cluster status");
    const auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_object() && j.contains("supervised") ? j["supervised"] : nlohmann::json::array();
  }
  /// The private directories the ssh launcher's engines got their connection file in, by
  /// what that file holds.
  static std::vector<std::string> engine_files() {
    std::vector<std::string> files;
    for (const auto& d : std::filesystem::directory_iterator("/tmp")) {
      if (d.path().filename().string().rfind("ipp-engine.", 0) != 0) continue;
      files.push_back(test::slurp(d.path() / "ipp-engine.json"));
    }
    return files;
  }

  test::TempDir dir_;
  std::string tag_;
  bool up_ = false;
  int runs_ = 0;
  std::vector<std::unique_ptr<test::Process>> engines_;
};

TEST_F(Hosts, EnginesAndClientsOnOtherHostsReachAControllerListeningEverywhere) {
  const std::string profile = dir_.path().string();
  const test::CtlResult started =
      on("a", "ippctl --profile-dir '" + profile + "' cluster start -n 1 --ip 0.0.0.0");
  ASSERT_EQ(started.code, 0) << started.out << started.err;
  // The files name host a's address, the one the others reach it at.
  const net::ConnectionInfo info = net::read_connection_file(dir_ / net::kClientFile);
  EXPECT_EQ(info.endpoint("registration").rfind("tcp://10.77.0.1:", 0), 0u)
      << info.endpoint("registration");
  engine_on("b");
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (ctl_on("b", "ids").out != "[0, 1]\n") {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "the engine on host b did not register: " << test::slurp(dir_ / "engine-b.log");
    std::this_thread::sleep_for(100ms);
  }
  // A client on host b: tasks on both hosts, and maps across them.
  ASSERT_EQ(ctl_on("b", "push " + test::plugin("arith").string()).code, 0);
  test::CtlResult r = ctl_on("b", "apply mul 6 7");
  EXPECT_EQ(r.out, "[42, 42]\n") << r.err;
  r = ctl_on("b", "map mul 1..9 2..10");
  EXPECT_EQ(r.out, "[2, 6, 12, 20, 30, 42, 56, 72, 90]\n") << r.err;
  // Results that cross the network (no shared memory between the hosts): 1.6 MB of int64.
  r = ctl_on("b", "map mul 0..199999 1..200000");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.ends_with(", 39999800000]\n"))
      << r.out.substr(r.out.size() - std::min<std::size_t>(r.out.size(), 100));
  // Each engine is named by its host.
  const test::CtlResult status = ctl_on("b", "cluster status");
  EXPECT_NE(status.out.find("on " + tag_ + "-a"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("on " + tag_ + "-b"), std::string::npos) << status.out;
  std::cout << status.out;
}

TEST_F(Hosts, TrafficBetweenHostsIsEncryptedUnlessToldOtherwise) {
  const std::string profile = dir_.path().string();
  const std::string secret = "unmistakable-payload-7f3a";
  for (const bool encrypted : {true, false}) {
    SCOPED_TRACE(encrypted ? "encrypted by default" : "--encryption off");
    const test::CtlResult started =
        on("a", "ippctl --profile-dir '" + profile + "' cluster start -n 1 --ip 0.0.0.0" +
                    (encrypted ? "" : " --encryption off"));
    ASSERT_EQ(started.code, 0) << started.out << started.err;
    EXPECT_EQ(net::read_connection_file(dir_ / net::kClientFile).curve.on(), encrypted);
    engine_on("b");
    ASSERT_TRUE(engines_up("b", "[0, 1]\n")) << test::slurp(dir_ / "engine-b.log");
    ASSERT_EQ(ctl_on("b", "push " + test::plugin("strings").string()).code, 0);
    // The client on b sends the string to the controller on a, which sends it to both engines
    // (one of them back on b), and the results come back to b.
    test::CtlResult r;
    const std::string wire = captured_on("b", [&] { r = ctl_on("b", "apply upper " + secret); });
    EXPECT_EQ(r.out, "['UNMISTAKABLE-PAYLOAD-7F3A', 'UNMISTAKABLE-PAYLOAD-7F3A']\n") << r.err;
    ASSERT_GT(wire.size(), 1000u) << "nothing captured";
    if (encrypted) {
      EXPECT_EQ(wire.find(secret), std::string::npos) << "the argument crossed in plain text";
      EXPECT_EQ(wire.find("UNMISTAKABLE-PAYLOAD"), std::string::npos) << "the result did";
    } else {
      EXPECT_NE(wire.find(secret), std::string::npos) << "the capture saw no payload at all";
    }
    engines_.clear();
    ASSERT_EQ(on("a", "ippctl --profile-dir '" + profile + "' cluster stop").code, 0);
  }
}

TEST_F(Hosts, SshReachesATestHostWithItsOwnNameAndMemory) {
  if (!std::filesystem::exists("/usr/sbin/sshd")) GTEST_SKIP() << "no sshd (openssh-server)";
  // What an SSH launcher relies on: Debian's sshd on host b, reached from host a, runs
  // commands on b (its name, its /dev/shm).
  const auto config = dir_ / "ssh-config-path";
  ASSERT_EQ(script("sshd " + tag_ + " b > '" + config.string() + "'"), 0);
  std::string cfg = test::slurp(config);
  while (!cfg.empty() && cfg.back() == '\n')
    cfg.pop_back();
  const auto out = dir_ / "ssh.out";
  const std::string probe = "ipp-ssh-probe-" + tag_;
  const std::string cmd = script_path() + " exec " + tag_ + " a ssh -F '" + cfg +
                          "' 10.77.0.2 'hostname; touch /dev/shm/" + probe + "' > '" +
                          out.string() + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << test::slurp(out);
  EXPECT_EQ(test::slurp(out), tag_ + "-b\n");
  EXPECT_TRUE(std::filesystem::exists("/run/ipp-test-hosts/" + tag_ + "/shm/b/" + probe));
  EXPECT_FALSE(std::filesystem::exists("/dev/shm/" + probe));
}

TEST_F(Hosts, ALinkDownForSecondsFailsTheTasksThereOnceAndTheEngineComesBack) {
  const std::string profile = dir_.path().string();
  ASSERT_EQ(on("a", "ippctl --profile-dir '" + profile +
                        "' cluster start -n 1 --ip 0.0.0.0 --heartbeat-ms 500")
                .code,
            0);
  engine_on("b");
  const auto wait_for_both = [&] {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (ctl_on("a", "ids").out != "[0, 1]\n") {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(100ms);
    }
    return true;
  };
  ASSERT_TRUE(wait_for_both()) << test::slurp(dir_ / "engine-b.log");
  ASSERT_EQ(ctl_on("a", "push " + test::plugin("arith").string()).code, 0);
  // A task runs on host b's engine when b's cable is pulled for 4 s (8 heartbeats).
  auto task = std::async(std::launch::async,
                         [&] { return ctl_on("a", "--json apply wait_here 2 --targets 1"); });
  std::this_thread::sleep_for(500ms);
  ASSERT_EQ(script("link " + tag_ + " b down"), 0);
  const test::CtlResult failed = task.get();  // the engine is declared dead: told at once
  ASSERT_EQ(script("link " + tag_ + " b up"), 0);
  EXPECT_EQ(failed.code, 1) << failed.out << failed.err;
  EXPECT_NE(failed.out.find("EngineError"), std::string::npos) << failed.out;
  const auto id_at = failed.out.find("\"msg_ids\":[\"");
  ASSERT_NE(id_at, std::string::npos) << failed.out;
  const std::string msg_id = failed.out.substr(id_at + 12, 32);
  // The engine comes back (the same controller: it drops the task it held) and serves.
  ASSERT_TRUE(wait_for_both()) << test::slurp(dir_ / "engine-b.log");
  EXPECT_EQ(ctl_on("a", "apply mul 6 7").out, "[42, 42]\n");
  // One outcome: the database says what the client was told, also once the engine's own
  // (dropped) run would have finished.
  std::this_thread::sleep_for(2500ms);
  const test::CtlResult row = ctl_on("a", "--json query 'msg_id == \"" + msg_id + "\"'");
  EXPECT_NE(row.out.find("\"status\":\"engine_died\""), std::string::npos) << row.out << row.err;
  EXPECT_EQ(row.out.find("\"status\":\"ok\""), std::string::npos) << row.out;
}

TEST_F(Hosts, TheSshLauncherStartsSupervisesAndStopsEnginesOnOtherHosts) {
  const std::string ssh = sshd_on("b c");
  if (ssh.empty()) GTEST_SKIP() << "no sshd (openssh-server)";
  // Controller on a, engines on b and c started over ssh, a client on d.
  const test::CtlResult started =
      here("cluster start --hosts 10.77.0.2:2,10.77.0.3:1 --engine-threads 2 --ssh '" + ssh + "'");
  ASSERT_EQ(started.code, 0) << started.out << started.err;
  EXPECT_NE(started.out.find("3 engines (0 here, 3 over ssh"), std::string::npos) << started.out;
  const test::CtlResult ids = ctl_on("d", "ids");
  EXPECT_EQ(ids.out, "[0, 1, 2]\n") << ids.err;
  const std::string status = ctl_on("d", "cluster status").out;
  std::size_t on_b = 0, on_c = 0;
  for (auto at = status.find(" on " + tag_ + "-b"); at != std::string::npos;
       at = status.find(" on " + tag_ + "-b", at + 1))
    ++on_b;
  for (auto at = status.find(" on " + tag_ + "-c"); at != std::string::npos;
       at = status.find(" on " + tag_ + "-c", at + 1))
    ++on_c;
  EXPECT_EQ(on_b, 2u) << status;
  EXPECT_EQ(on_c, 1u) << status;
  ASSERT_EQ(ctl_on("d", "push " + test::plugin("arith").string()).code, 0);
  EXPECT_EQ(ctl_on("d", "apply mul 6 7").out, "[42, 42, 42]\n");

  // Each engine got the engine connection file, in a private directory; the client's key
  // went nowhere.
  const std::string engine_file = test::slurp(dir_ / net::kEngineFile);
  const std::string client_key = net::read_connection_file(dir_ / net::kClientFile).key;
  ASSERT_FALSE(client_key.empty());
  int copies = 0;
  for (const auto& f : engine_files()) {
    copies += f == engine_file ? 1 : 0;
    EXPECT_EQ(f.find(client_key), std::string::npos) << "the client's key reached an engine host";
  }
  EXPECT_EQ(copies, 3);

  // An engine on c killed by SIGABRT there (a crash: a sanitizer's own handler would take
  // SIGSEGV first): reported as locally, and started again there.
  nlohmann::json entries = supervised();
  ASSERT_EQ(entries.size(), 3u) << entries.dump();
  nlohmann::json on_c_entry;
  for (const auto& e : entries) {
    if (e["host"] == "10.77.0.3") on_c_entry = e;
  }
  ASSERT_TRUE(on_c_entry.is_object()) << entries.dump();
  const pid_t victim = on_c_entry["engine_pid"].get<pid_t>();
  const std::int64_t victim_id = on_c_entry["engine"].get<std::int64_t>();
  ASSERT_EQ(script("exec " + tag_ + " c kill -ABRT " + std::to_string(victim)), 0);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (true) {
    bool back = false;
    for (const auto& e : supervised()) {
      if (e["slot"] == on_c_entry["slot"] && e["restarts"] == 1 && e["state"] == "running") {
        back = true;
        EXPECT_EQ(e["last_exit"], "was killed by signal 6 (SIGABRT) on 10.77.0.3") << e.dump();
        EXPECT_EQ(e["engine"], victim_id) << "restarted under its id";
        EXPECT_NE(e["engine_pid"], victim);
        EXPECT_EQ(e["engine_host"], tag_ + "-c");
      }
    }
    if (back) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << supervised().dump();
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_TRUE(engines_up("d", "[0, 1, 2]\n"));
  EXPECT_EQ(ctl_on("d", "apply mul 6 7").out, "[42, 42, 42]\n");

  // add and remove, as locally.
  const test::CtlResult added = here("cluster add --hosts 10.77.0.3");
  EXPECT_EQ(added.code, 0) << added.err;
  EXPECT_NE(added.out.find("added engine 3 (pid "), std::string::npos) << added.out;
  EXPECT_NE(added.out.find(" on " + tag_ + "-c)"), std::string::npos) << added.out;
  const test::CtlResult removed = here("cluster remove 3");
  EXPECT_EQ(removed.code, 0) << removed.err;
  EXPECT_NE(removed.out.find("drained and removed: its process exited with code 0 on 10.77.0.3"),
            std::string::npos)
      << removed.out;
  EXPECT_EQ(ctl_on("d", "ids").out, "[0, 1, 2]\n");

  // Stopped: no engine left on any host, and no copy of the file.
  std::vector<pid_t> remote;
  for (const auto& e : supervised()) {
    if (e["alive"] == true) remote.push_back(e["engine_pid"].get<pid_t>());
  }
  ASSERT_EQ(remote.size(), 3u);
  ASSERT_EQ(here("cluster stop").code, 0);
  for (const pid_t p : remote)
    EXPECT_FALSE(test::alive(p)) << "engine " << p << " outlived cluster stop";
  for (const auto& f : engine_files())
    EXPECT_NE(f, engine_file) << "a copy of the engine file outlived its engine";
}

TEST_F(Hosts, AHostSshCannotReachIsACleanErrorNotAWait) {
  const std::string ssh = sshd_on("b");
  if (ssh.empty()) GTEST_SKIP() << "no sshd (openssh-server)";
  // c has no sshd: refused at once. Nothing waits for the engines' registration time-out.
  const auto began = std::chrono::steady_clock::now();
  const test::CtlResult r = here("cluster start --hosts 10.77.0.2,10.77.0.3 --ssh '" + ssh + "'");
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("could not be started on 10.77.0.3: ssh failed; not restarted"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("Connection refused"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::steady_clock::now() - began, 20s);
  // An ippengine that is not where it is said to be, likewise.
  ASSERT_EQ(here("cluster stop").code, 0);
  const test::CtlResult missing = here(
      "cluster start --hosts 10.77.0.2 --remote-engine /nonexistent/ippengine --ssh '" + ssh + "'");
  EXPECT_EQ(missing.code, 3);
  EXPECT_NE(missing.err.find("could not run /nonexistent/ippengine on 10.77.0.2 (exit code 127)"),
            std::string::npos)
      << missing.err;
}

TEST_F(Hosts, AnSshEngineCutOffLongerThanItWaitsComesBackWhenTheLinkDoes) {
  const std::string ssh = sshd_on("b");
  if (ssh.empty()) GTEST_SKIP() << "no sshd (openssh-server)";
  std::ofstream(dir_ / "hosts") << "# the engine host\n10.77.0.2 1\n";
  ASSERT_EQ(here("cluster start --engines ssh --hostfile '" + (dir_ / "hosts").string() +
                 "' --engine-threads 2 --heartbeat-ms 500 --ssh '" + ssh + "'")
                .code,
            0);
  // Down for 13 s: the engine gives its controller up after 10 s and ends there. Its
  // supervisor on a starts it again over ssh once b can be reached.
  ASSERT_EQ(script("link " + tag_ + " b down"), 0);
  std::this_thread::sleep_for(13s);
  ASSERT_EQ(script("link " + tag_ + " b up"), 0);
  ASSERT_TRUE(engines_up("a", "[0]\n")) << supervised().dump();
  ASSERT_EQ(here("push " + test::plugin("arith").string()).code, 0);
  EXPECT_EQ(here("apply mul 6 7").out, "[42]\n");
  const nlohmann::json entries = supervised();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_GE(entries[0]["restarts"].get<int>(), 1) << entries.dump();
  EXPECT_EQ(entries[0]["state"], "running") << entries.dump();
}

}  // namespace
}  // namespace ipp
