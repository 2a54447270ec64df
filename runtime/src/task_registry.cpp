#include "ipp/runtime/task_registry.hpp"

#include <mutex>

#include <fmt/format.h>

#include "ipp/error.hpp"

namespace ipp {

std::shared_ptr<const LoadedPlugin> TaskRegistry::add(std::shared_ptr<const LoadedPlugin> plugin) {
  std::unique_lock lock(mutex_);
  auto& slot = plugins_[plugin->name()];
  auto previous = std::move(slot);
  slot = std::move(plugin);
  reindex();
  return previous;
}

std::shared_ptr<const LoadedPlugin> TaskRegistry::remove(std::string_view name) {
  std::unique_lock lock(mutex_);
  auto it = plugins_.find(name);
  if (it == plugins_.end()) return nullptr;
  auto removed = std::move(it->second);
  plugins_.erase(it);
  reindex();
  return removed;
}

void TaskRegistry::reindex() {
  bare_.clear();
  for (const auto& [name, plugin] : plugins_) {
    for (std::size_t i = 0; i < plugin->tasks().size(); ++i) {
      bare_[plugin->tasks()[i].name].emplace_back(name, i);
    }
  }
}

TaskHandle TaskRegistry::resolve(std::string_view name) const {
  std::shared_lock lock(mutex_);
  const auto dot = name.find('.');
  if (dot != std::string_view::npos) {
    const auto plugin_name = name.substr(0, dot);
    const auto task_name = name.substr(dot + 1);
    auto it = plugins_.find(plugin_name);
    if (it == plugins_.end()) {
      throw TaskNotFound(
          fmt::format("no plugin named '{}' is loaded (task '{}')", plugin_name, name));
    }
    const auto& tasks = it->second->tasks();
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      if (tasks[i].name == task_name) return TaskHandle{it->second, i};
    }
    throw TaskNotFound(fmt::format("plugin '{}' has no task '{}'", plugin_name, task_name));
  }
  auto it = bare_.find(std::string(name));
  if (it == bare_.end() || it->second.empty()) {
    throw TaskNotFound(plugins_.empty()
                           ? fmt::format("no task named '{}': no plugins are loaded", name)
                           : fmt::format("no task named '{}' in any loaded plugin", name));
  }
  if (it->second.size() > 1) {
    std::vector<std::string> candidates;
    for (const auto& [plugin, index] : it->second)
      candidates.push_back(plugin + "." + std::string(name));
    throw AmbiguousTask(fmt::format("task name '{}' is ambiguous; use one of: {}", name,
                                    fmt::join(candidates, ", ")));
  }
  const auto& [plugin, index] = it->second.front();
  return TaskHandle{plugins_.find(plugin)->second, index};
}

std::shared_ptr<const LoadedPlugin> TaskRegistry::plugin(std::string_view name) const {
  std::shared_lock lock(mutex_);
  auto it = plugins_.find(name);
  return it == plugins_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const LoadedPlugin>> TaskRegistry::plugins() const {
  std::shared_lock lock(mutex_);
  std::vector<std::shared_ptr<const LoadedPlugin>> out;
  for (const auto& [name, plugin] : plugins_)
    out.push_back(plugin);
  return out;
}

}  // namespace ipp
