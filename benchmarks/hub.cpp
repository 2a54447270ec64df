// Load-balanced throughput with the hub at full speed and with the hub slowed down on
// purpose (--hub-delay-us per record written), on a real local cluster of two engines. The
// hub records from copies of the schedulers' traffic, so submission must not feel it; the
// benchmark also checks that every task ends up recorded once the hub has caught up.
//
//     ipp-bench-hub [--tasks 1000] [--delay-us 5000] [--json FILE]
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "ipp/client.hpp"
#include "support/cluster.hpp"
#include "support/figures.hpp"

namespace {

using namespace ipp::bench;

struct Run {
  double tasks_per_s = 0;
  double catch_up_s = 0;
  std::size_t recorded = 0;
};

Run run(int tasks, std::int64_t delay_us, const std::vector<std::string>& extra) {
  std::vector<std::string> args{"--hub-delay-us", std::to_string(delay_us)};
  args.insert(args.end(), extra.begin(), extra.end());
  HandCluster c(fmt::format("hub-{}", delay_us), args);
  c.add_engines(2, 2);
  Run out;
  ipp::Client rc = c.client();
  rc.push_plugin(arith());
  ipp::LoadBalancedView lb = rc.load_balanced_view();
  (void)lb.apply("add", {0, 0});  // warm up the path
  const std::size_t before = rc.hub_history().size();
  out.tasks_per_s = throughput(lb, tasks);
  // The hub catches up: every task is in the database.
  const auto done = Clock::now();
  out.recorded = rc.hub_history().size() - before;
  out.catch_up_s = since(done);
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
    // The floor here is the same cluster with its hub at full speed.
    const std::vector<Floor> floors{
        {"fast_tasks_per_s",
         fmt::format("{} load-balanced tasks, 2 engines, hub at full speed", tasks),
         fast.tasks_per_s, "tasks/s"}};
    const std::vector<Figure> figures{
        {"", fmt::format("hub slowed by {} us per record", delay_us), slow.tasks_per_s, "tasks/s",
         slow.tasks_per_s / fast.tasks_per_s, "", true},
        {"", "  hub at full speed: recorded all, later by", fast.catch_up_s, "s", std::nullopt, "",
         true},
        {"", "  hub slowed: recorded all, later by", slow.catch_up_s, "s", std::nullopt, "", true},
        {"", "  recorded at full speed", static_cast<double>(fast.recorded), "tasks", std::nullopt,
         fmt::format("== {}", tasks), fast.recorded == static_cast<std::size_t>(tasks)},
        {"", "  recorded with the hub slowed", static_cast<double>(slow.recorded), "tasks",
         std::nullopt, fmt::format("== {}", tasks),
         slow.recorded == static_cast<std::size_t>(tasks)}};
    print_figures(floors, figures);
    if (!json_file.empty()) {
      write_json(json_file, floors, figures,
                 {{"tasks", tasks},
                  {"delay_us", static_cast<double>(delay_us)},
                  {"fast_tasks_per_s", fast.tasks_per_s},
                  {"slow_tasks_per_s", slow.tasks_per_s},
                  {"ratio", slow.tasks_per_s / fast.tasks_per_s},
                  {"slow_catch_up_s", slow.catch_up_s},
                  {"fast_recorded", static_cast<double>(fast.recorded)},
                  {"slow_recorded", static_cast<double>(slow.recorded)}});
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
