#pragma once

// The benchmarks' figures: each a measurement beside its floor (as a ratio) and its target,
// printed as one table and written as JSON the same way by every benchmark program.

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ipp::bench {

struct Figure {
  std::string id;    ///< its number in docs/performance.md ("" for none)
  std::string name;  ///< what was measured
  double value = 0;
  std::string unit;
  std::optional<double> ratio;  ///< value / floor, when a floor applies
  std::string target;           ///< "" for none
  bool met = false;
};

/// The floors a run measured, by name, with their unit: printed above the table and written
/// under "floor" in the JSON.
struct Floor {
  std::string key;          ///< its JSON name, e.g. "rtt_p50_us"
  std::string description;  ///< as printed
  double value = 0;
  std::string unit;
};

/// Prints the floors, then the figures as a table.
void print_figures(const std::vector<Floor>& floors, const std::vector<Figure>& figures);

/// Writes {"floor": {key: value}, "figures": [...], extra...} to `file`; `extra` are more
/// top-level numbers (a run's parameters).
void write_json(const std::string& file, const std::vector<Floor>& floors,
                const std::vector<Figure>& figures,
                const std::vector<std::pair<std::string, double>>& extra = {});

}  // namespace ipp::bench
