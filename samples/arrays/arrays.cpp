// arrays: typed arrays in and out. std::span parameters read the received buffer in place.

#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <stdexcept>
#include <vector>

#include <ipp/plugin.hpp>

double sum(std::span<const double> xs) {
  return std::accumulate(xs.begin(), xs.end(), 0.0);
}

double dot(std::span<const double> a, std::span<const double> b) {
  if (a.size() != b.size()) throw std::invalid_argument("dot: arrays differ in length");
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

std::vector<double> scale(std::span<const double> xs, double factor) {
  std::vector<double> out(xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i)
    out[i] = xs[i] * factor;
  return out;
}

std::vector<std::int64_t> iota(std::int64_t n) {
  if (n < 0) throw std::invalid_argument("iota: n must not be negative");
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  std::iota(out.begin(), out.end(), 0);
  return out;
}

/// Mean and standard deviation, returned as a two-element list.
std::pair<double, double> stats(std::span<const double> xs) {
  if (xs.empty()) throw std::invalid_argument("stats: empty array");
  const double mean = std::accumulate(xs.begin(), xs.end(), 0.0) / static_cast<double>(xs.size());
  double sq = 0;
  for (double x : xs)
    sq += (x - mean) * (x - mean);
  return {mean, std::sqrt(sq / static_cast<double>(xs.size()))};
}

/// Address of the first element: lets tests see that arrays are read in place.
std::uint64_t address_of(std::span<const double> xs) {
  return reinterpret_cast<std::uintptr_t>(xs.data());
}

IPP_TASK(sum, "Sum of a float64 array.")
IPP_TASK(dot, "Dot product of two float64 arrays of equal length.")
IPP_TASK(scale, "Each element times factor.")
IPP_TASK(iota, "The integers 0 .. n-1 as an int64 array.")
IPP_TASK(stats, "Mean and standard deviation of a float64 array.")
IPP_TASK(address_of, "Where the array's elements are in the engine's memory.")
