#include "ipp/runtime/plugin_loader.hpp"

#include <fstream>

#include <gtest/gtest.h>

#include "ipp/error.hpp"
#include "ipp/runtime/runtime.hpp"
#include "support/paths.hpp"

namespace ipp {
namespace {

using test::plugin;
using test::TempDir;
using test::test_plugin;

std::string load_error(Runtime& rt, const std::filesystem::path& path) {
  try {
    rt.load(path);
  } catch (const PluginLoadError& e) {
    return e.what();
  }
  return "";
}

TEST(PluginLoader, ReadsTheManifest) {
  TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path()});
  auto p = rt.load(plugin("arith"));
  EXPECT_EQ(p->name(), "arith");
  EXPECT_EQ(p->version(), "1.0.0");
  EXPECT_EQ(p->sdk_version(), IPP_VERSION);
  ASSERT_EQ(p->tasks().size(), 4u);
  const auto& mul = p->tasks()[0];
  EXPECT_EQ(mul.qualified_name(), "arith.mul");
  EXPECT_EQ(mul.signature, "mul(int64, int64) -> int64");
  EXPECT_EQ(mul.doc, "Multiplies two integers.");
  EXPECT_EQ(mul.arity, 2);
}

TEST(PluginLoader, CollectsTasksFromEverySourceFile) {
  TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path()});
  auto p = rt.load(test_plugin("two_files"));
  ASSERT_EQ(p->tasks().size(), 2u);
  EXPECT_EQ(rt.call("from_a").as<int>(), 1);
  EXPECT_EQ(rt.call("two_files.from_b").as<int>(), 2);
}

TEST(PluginLoader, StoresPluginsUnderTheirContentHash) {
  TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path()});
  auto p = rt.load(plugin("arith"));
  EXPECT_EQ(p->hash().size(), 64u);
  EXPECT_EQ(p->path(), dir.path() / (p->hash() + ".so"));
  EXPECT_TRUE(std::filesystem::exists(p->path()));
  // The same bytes stored again are the same file, not a new one.
  PluginStore store(dir.path());
  EXPECT_EQ(store.store_file(plugin("arith")).path, p->path());
}

TEST(PluginLoader, LoadingTheSameBuildTwiceIsANoOp) {
  TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path()});
  auto a = rt.load(plugin("arith"));
  auto b = rt.load(plugin("arith"));
  EXPECT_EQ(a.get(), b.get());
}

TEST(PluginLoader, RefusesAMissingFile) {
  TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path()});
  EXPECT_NE(load_error(rt, dir / "nope.so").find("is not a file"), std::string::npos);
}

TEST(PluginLoader, RefusesAFileThatIsNotASharedLibrary) {
  TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path() / "store"});
  std::ofstream(dir / "text.so") << "this is not a library";
  EXPECT_NE(load_error(rt, dir / "text.so").find("not a shared library"), std::string::npos);
}

TEST(PluginLoader, RefusesATruncatedLibrary) {
  TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path() / "store"});
  std::ifstream in(plugin("arith"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir / "cut.so", std::ios::binary) << bytes.substr(0, 4096);
  const std::string error = load_error(rt, dir / "cut.so");
  EXPECT_FALSE(error.empty());
  EXPECT_TRUE(rt.plugins().empty());
}

TEST(PluginLoader, RefusesALibraryWithoutManifest) {
  TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path()});
  EXPECT_NE(load_error(rt, test_plugin("plain")).find("not an ipp plugin"), std::string::npos);
}

TEST(PluginLoader, RefusesAPluginOfAnotherAbiSayingBothVersions) {
  TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path()});
  const std::string error = load_error(rt, test_plugin("future_abi"));
  EXPECT_NE(error.find("ABI version 999"), std::string::npos) << error;
  EXPECT_NE(error.find("ABI version 1"), std::string::npos) << error;
}

TEST(PluginLoader, RefusesATaskRegisteredTwice) {
  TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path()});
  const std::string error = load_error(rt, test_plugin("duplicate"));
  EXPECT_NE(error.find("registers task 'one' more than once"), std::string::npos) << error;
}

TEST(PluginLoader, AFailedLoadChangesNothing) {
  TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path()});
  rt.load(plugin("arith"));
  EXPECT_THROW(rt.load(test_plugin("future_abi")), PluginLoadError);
  EXPECT_THROW(rt.load(test_plugin("plain")), PluginLoadError);
  ASSERT_EQ(rt.plugins().size(), 1u);
  EXPECT_EQ(rt.call("mul", {5, 6}).as<int>(), 30);
}

TEST(PluginLoader, ValidatesWithoutLoading) {
  EXPECT_NO_THROW(LoadedPlugin::validate_file(plugin("arith")));
  EXPECT_THROW(LoadedPlugin::validate_file(test_plugin("plain")), PluginLoadError);
}

}  // namespace
}  // namespace ipp
