// A tour of the plugin runtime in one process: load the sample plugins, call tasks with typed
// arguments, map over ranges and arrays, and see how errors come back.
//
//   local_tour PLUGIN_DIR
#include <cstdio>
#include <filesystem>
#include <string>

#include <spdlog/spdlog.h>

#include "ipp/runtime/runtime.hpp"

namespace {

void show(const char* what, const ipp::Value& v) {
  std::printf("%-44s %s\n", what, v.repr().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PLUGIN_DIR\n", argv[0]);
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  const std::filesystem::path plugins = argv[1];
  const auto store = std::filesystem::temp_directory_path() / "ipp-local-tour-store";
  try {
    ipp::Runtime rt({.threads = 4, .store_dir = store});
    for (const char* name : {"arith", "arrays", "strings", "errors", "sysinfo"}) {
      auto p = rt.load(plugins / (std::string(name) + ".so"));
      std::printf("loaded %s %s:\n", p->name().c_str(), p->version().c_str());
      for (const auto& t : p->tasks())
        std::printf("    %-44s %s\n", t.signature.c_str(), t.doc.c_str());
    }
    std::printf("\n");
    show("mul(5, 6)", rt.call("mul", {5, 6}));
    show("map(mul, 1..9, 2..10)",
         rt.map("mul", {ipp::Range::inclusive(1, 9), ipp::Range::inclusive(2, 10)}));
    show("sum([0.5] * 1000)", rt.call("sum", {std::vector<double>(1000, 0.5)}));
    show("stats([1, 2, 3, 4])", rt.call("stats", {std::vector<double>{1, 2, 3, 4}}));
    show("split('a,b,c', ',')", rt.call("split", {"a,b,c", ","}));
    show("sysinfo.nthreads()", rt.call("sysinfo.nthreads"));
    show("map(wait_here, [0.2] * 4) (4 threads)",
         rt.map("wait_here", {std::vector<double>(4, 0.2)}));
    for (const auto& [task, args] : std::vector<std::pair<const char*, ipp::Value::List>>{
             {"mul", {5, "six"}}, {"mul", {5}}, {"small", {300}}, {"divide", {1, 0}}}) {
      try {
        (void)rt.call(task, args);
      } catch (const ipp::RemoteError& e) {
        std::printf("%-44s error: %s\n", (std::string(task) + ipp::Value(args).repr()).c_str(),
                    e.what());
      }
    }
    std::filesystem::remove_all(store);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "local_tour: %s\n", e.what());
    return 1;
  }
}
