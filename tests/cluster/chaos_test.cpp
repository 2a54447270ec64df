// A chaos soak, bounded in time: clients submit load-balanced work with retries while a driver
// kills (SIGKILL) and pauses (SIGSTOP past a heartbeat) engines at random, and kills the
// controller once (kill -9) and restores it with `ippctl cluster start`, as a user would. At the
// end every task is accounted for: one outcome, the same in its client and in the database, no
// row left pending; no task finished twice on an engine that was not hit; no process died but
// those killed. The counts are printed.
//
// IPP_CHAOS_SECONDS sets how long the chaos lasts (default 60); IPP_CHAOS_SEED replays a run.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ipp/client.hpp"
#include "support/paths.hpp"
#include "support/process.hpp"

namespace ipp {
namespace {

using test::alive;
using test::slurp;

using namespace std::chrono_literals;
using json = nlohmann::json;
using Steady = std::chrono::steady_clock;

constexpr int kEngines = 4;
constexpr int kClients = 3;
constexpr int kBatch = 12;
constexpr int kHeartbeatMs = 500;

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::stoull(v) : fallback;
}

/// What a client was told about one task: its value, or the code of its error.
struct Outcome {
  std::string token;
  bool ok = false;
  std::string value;
  ErrorCode code = ErrorCode::unknown;
  std::string message;
};

Outcome outcome_of(const std::string& token, const std::function<Value()>& get) {
  Outcome o;
  o.token = token;
  try {
    const Value v = get();
    o.ok = true;
    o.value = v.kind() == Value::Kind::string ? v.as_string() : v.repr();
  } catch (const Error& e) {
    o.code = e.code();
    o.message = e.what();
  }
  return o;
}

class Chaos : public ::testing::Test {
 protected:
  /// ippctl's exit code, and all it printed (standard output and error).
  test::CtlResult ctl(const std::string& args) {
    test::CtlResult r = test::ippctl(dir_.path(), args);
    r.out += r.err;
    return r;
  }
  void TearDown() override {
    for (pid_t p : paused_)
      ::kill(p, SIGCONT);
    (void)ctl("cluster stop");
    if (HasFailure()) {
      // The logs of a failed run outlive its profile, for the seed to be looked into.
      const auto kept = std::filesystem::temp_directory_path() / fmt::format("ipp-chaos-{}", seed_);
      std::error_code ec;
      std::filesystem::remove_all(kept, ec);
      std::filesystem::copy(dir_ / "logs", kept, std::filesystem::copy_options::recursive, ec);
      std::cout << "chaos: the logs are in " << kept.string() << "\n";
    }
  }
  json cluster_file() { return json::parse(slurp(dir_ / "cluster.json")); }

  /// Engines registered now, also those still loading the pushed plugins: pid by id. A kill
  /// from outside while an engine loads a plugin must not count against the plugin.
  std::map<std::int64_t, pid_t> engines(const Client& rc) {
    std::map<std::int64_t, pid_t> out;
    const Value listed = rc.engines();
    for (const auto& e : listed.as_list())
      out[e["id"].as_int()] = static_cast<pid_t>(e["pid"].as_int());
    return out;
  }

  void client_loop(int index, const std::atomic<bool>& stop) {
    Client rc(ClientOptions{.profile_dir = dir_.path()});
    const LoadBalancedView lb = rc.load_balanced_view().with({.retries = 4});
    std::mt19937_64 rng(seed_ + static_cast<std::uint64_t>(index));
    std::uniform_int_distribution<int> ms(2, 40);
    for (int batch = 0; !stop.load(); ++batch) {
      std::vector<std::pair<std::string, AsyncResult>> sent;
      for (int i = 0; i < kBatch; ++i) {
        const std::string token = fmt::format("c{}-{}-{}", index, batch, i);
        sent.emplace_back(token, lb.apply_async("journal", {journal_.string(), token, ms(rng)}));
      }
      for (auto& [token, r] : sent) {
        Outcome o = outcome_of(token, [&r = r] { return r.get(60s); });
        std::lock_guard lock(mutex_);
        outcomes_[r.msg_ids().at(0)] = std::move(o);
      }
    }
  }

  /// Kills or pauses engines at random until `until`; kills and restores the controller once,
  /// half-way.
  void drive(Steady::time_point until) {
    Client rc(ClientOptions{.profile_dir = dir_.path()});
    std::mt19937_64 rng(seed_);
    std::uniform_real_distribution<double> pause_s(0.5, 1.5);
    const auto restore_at = Steady::now() + (until - Steady::now()) / 2;
    bool restored = false;
    while (Steady::now() < until) {
      std::this_thread::sleep_for(std::chrono::duration<double>(pause_s(rng)));
      if (!restored && Steady::now() > restore_at) {
        restore_controller();
        restored = true;
        continue;
      }
      std::map<std::int64_t, pid_t> now;
      try {
        now = engines(rc);
      } catch (const Error& e) {
        std::cout << "chaos: engines not listed: " << e.what() << "\n";
        continue;  // the controller is busy starting again
      }
      if (now.empty()) continue;
      for (const auto& [id, pid] : now)
        seen_.insert(pid);
      auto it = now.begin();
      std::advance(it, std::uniform_int_distribution<std::size_t>(0, now.size() - 1)(rng));
      const auto [victim_id, victim] = *it;
      // The supervisor gives up on an engine that crashed 5 times in 60 s (a crash loop):
      // an engine is killed at most 3 times a minute, paused otherwise.
      auto& kills = kills_of_[victim_id];
      while (!kills.empty() && Steady::now() - kills.front() > 60s)
        kills.pop_front();
      faulted_.insert(victim);
      if (kills.size() < 3 && std::bernoulli_distribution(0.6)(rng)) {
        kills.push_back(Steady::now());
        ::kill(victim, SIGKILL);
        killed_.insert(victim);
        ++kills_;
      } else {
        // Paused past its heartbeat: declared dead, its tasks run again elsewhere; resumed,
        // it stops what it held and registers again.
        paused_.insert(victim);
        ::kill(victim, SIGSTOP);
        std::this_thread::sleep_for(std::chrono::milliseconds(
            std::uniform_int_distribution<int>(2 * kHeartbeatMs, 4 * kHeartbeatMs)(rng)));
        ::kill(victim, SIGCONT);
        paused_.erase(victim);
        ++pauses_;
      }
    }
  }

  void restore_controller() {
    const pid_t controller = cluster_file()["controller"].get<pid_t>();
    ASSERT_EQ(::kill(controller, SIGKILL), 0);
    const auto deadline = Steady::now() + 10s;
    while (alive(controller)) {
      ASSERT_LT(Steady::now(), deadline) << "the controller did not die";
      std::this_thread::sleep_for(10ms);
    }
    killed_controller_ = controller;
    const test::CtlResult r =
        ctl(fmt::format("cluster start -n {} --heartbeat-ms {}", kEngines, kHeartbeatMs));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("cluster restored"), std::string::npos) << r.out;
  }

  /// Runs of each token that finished, with the pid that ran them (the journal's lines).
  std::map<std::string, std::vector<pid_t>> journal_runs() {
    std::map<std::string, std::vector<pid_t>> runs;
    std::ifstream in(journal_);
    std::string token;
    pid_t pid = 0;
    while (in >> token >> pid)
      runs[token].push_back(pid);
    return runs;
  }

  test::TempDir dir_;
  std::filesystem::path journal_ = dir_ / "journal.txt";
  std::uint64_t seed_ = env_or("IPP_CHAOS_SEED", std::random_device{}());
  std::mutex mutex_;
  std::map<std::string, Outcome> outcomes_;  // by msg_id
  std::set<pid_t> seen_, faulted_, killed_, paused_;
  std::map<std::int64_t, std::deque<Steady::time_point>> kills_of_;  // by engine id
  pid_t killed_controller_ = -1;
  int kills_ = 0, pauses_ = 0;
};

TEST_F(Chaos, EveryTaskIsAccountedForThroughKillsPausesAndAControllerRestore) {
  const auto seconds = env_or("IPP_CHAOS_SECONDS", 60);
  std::cout << "chaos: seed " << seed_ << " (IPP_CHAOS_SEED), " << seconds << " s\n";
  const test::CtlResult started =
      ctl(fmt::format("cluster start -n {} --heartbeat-ms {}", kEngines, kHeartbeatMs));
  ASSERT_EQ(started.code, 0) << started.out;
  const pid_t supervisor = cluster_file()["supervisor"].get<pid_t>();
  Client rc(ClientOptions{.profile_dir = dir_.path()});
  rc.push_plugin(test::test_plugin("sched"));

  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] { client_loop(i, stop); });
  drive(Steady::now() + std::chrono::seconds(seconds));
  stop = true;
  for (auto& t : clients)
    t.join();
  ASSERT_NE(killed_controller_, -1) << "the controller was never killed";

  // Every engine comes back (restarted by the supervisor, or registered again).
  Client after(ClientOptions{.profile_dir = dir_.path()});
  const auto back = Steady::now() + 60s;
  while (after.ids().size() != kEngines) {
    ASSERT_LT(Steady::now(), back) << "engines: " << after.ids().size();
    std::this_thread::sleep_for(50ms);
  }

  // No row stays pending.
  std::vector<std::string> ids;
  for (const auto& [id, o] : outcomes_)
    ids.push_back(id);
  const auto settled = Steady::now() + 60s;
  while (true) {
    const Value status = after.result_status(ids);
    if (status["pending"].size() == 0) {
      EXPECT_EQ(status["unknown"].size(), 0u) << "tasks the database never heard of";
      break;
    }
    ASSERT_LT(Steady::now(), settled) << status["pending"].size() << " rows stay pending";
    std::this_thread::sleep_for(100ms);
  }

  // One outcome per task, the same in its client and the database. A client told that the
  // controller restarted while its task was in flight looks the task up in the database (as
  // its error says to); that is then its outcome.
  std::map<std::string, int> counts;
  int looked_up = 0, mismatched = 0;
  for (auto& [id, o] : outcomes_) {
    const Outcome db =
        outcome_of(o.token, [&, id = id] { return after.get_result(id, Duration(10000)); });
    if (!o.ok && o.code == ErrorCode::connection) {
      ++looked_up;
      o = db;
    }
    if (o.ok != db.ok || o.value != db.value || o.code != db.code) {
      if (++mismatched <= 10)
        ADD_FAILURE() << id << " (" << o.token << "): client "
                      << (o.ok ? o.value : std::string(to_string(o.code)) + ": " + o.message)
                      << ", database "
                      << (db.ok ? db.value : std::string(to_string(db.code)) + ": " + db.message);
    }
    if (o.ok) {
      EXPECT_EQ(o.value, o.token);
    } else {
      EXPECT_FALSE(o.message.empty()) << id << ": a failure names its reason";
    }
    ++counts[o.ok ? "ok" : std::string(to_string(o.code))];
  }
  EXPECT_EQ(mismatched, 0);

  // Finished runs: a task whose outcome is a value ran to its end at least once; a second
  // finished run is only ever one on an engine the driver hit (killed or paused before its
  // reply left), never on a healthy engine and never because of the controller's restart.
  const auto runs = journal_runs();
  int ran_again = 0;
  for (const auto& [id, o] : outcomes_) {
    const auto it = runs.find(o.token);
    const std::size_t n = it == runs.end() ? 0 : it->second.size();
    if (o.ok) {
      EXPECT_GE(n, 1u) << o.token << " has a value but never finished";
    }
    if (n < 2) continue;
    ++ran_again;
    std::size_t healthy = 0;
    for (pid_t p : it->second)
      healthy += faulted_.count(p) == 0 ? 1 : 0;
    EXPECT_LE(healthy, 1u) << o.token << " finished twice on engines that were not hit";
  }

  // No process died but the killed ones.
  EXPECT_TRUE(alive(supervisor)) << "the supervisor";
  const pid_t controller = cluster_file()["controller"].get<pid_t>();
  EXPECT_TRUE(alive(controller)) << "the restored controller";
  for (pid_t p : seen_) {
    if (killed_.count(p) == 0) {
      EXPECT_TRUE(alive(p)) << "engine pid " << p << " died";
    }
  }

  std::cout << fmt::format(
      "chaos: {} tasks from {} clients; {} ok, {} failed ({}); {} looked up after the "
      "controller's restart; {} finished on an engine that was hit and again elsewhere; "
      "{} engines killed, {} paused, 1 controller killed and restored\n",
      outcomes_.size(), kClients, counts["ok"], outcomes_.size() - counts["ok"],
      [&] {
        std::string s;
        for (const auto& [k, v] : counts)
          if (k != "ok") s += fmt::format("{}{}: {}", s.empty() ? "" : ", ", k, v);
        return s.empty() ? std::string("none") : s;
      }(),
      looked_up, ran_again, kills_, pauses_);
  EXPECT_GT(counts["ok"], 0);
  EXPECT_EQ(counts[std::string(to_string(ErrorCode::task_not_found))], 0)
      << "an engine killed or paused as it loaded the plugin lost it for the engines after it";
  EXPECT_GT(kills_, 0);
}

}  // namespace
}  // namespace ipp
