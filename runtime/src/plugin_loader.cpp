#include "ipp/runtime/plugin_loader.hpp"

#include <algorithm>
#include <array>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <boost/dll/import.hpp>
#include <boost/dll/shared_library.hpp>

#include "ipp/detail/identifier.hpp"
#include "ipp/error.hpp"
#include "ipp/runtime/plugin_file.hpp"

namespace ipp {

namespace {

std::string str_or_empty(const char* s) {
  return s == nullptr ? std::string() : std::string(s);
}

}  // namespace

void LoadedPlugin::validate_file(const std::filesystem::path& path, std::string_view shown_as) {
  validate_plugin_file(path, shown_as);
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
