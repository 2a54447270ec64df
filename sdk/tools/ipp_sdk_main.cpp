// ipp-sdk: tools for plugin authors.
//   ipp-sdk new NAME [DIR]   writes a plugin project (DIR defaults to ./NAME)

#include <cstdio>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>

#include "ipp/error.hpp"
#include "ipp/project_template.hpp"

int main(int argc, char** argv) {
  CLI::App app{"ipp-sdk: tools for ipp plugin authors"};
  app.set_version_flag("--version", std::string("ipp-sdk ") + IPP_VERSION);
  app.require_subcommand(1);

  std::string name;
  std::string dir;
  auto* create = app.add_subcommand("new", "Write a new plugin project ready to build");
  create->add_option("NAME", name, "Plugin name (an identifier; the plugin builds NAME.so)")
      ->required();
  create->add_option("DIR", dir, "Directory to create (default: ./NAME)");

  CLI11_PARSE(app, argc, argv);

  try {
    const std::filesystem::path target = dir.empty() ? name : dir;
    for (const auto& file : ipp::write_plugin_project(name, target)) {
      std::printf("wrote %s\n", file.string().c_str());
    }
    std::printf("\nbuild it with:\n  cmake -S %s -B %s/build && cmake --build %s/build\n",
                target.string().c_str(), target.string().c_str(), target.string().c_str());
    return 0;
  } catch (const ipp::UsageError& e) {
    std::fprintf(stderr, "ipp-sdk: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipp-sdk: %s\n", e.what());
    return 1;
  }
}
