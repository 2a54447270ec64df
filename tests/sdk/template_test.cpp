// The SDK tested from outside, as a plugin author uses it: install ipp, write a project with
// `ipp-sdk new`, configure and build it against the install with find_package(ipp), load the
// result into the runtime and call it. And a client program (samples/tutorial) built the same
// way, run against a cluster that the installed ippctl starts.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "ipp/error.hpp"
#include "ipp/project_template.hpp"
#include "ipp/runtime/runtime.hpp"
#include "support/paths.hpp"

namespace ipp {
namespace {

int run(const std::string& command, const std::filesystem::path& log) {
  const std::string full = command + " > '" + log.string() + "' 2>&1";
  return std::system(full.c_str());
}

std::string read(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Installs this build under `prefix`; the install's log is `log`.
int install_to(const std::filesystem::path& prefix, const std::filesystem::path& log) {
  return run("cmake --install '" IPP_BUILD_DIR "' --prefix '" + prefix.string() + "'", log);
}

/// Configures `source` into `build` against the install at `prefix`, with this build's
/// compiler and sanitizer flags (what it builds loads into, or talks to, this build's code).
std::string configure_command(const std::filesystem::path& source,
                              const std::filesystem::path& build,
                              const std::filesystem::path& prefix) {
  const std::string flags = IPP_SANITIZER_FLAGS;
  return "cmake -S '" + source.string() + "' -B '" + build.string() + "' -DCMAKE_PREFIX_PATH='" +
         prefix.string() + "' -DCMAKE_CXX_COMPILER='" IPP_CXX_COMPILER "'" +
         (flags.empty() ? "" : " -DCMAKE_CXX_FLAGS='" + flags + "'");
}

TEST(ProjectTemplate, RefusesBadNamesAndNonEmptyDirectories) {
  test::TempDir dir;
  EXPECT_THROW(write_plugin_project("1abc", dir / "x"), UsageError);
  EXPECT_THROW(write_plugin_project("a-b", dir / "y"), UsageError);
  std::ofstream(dir / "file") << "x";
  EXPECT_THROW(write_plugin_project("ok", dir.path()), UsageError);
}

TEST(ProjectTemplate, WritesTheProjectFiles) {
  test::TempDir dir;
  auto files = write_plugin_project("demo", dir / "demo");
  ASSERT_EQ(files.size(), 3u);
  EXPECT_NE(read(dir / "demo" / "CMakeLists.txt").find("ipp_add_plugin(demo SOURCES demo.cpp)"),
            std::string::npos);
  EXPECT_NE(read(dir / "demo" / "demo.cpp").find("IPP_TASK(mul"), std::string::npos);
}

TEST(ProjectTemplate, BuildsOutOfTreeAgainstTheInstalledSdkAndRuns) {
  test::TempDir dir;
  const auto prefix = dir / "prefix";
  ASSERT_EQ(install_to(prefix, dir / "install.log"), 0) << read(dir / "install.log");
  ASSERT_TRUE(std::filesystem::exists(prefix / "bin" / "ipp-sdk"));
  ASSERT_TRUE(std::filesystem::exists(prefix / "lib" / "cmake" / "ipp" / "ippConfig.cmake"));

  const auto project = dir / "work" / "demo";
  ASSERT_EQ(
      run("'" + (prefix / "bin" / "ipp-sdk").string() + "' new demo '" + project.string() + "'",
          dir / "new.log"),
      0)
      << read(dir / "new.log");

  // Same compiler and sanitizer flags as this build, so the plugin can load into this test.
  const std::string configure = configure_command(project, project / "build", prefix);
  ASSERT_EQ(run(configure, dir / "configure.log"), 0) << read(dir / "configure.log");
  ASSERT_EQ(run("cmake --build '" + (project / "build").string() + "'", dir / "build.log"), 0)
      << read(dir / "build.log");
  const auto so = project / "build" / "demo.so";
  ASSERT_TRUE(std::filesystem::exists(so));
  // No build type chosen: the template builds optimised, as a plugin's hot loops need.
  EXPECT_NE(read(project / "build" / "CMakeCache.txt").find("CMAKE_BUILD_TYPE:STRING=Release"),
            std::string::npos);

  Runtime rt({.threads = 2, .store_dir = dir / "store"});
  auto plugin = rt.load(so);
  EXPECT_EQ(plugin->name(), "demo");
  EXPECT_EQ(rt.call("demo.mul", {6, 7}).as<int>(), 42);
  EXPECT_EQ(rt.call("total", {std::vector<double>{1.5, 2.5}}).as<double>(), 4.0);
  try {
    (void)rt.call("mul", {6, "seven"});
    FAIL();
  } catch (const RemoteError& e) {
    EXPECT_EQ(e.record().message, "argument 2 (int64): expected int64, got string");
  }
}

TEST(ClientProgram, BuildsOutOfTreeAgainstTheInstallAndRunsTheTutorialOnACluster) {
  test::TempDir dir;
  const auto prefix = dir / "prefix";
  ASSERT_EQ(install_to(prefix, dir / "install.log"), 0) << read(dir / "install.log");
  ASSERT_TRUE(std::filesystem::exists(prefix / "lib" / "libipp_client.a"));

  const auto build = dir / "tutorial";
  const std::string configure = configure_command(
      std::filesystem::path(IPP_SOURCE_DIR) / "samples" / "tutorial", build, prefix);
  ASSERT_EQ(run(configure, dir / "configure.log"), 0) << read(dir / "configure.log");
  ASSERT_EQ(run("cmake --build '" + build.string() + "'", dir / "build.log"), 0)
      << read(dir / "build.log");

  // A cluster started by the installed ippctl (its controller and engines are installed next
  // to it), with the sample plugin pushed.
  const std::string ctl = "'" + (prefix / "bin" / "ippctl").string() + "' --profile-dir '" +
                          (dir / "profile").string() + "' ";
  ASSERT_EQ(run(ctl + "cluster start -n 2 --engine-threads 2", dir / "start.log"), 0)
      << read(dir / "start.log");
  const int pushed = run(ctl + "push '" + test::plugin("arith").string() + "'", dir / "push.log");
  const int ran = run("IPP_PROFILE_DIR='" + (dir / "profile").string() + "' '" +
                          (build / "tutorial").string() + "'",
                      dir / "tutorial.log");
  (void)run(ctl + "cluster stop", dir / "stop.log");
  ASSERT_EQ(pushed, 0) << read(dir / "push.log");
  const std::string out = read(dir / "tutorial.log");
  ASSERT_EQ(ran, 0) << out;
  EXPECT_NE(out.find("rc[0].apply(mul, 5, 6)                   30\n"), std::string::npos) << out;
  EXPECT_NE(out.find("dview.map(mul, 1..9, 2..10)              [2, 6, 12, 20, 30, 42, 56, 72, 90]"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("2 distinct pids"), std::string::npos) << out;
}

}  // namespace
}  // namespace ipp
