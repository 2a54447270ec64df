#include "figures.hpp"

#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace ipp::bench {

void print_figures(const std::vector<Floor>& floors, const std::vector<Figure>& figures) {
  fmt::print("\n");
  for (const auto& f : floors)
    fmt::print("floor: {}: {:.{}f} {}\n", f.description, f.value, f.value >= 100 ? 0 : 1, f.unit);
  fmt::print("\n{:<4} {:<58} {:>12} {:<8} {:>8}  {:<22} {}\n", "#", "figure", "measured", "",
             "x floor", "target", "met");
  for (const auto& f : figures) {
    fmt::print("{:<4} {:<58} {:>12.{}f} {:<8} {:>8}  {:<22} {}\n", f.id, f.name, f.value,
               f.value >= 100 ? 0 : 2, f.unit, f.ratio ? fmt::format("{:.2f}", *f.ratio) : "",
               f.target,
               f.target.empty() ? ""
               : f.met          ? "yes"
                                : "no");
  }
}

void write_json(const std::string& file, const std::vector<Floor>& floors,
                const std::vector<Figure>& figures,
                const std::vector<std::pair<std::string, double>>& extra) {
  nlohmann::json j;
  j["floor"] = nlohmann::json::object();
  for (const auto& f : floors)
    j["floor"][f.key] = f.value;
  j["figures"] = nlohmann::json::array();
  for (const auto& f : figures) {
    nlohmann::json e{{"id", f.id},     {"name", f.name},     {"value", f.value},
                     {"unit", f.unit}, {"target", f.target}, {"met", f.met}};
    if (f.ratio) e["ratio_to_floor"] = *f.ratio;
    j["figures"].push_back(e);
  }
  for (const auto& [key, value] : extra)
    j[key] = value;
  std::ofstream(file) << j.dump(2) << "\n";
}

}  // namespace ipp::bench
