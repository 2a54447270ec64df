// One array to many engines: how the time of a push to every engine grows with their number,
// beside the push to one engine measured in the same run (the floor).
//
//     ipp-bench-broadcast [--mib 2] [--engines 1,8,64] [--rounds 5] [--json FILE]
//
// Each cluster runs on this host without shared memory (`--no-shm`), so every engine's copy
// crosses the sockets as it would between hosts. Sent from the controller to each engine in
// turn, a push to N engines costs about N transfers; a tree, about log2(N) + 1.
#include <cmath>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "ipp/client.hpp"
#include "support/cluster.hpp"
#include "support/figures.hpp"

int main(int argc, char** argv) {
  using namespace ipp::bench;
  CLI::App app{"ipp-bench-broadcast: a push to 1, 8 and 64 engines"};
  double mib = 2;
  std::vector<int> counts{1, 8, 64};
  int rounds = 5;
  std::string json_file;
  app.add_option("--mib", mib, "Array size in MiB")->capture_default_str();
  app.add_option("--engines", counts, "Engine counts, the first one the floor")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--rounds", rounds, "Pushes per count; the best is reported")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--json", json_file, "Also write the figures to this file");
  CLI11_PARSE(app, argc, argv);
  try {
    const std::size_t n = static_cast<std::size_t>(mib * (1 << 20)) / sizeof(double);
    const ipp::Value x(ipp::Array::from(std::vector<double>(n, 0.5)));
    std::vector<std::pair<int, double>> best_ms;
    for (const int engines : counts) {
      Cluster c(fmt::format("broadcast-{}", engines), engines, 1, {"--no-shm"});
      ipp::Client rc = c.client();
      ipp::DirectView all = rc.direct_view();
      double best = 1e300;
      for (int r = 0; r < rounds; ++r) {
        const auto t = Clock::now();
        all.push({{"x", x}});
        best = std::min(best, since(t) * 1e3);
      }
      best_ms.emplace_back(engines, best);
    }
    const double floor = best_ms.front().second;
    const std::vector<Floor> floors{
        {"push_one_ms",
         fmt::format("a push of {:g} MiB to {} engine(s), best of {}", mib, counts.front(), rounds),
         floor, "ms"}};
    std::vector<Figure> figures;
    for (const auto& [engines, ms] : best_ms) {
      const double tree = std::log2(static_cast<double>(engines)) + 1;
      figures.push_back({"12", fmt::format("a push of {:g} MiB to {} engines", mib, engines), ms,
                         "ms", ms / floor, fmt::format("<= {:.0f}x floor", tree),
                         ms <= tree * floor});
    }
    print_figures(floors, figures);
    if (!json_file.empty()) write_json(json_file, floors, figures, {{"mib", mib}});
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ipp-bench-broadcast: " << e.what() << "\n";
    return 1;
  }
}
