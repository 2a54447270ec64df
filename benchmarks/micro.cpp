// ipp-bench-micro: the in-process parts of a task's path, with Google Benchmark: encoding and
// decoding arguments, message headers, signatures, the load-balancing decisions, and a call
// through the engine's runtime.
//
//     ipp-bench-micro [--benchmark_out=FILE --benchmark_out_format=json]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include <unistd.h>

#include "balancer.hpp"
#include "ipp/codec.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/signer.hpp"
#include "ipp/runtime/runtime.hpp"

namespace {

void BM_EncodeTwoInts(benchmark::State& state) {
  const ipp::Value args = ipp::Value::list({5, 6});
  for (auto _ : state)
    benchmark::DoNotOptimize(ipp::encode(args));
}
BENCHMARK(BM_EncodeTwoInts);

void BM_DecodeTwoInts(benchmark::State& state) {
  const ipp::Payload p = ipp::encode(ipp::Value::list({5, 6}));
  for (auto _ : state)
    benchmark::DoNotOptimize(ipp::decode(p));
}
BENCHMARK(BM_DecodeTwoInts);

void BM_EncodeArrayMiB(benchmark::State& state) {
  const ipp::Value a(ipp::Array::from(std::vector<double>(1 << 17, 1.0)));  // 1 MiB
  for (auto _ : state)
    benchmark::DoNotOptimize(ipp::encode(ipp::Value::list({a})));
  state.SetBytesProcessed(state.iterations() * (1 << 20));
}
BENCHMARK(BM_EncodeArrayMiB);

ipp::net::Header task_header() {
  ipp::net::Header h;
  h.type = ipp::net::MsgType::ApplyRequest;
  h.msg_id = ipp::net::new_id();
  h.session = ipp::net::new_id();
  h.task = "arith.add";
  h.submitted = ipp::net::now_us();
  return h;
}

void BM_HeaderEncode(benchmark::State& state) {
  const ipp::net::Header h = task_header();
  for (auto _ : state)
    benchmark::DoNotOptimize(ipp::net::encode_header(h));
}
BENCHMARK(BM_HeaderEncode);

void BM_HeaderDecode(benchmark::State& state) {
  const ipp::Buffer b = ipp::net::encode_header(task_header());
  for (auto _ : state)
    benchmark::DoNotOptimize(ipp::net::decode_header(b));
}
BENCHMARK(BM_HeaderDecode);

void BM_NewId(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(ipp::net::new_id());
}
BENCHMARK(BM_NewId);

void BM_SignAndVerify(benchmark::State& state) {
  const ipp::net::Signer signer(ipp::net::Signer::new_key());
  std::vector<std::byte> part(static_cast<std::size_t>(state.range(0)), std::byte{1});
  const std::vector<std::span<const std::byte>> parts{part};
  for (auto _ : state) {
    const auto sig = signer.sign(parts);
    benchmark::DoNotOptimize(
        signer.verify(std::as_bytes(std::span(sig.data(), sig.size())), parts));
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_SignAndVerify)->Arg(64)->Arg(256)->Arg(1 << 20);

/// One task through the load-balancing decisions: submit, place, finish; two engines.
void BM_BalancerCycle(benchmark::State& state) {
  ipp::sched::Balancer b({});
  b.engine_up(0, 2);
  b.engine_up(1, 2);
  std::vector<ipp::net::TaskId> ids;
  for (int i = 0; i < 4096; ++i)
    ids.push_back(*ipp::net::TaskId::parse(ipp::net::new_id()));
  const ipp::net::TaskFlags flags;
  std::size_t i = 0;
  const auto now = ipp::sched::Clock::now();
  for (auto _ : state) {
    const ipp::net::TaskId id = ids[i++ % ids.size()];
    b.submit(id, "add", flags, std::nullopt, now);
    b.schedule();
    benchmark::DoNotOptimize(b.take_dispatches());
    benchmark::DoNotOptimize(b.finished(id, true, now));
    // A msg_id is never submitted twice in a cluster; here forgetting lets the ids repeat.
    if (i % ids.size() == 0) {
      state.PauseTiming();
      b = ipp::sched::Balancer({});
      b.engine_up(0, 2);
      b.engine_up(1, 2);
      state.ResumeTiming();
    }
  }
}
BENCHMARK(BM_BalancerCycle);

/// A trivial task through an engine's runtime: resolve, queue on the pool, invoke, complete.
void BM_RuntimeCall(benchmark::State& state) {
  const auto store =
      std::filesystem::temp_directory_path() / ("ipp-bench-micro-" + std::to_string(::getpid()));
  {
    ipp::Runtime rt({.threads = 1, .store_dir = store, .engine_id = 0});
    rt.load(std::filesystem::path(IPP_PLUGIN_DIR) / "arith.so");
    const ipp::Value::List args{5, 6};
    for (auto _ : state)
      benchmark::DoNotOptimize(rt.call("add", args));
  }
  std::error_code ec;
  std::filesystem::remove_all(store, ec);
}
BENCHMARK(BM_RuntimeCall);

/// One engine's block of DirectView::map(mul) over two 10^6-element int64 arrays: two arrays of
/// 500 000 elements through the runtime, element by element into one int64 array.
void BM_RuntimeMapHalfMillion(benchmark::State& state) {
  const auto store = std::filesystem::temp_directory_path() /
                     ("ipp-bench-micro-map-" + std::to_string(::getpid()));
  {
    ipp::Runtime rt({.threads = 1, .store_dir = store, .engine_id = 0});
    rt.load(std::filesystem::path(IPP_PLUGIN_DIR) / "arith.so");
    const std::int64_t n = 500000;
    std::vector<std::int64_t> a(n), b(n);
    std::iota(a.begin(), a.end(), 0);
    std::iota(b.begin(), b.end(), 1);
    const ipp::Value::List args{ipp::Value(ipp::Array::from(a)), ipp::Value(ipp::Array::from(b))};
    for (auto _ : state)
      benchmark::DoNotOptimize(rt.map("mul", args));
    state.SetItemsProcessed(state.iterations() * n);
  }
  std::error_code ec;
  std::filesystem::remove_all(store, ec);
}
BENCHMARK(BM_RuntimeMapHalfMillion)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
