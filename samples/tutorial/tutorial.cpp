// The IPython.parallel tutorial, in C++, against a running cluster:
//
//   ippctl cluster start -n 4
//   ippctl push build/plugins/arith.so
//   tutorial                      # this program (uses $IPP_PROFILE_DIR like ippctl)
//   ippctl cluster stop
#include <chrono>
#include <cstdio>
#include <set>

#include "ipp/client.hpp"

int main() {
  using namespace std::chrono_literals;
  try {
    ipp::Client rc;  // the profile's controller
    auto show = [](const char* what, const ipp::Value& v) {
      std::printf("%-40s %s\n", what, v.repr().c_str());
    };

    show("rc.ids()", ipp::Value(rc.ids()));
    show("rc[0].apply(mul, 5, 6)", rc[0].apply("mul", {5, 6}));

    ipp::DirectView dview = rc.direct_view();
    show("dview.apply(mul, 5, 6)", dview.apply("mul", {5, 6}));
    show("dview.map(mul, 1..9, 2..10)",
         dview.map("mul", {ipp::Range::inclusive(1, 9), ipp::Range::inclusive(2, 10)}));

    const auto start = std::chrono::steady_clock::now();
    ipp::AsyncResult ar = dview.apply_async("wait_here", {2.0});
    const ipp::Value pids = ar.get(60s);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::set<std::int64_t> distinct;
    for (const auto& p : pids.as_list())
      distinct.insert(p.as_int());
    std::printf("%-40s %s: %zu distinct pids in %.2f s\n", "dview.apply_async(wait_here, 2).get()",
                pids.repr().c_str(), distinct.size(), took);
    for (const auto& m : ar.metadata()) {
      std::printf("    engine %lld ran for %.3f s\n", static_cast<long long>(m.engine),
                  m.elapsed());
    }

    // Each engine's namespace: import a plugin, bind a name, read it back per engine.
    dview.execute("import sysinfo").get(60s);
    dview.execute("a = sysinfo.getpid()").get(60s);
    const ipp::Value a = dview["a"];
    std::set<std::int64_t> engine_pids;
    for (const auto& p : a.as_list())
      engine_pids.insert(p.as_int());
    std::printf("%-40s %s: %zu distinct pids\n", "dview[\"a\"]", a.repr().c_str(),
                engine_pids.size());

    // Data in and out: push/pull, scatter/gather, and work on what stays on the engines.
    dview.push({{"n", 3}});
    show("dview.pull(n)", dview.pull("n"));
    dview.scatter("x", ipp::Range::inclusive(1, 10));
    show("dview.pull(x) after scatter 1..10", dview.pull("x"));
    dview.map_to("y", "mul", {ipp::ref("x"), ipp::ref("x")});
    show("gather(y) of map_to(y, mul, @x, @x)", dview.gather("y"));

    ipp::LoadBalancedView lview = rc.load_balanced_view();
    show("lview.apply(mul, 7, 6)", lview.apply("mul", {7, 6}));
    show("lview.map(mul, 1..9, 2..10, chunk 2)",
         lview.map("mul", {ipp::Range::inclusive(1, 9), ipp::Range::inclusive(2, 10)}, 2));

    try {
      (void)rc[0].apply("divide", {1, 0});
    } catch (const ipp::RemoteError& e) {
      std::printf("%-40s raised %s\n", "rc[0].apply(divide, 1, 0)", e.what());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tutorial: %s\n", e.what());
    return 1;
  }
}
