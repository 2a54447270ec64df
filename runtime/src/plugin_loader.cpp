#include "ipp/runtime/plugin_loader.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <boost/dll/import.hpp>
#include <boost/dll/library_info.hpp>
#include <boost/dll/shared_library.hpp>

#include "ipp/detail/identifier.hpp"
#include "ipp/error.hpp"

namespace ipp {

namespace {

bool has_elf_magic(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::array<char, 4> magic{};
  in.read(magic.data(), magic.size());
  return in.gcount() == 4 && magic == std::array<char, 4>{'\x7f', 'E', 'L', 'F'};
}

std::string str_or_empty(const char* s) {
  return s == nullptr ? std::string() : std::string(s);
}

}  // namespace

void LoadedPlugin::validate_file(const std::filesystem::path& path, std::string_view shown_as) {
  const std::string name = shown_as.empty() ? path.filename().string() : std::string(shown_as);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw PluginLoadError(fmt::format("'{}' is not a file", name));
  }
  if (!has_elf_magic(path)) {
    throw PluginLoadError(fmt::format("'{}' is not a shared library (no ELF header)", name));
  }
  std::vector<std::string> symbols;
  try {
    boost::dll::library_info info(path.string());
    symbols = info.symbols("boostdll");
  } catch (const std::exception& e) {
    throw PluginLoadError(fmt::format("'{}' is not a readable shared library: {}", name, e.what()));
  }
  if (std::find(symbols.begin(), symbols.end(), IPP_MANIFEST_SYMBOL) == symbols.end()) {
    throw PluginLoadError(
        fmt::format("'{}' is a shared library but not an ipp plugin: it exports no ipp manifest "
                    "(build it with ipp_add_plugin and register tasks with IPP_TASK)",
                    name));
  }
}

LoadedPlugin::~LoadedPlugin() = default;

std::shared_ptr<const LoadedPlugin> LoadedPlugin::load(const std::filesystem::path& path,
                                                       std::string hash) {
  validate_file(path);
  std::shared_ptr<LoadedPlugin> plugin(new LoadedPlugin());
  plugin->hash_ = std::move(hash);
  plugin->path_ = path;
  try {
    // rtld_now: unresolved symbols fail here with the loader's message, not mid-task.
    // rtld_local: one plugin's symbols never satisfy another's.
    plugin->library_ = std::make_unique<boost::dll::shared_library>(
        path.string(), boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw PluginLoadError(fmt::format("cannot load '{}': {}", path.filename().string(), e.what()));
  }
  try {
    auto manifest_fn =
        boost::dll::import_alias<const ipp_manifest_v1*()>(*plugin->library_, IPP_MANIFEST_SYMBOL);
    plugin->manifest_ = manifest_fn();
  } catch (const std::exception& e) {
    throw PluginLoadError(
        fmt::format("cannot read the manifest of '{}': {}", path.filename().string(), e.what()));
  }
  const ipp_manifest_v1* m = plugin->manifest_;
  if (m == nullptr) {
    throw PluginLoadError(fmt::format("'{}' returned no manifest", path.filename().string()));
  }
  // abi_version is the first field in every ABI version, so it is safe to read before
  // anything else.
  if (m->abi_version != IPP_ABI_VERSION) {
    throw PluginLoadError(fmt::format(
        "'{}' was built with an incompatible ipp SDK: plugin ABI version {}, this runtime "
        "speaks ABI version {} (ipp {}); rebuild the plugin against this SDK",
        path.filename().string(), m->abi_version, IPP_ABI_VERSION, IPP_VERSION));
  }
  plugin->name_ = str_or_empty(m->plugin_name);
  plugin->version_ = str_or_empty(m->plugin_version);
  plugin->sdk_version_ = str_or_empty(m->sdk_version);
  if (!detail::is_identifier(plugin->name_)) {
    throw PluginLoadError(fmt::format("'{}' has an invalid plugin name '{}'",
                                      path.filename().string(), plugin->name_));
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < m->task_count; ++i) {
    const ipp_task_v1& t = m->tasks[i];
    TaskInfo info{str_or_empty(t.name), plugin->name_, str_or_empty(t.signature),
                  str_or_empty(t.doc),  t.arity,       t.result_dtype};
    if (!detail::is_identifier(info.name) || t.invoke == nullptr || t.invoke_map == nullptr) {
      throw PluginLoadError(
          fmt::format("plugin '{}' has a malformed task entry '{}'", plugin->name_, info.name));
    }
    if (!seen.insert(info.name).second) {
      throw PluginLoadError(
          fmt::format("plugin '{}' registers task '{}' more than once", plugin->name_, info.name));
    }
    plugin->infos_.push_back(std::move(info));
  }
  plugin->call_times_ = std::make_unique<CallTimes[]>(plugin->infos_.size());
  return plugin;
}

}  // namespace ipp
