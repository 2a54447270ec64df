// Load-balanced throughput with the hub at full speed and with the hub slowed down on
// purpose (--hub-delay-us per record written), on a real local cluster of two engines. The
// hub records from copies of the schedulers' traffic, so submission must not feel it; the
// benchmark also checks that every task ends up recorded once the hub has caught up.
//
//     ipp-bench-hub [--tasks 1000] [--delay-us 5000] [--json FILE]
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "ipp/client.hpp"
#include "ipp/ctl/process.hpp"
#include "ipp/net/connection_file.hpp"

namespace {

using ipp::ctl::exe_dir;

using Clock = std::chrono::steady_clock;

struct Run {
  double tasks_per_s = 0;
  double catch_up_s = 0;
  std::size_t recorded = 0;
};

Run run(int tasks, std::int64_t delay_us, const std::vector<std::string>& extra) {
  const auto profile = std::filesystem::temp_directory_path() /
                       fmt::format("ipp-bench-hub-{}-{}", ::getpid(), delay_us);
  std::filesystem::create_directories(profile);
  const auto bin = exe_dir();
  std::vector<pid_t> pids;
  std::vector<std::string> controller{(bin / "ippcontroller").string(),
                                      "--profile-dir",
                                      profile.string(),
                                      "--hub-delay-us",
                                      std::to_string(delay_us),
                                      "--log-level",
                                      "warn"};
  controller.insert(controller.end(), extra.begin(), extra.end());
  pids.push_back(ipp::ctl::spawn(controller, {.log = profile / "controller.log"}));
  while (!std::filesystem::exists(profile / ipp::net::kClientFile)) {
    if (::waitpid(pids.back(), nullptr, WNOHANG) == pids.back())
      throw std::runtime_error("the controller did not start: see " +
                               (profile / "controller.log").string());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (int i = 0; i < 2; ++i) {
    pids.push_back(ipp::ctl::spawn({(bin / "ippengine").string(), "--profile-dir", profile.string(),
                                    "--threads", "2", "--log-level", "warn"},
                                   {.log = profile / fmt::format("engine-{}.log", i)}));
  }
  Run out;
  {
    ipp::Client rc(ipp::ClientOptions{.profile_dir = profile, .timeout = ipp::Duration(600000)});
    while (rc.ids().size() < 2)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    rc.push_plugin(bin / ".." / "plugins" / "arith.so");
    ipp::LoadBalancedView lb = rc.load_balanced_view();
    (void)lb.apply("add", {0, 0});  // warm up the path
    const std::size_t before = rc.hub_history().size();

    const auto start = Clock::now();
    std::vector<ipp::AsyncResult> results;
    results.reserve(static_cast<std::size_t>(tasks));
    for (int i = 0; i < tasks; ++i)
      results.push_back(lb.apply_async("add", {i, 1}));
    for (int i = 0; i < tasks; ++i) {
      if (results[static_cast<std::size_t>(i)].get().as_int() != i + 1)
        throw std::runtime_error("a wrong result");
    }
    const auto submitted_and_done = Clock::now();
    out.tasks_per_s = tasks / std::chrono::duration<double>(submitted_and_done - start).count();
    // The hub catches up: every task is in the database.
    out.recorded = rc.hub_history().size() - before;
    out.catch_up_s = std::chrono::duration<double>(Clock::now() - submitted_and_done).count();
    rc.shutdown();
  }
  for (pid_t p : pids)
    ::waitpid(p, nullptr, 0);
  std::error_code ec;
  std::filesystem::remove_all(profile, ec);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ipp-bench-hub: load-balanced throughput with a fast and a slowed hub"};
  int tasks = 1000;
  std::int64_t delay_us = 5000;
  std::string json_file;
  std::vector<std::string> extra;
  app.add_option("--controller-arg", extra, "An extra ippcontroller argument (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--tasks", tasks, "Trivial tasks submitted one by one")->capture_default_str();
  app.add_option("--delay-us", delay_us, "Hub slow-down per record written")->capture_default_str();
  app.add_option("--json", json_file, "Also write the figures to this file");
  CLI11_PARSE(app, argc, argv);
  try {
    const Run fast = run(tasks, 0, extra);
    const Run slow = run(tasks, delay_us, extra);
    fmt::print("{:<40} {:>10} {:>8} {:>14} {:>10}\n",
               fmt::format("{} load-balanced tasks, 2 engines", tasks), "tasks/s", "ratio",
               "hub catch-up s", "recorded");
    fmt::print("{:<40} {:>10.0f} {:>8} {:>14.2f} {:>10}\n", "hub at full speed", fast.tasks_per_s,
               "1.00", fast.catch_up_s, fmt::format("{}/{}", fast.recorded, tasks));
    fmt::print("{:<40} {:>10.0f} {:>8.2f} {:>14.2f} {:>10}\n",
               fmt::format("hub slowed by {} us per record", delay_us), slow.tasks_per_s,
               slow.tasks_per_s / fast.tasks_per_s, slow.catch_up_s,
               fmt::format("{}/{}", slow.recorded, tasks));
    if (!json_file.empty()) {
      nlohmann::json j{{"tasks", tasks},
                       {"delay_us", delay_us},
                       {"fast_tasks_per_s", fast.tasks_per_s},
                       {"slow_tasks_per_s", slow.tasks_per_s},
                       {"ratio", slow.tasks_per_s / fast.tasks_per_s},
                       {"slow_catch_up_s", slow.catch_up_s},
                       {"fast_recorded", fast.recorded},
                       {"slow_recorded", slow.recorded}};
      std::ofstream(json_file) << j.dump(2) << "\n";
    }
    return fast.recorded == static_cast<std::size_t>(tasks) &&
                   slow.recorded == static_cast<std::size_t>(tasks)
               ? 0
               : 1;
  } catch (const std::exception& e) {
    std::cerr << "ipp-bench-hub: " << e.what() << "\n";
    return 1;
  }
}
