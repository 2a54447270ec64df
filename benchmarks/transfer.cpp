// Push and pull of a large float64 array to one engine of a real local cluster, beside the
// floor: one raw ZeroMQ message of the same size between two processes over loopback TCP.
//
//     ipp-bench-transfer [--mib 1024] [--rounds 3] [--json FILE]
//
// Prints MB/s for each and the ratio to the floor; writes the figures as JSON when asked.
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "ipp/client.hpp"
#include "support/cluster.hpp"
#include "support/figures.hpp"
#include "support/floors.hpp"

int main(int argc, char** argv) {
  using namespace ipp::bench;
  CLI::App app{"ipp-bench-transfer: push/pull of a large array vs a raw ZeroMQ transfer"};
  std::size_t mib = 1024;
  int rounds = 3;
  std::string json_file;
  app.add_option("--mib", mib, "Array size in MiB")->capture_default_str();
  app.add_option("--rounds", rounds, "Repetitions (the best is reported)")->capture_default_str();
  app.add_option("--json", json_file, "Also write the figures to this file");
  CLI11_PARSE(app, argc, argv);
  const std::size_t bytes = mib << 20;
  try {
    const double raw = raw_message_mbps(bytes, rounds + 1);
    double push_best = 0, pull_best = 0;
    {
      Cluster c("transfer", 1, 0);
      ipp::Client rc = c.client();
      ipp::DirectView e0 = rc[0];
      std::vector<double> xs(bytes / sizeof(double));
      for (std::size_t i = 0; i < xs.size(); ++i)
        xs[i] = static_cast<double>(i);
      const ipp::Value big = std::move(xs);
      for (int r = 0; r < rounds; ++r) {
        auto t = Clock::now();
        e0.push({{"big", big}});
        push_best = std::max(push_best, static_cast<double>(bytes) / since(t) / 1e6);
        t = Clock::now();
        const ipp::Value back = e0.pull("big");
        pull_best = std::max(pull_best, static_cast<double>(bytes) / since(t) / 1e6);
        if (back.size() != big.size()) throw std::runtime_error("pulled the wrong size");
      }
    }
    const std::vector<Floor> floors{{"raw_zmq_mbps",
                                     fmt::format("one raw ZeroMQ message of {} MiB, one hop", mib),
                                     raw, "MB/s"}};
    const std::vector<Figure> figures{
        {"6",
         fmt::format("ipp push of {} MiB (client -> controller -> engine), best of {}", mib,
                     rounds),
         push_best, "MB/s", push_best / raw, "", true},
        {"6",
         fmt::format("ipp pull of {} MiB (engine -> controller -> client), best of {}", mib,
                     rounds),
         pull_best, "MB/s", pull_best / raw, "", true}};
    print_figures(floors, figures);
    if (!json_file.empty()) {
      write_json(json_file, floors, figures,
                 {{"bytes", static_cast<double>(bytes)}, {"rounds", rounds}});
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ipp-bench-transfer: " << e.what() << "\n";
    return 1;
  }
}
