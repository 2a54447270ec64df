// One task per parameter and result type the SDK supports, for conversion tests.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include <ipp/plugin.hpp>

bool t_bool(bool b) {
  return !b;
}
std::int8_t t_i8(std::int8_t x) {
  return x;
}
std::int16_t t_i16(std::int16_t x) {
  return x;
}
std::int32_t t_i32(std::int32_t x) {
  return x;
}
std::int64_t t_i64(std::int64_t x) {
  return x;
}
std::uint8_t t_u8(std::uint8_t x) {
  return x;
}
std::uint16_t t_u16(std::uint16_t x) {
  return x;
}
std::uint32_t t_u32(std::uint32_t x) {
  return x;
}
std::uint64_t t_u64(std::uint64_t x) {
  return x;
}
float t_f32(float x) {
  return x;
}
double t_f64(double x) {
  return x;
}
std::string t_string(std::string s) {
  return s + "!";
}
std::int64_t t_string_view(std::string_view s) {
  return static_cast<std::int64_t>(s.size());
}
std::vector<std::int32_t> t_vec_i32(std::vector<std::int32_t> v) {
  return v;
}
std::vector<double> t_vec_f64(const std::vector<double>& v) {
  return v;
}
std::vector<std::string> t_vec_string(std::vector<std::string> v) {
  return v;
}
std::vector<bool> t_vec_bool(std::vector<bool> v) {
  return v;
}
double t_span_f64(std::span<const double> xs) {
  double s = 0;
  for (double x : xs)
    s += x;
  return s;
}
std::int64_t t_span_i64(std::span<const std::int64_t> xs) {
  std::int64_t s = 0;
  for (auto x : xs)
    s += x;
  return s;
}
ipp::Value t_value(ipp::Value v) {
  return v;
}
std::tuple<std::int64_t, std::string, double> t_tuple(std::int64_t a) {
  return {a, std::to_string(a), a / 2.0};
}
std::pair<bool, std::int64_t> t_pair(std::int64_t a) {
  return {a > 0, -a};
}
void t_void(std::int64_t) {}
std::map<std::string, std::int64_t> t_map(std::map<std::string, std::int64_t> m) {
  return m;
}
std::vector<std::vector<std::int64_t>> t_nested(std::vector<std::vector<std::int64_t>> v) {
  return v;
}

/// Context anywhere in the parameter list; callers pass only the other arguments.
std::int64_t t_ctx(std::int64_t a, ipp::Context& ctx, std::int64_t b) {
  return a * 1000 + b + ctx.engine_id() * 0;
}
std::int64_t t_engine(ipp::Context& ctx) {
  return ctx.engine_id();
}
void t_ns_set(ipp::Context& ctx, std::string name, ipp::Value v) {
  ctx.set(name, v);
}
ipp::Value t_ns_get(ipp::Context& ctx, std::string name) {
  return ctx.at(name);
}
bool t_ns_erase(ipp::Context& ctx, std::string name) {
  return ctx.erase(name);
}

/// Waits until `n` calls are inside this task at once (or 20 s pass); returns whether they
/// met. Proves calls run concurrently without timing anything.
bool rendezvous(std::int64_t n) {
  static std::atomic<std::int64_t> inside{0};
  static std::atomic<std::int64_t> generation_met{0};
  const auto me = ++inside;
  if (me >= n) generation_met.store(1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (generation_met.load() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const bool met = generation_met.load() != 0;
  if (--inside == 0) generation_met.store(0);
  return met;
}

IPP_TASK(t_bool)
IPP_TASK(t_i8)
IPP_TASK(t_i16)
IPP_TASK(t_i32)
IPP_TASK(t_i64)
IPP_TASK(t_u8)
IPP_TASK(t_u16)
IPP_TASK(t_u32)
IPP_TASK(t_u64)
IPP_TASK(t_f32)
IPP_TASK(t_f64)
IPP_TASK(t_string)
IPP_TASK(t_string_view)
IPP_TASK(t_vec_i32)
IPP_TASK(t_vec_f64)
IPP_TASK(t_vec_string)
IPP_TASK(t_vec_bool)
IPP_TASK(t_span_f64)
IPP_TASK(t_span_i64)
IPP_TASK(t_value)
IPP_TASK(t_tuple)
IPP_TASK(t_pair)
IPP_TASK(t_void)
IPP_TASK(t_map)
IPP_TASK(t_nested)
IPP_TASK(t_ctx)
IPP_TASK(t_engine)
IPP_TASK(t_ns_set)
IPP_TASK(t_ns_get)
IPP_TASK(t_ns_erase)
IPP_TASK(rendezvous, "Waits until n calls are inside at once.")
