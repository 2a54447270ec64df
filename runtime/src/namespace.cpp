#include "ipp/runtime/namespace.hpp"

namespace ipp {

std::optional<Value> Namespace::get(std::string_view name) const {
  std::shared_lock lock(mutex_);
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

void Namespace::set(std::string name, Value value) {
  Value old;
  std::unique_lock lock(mutex_);
  auto [it, inserted] = values_.try_emplace(std::move(name));
  old = std::exchange(it->second, std::move(value));
  lock.unlock();  // `old` (possibly a large array) is freed outside the lock
}

bool Namespace::erase(std::string_view name) {
  std::unique_lock lock(mutex_);
  auto it = values_.find(name);
  if (it == values_.end()) return false;
  values_.erase(it);
  return true;
}

void Namespace::clear() {
  std::map<std::string, Value, std::less<>> old;
  std::unique_lock lock(mutex_);
  old.swap(values_);
}

std::vector<std::string> Namespace::names() const {
  std::shared_lock lock(mutex_);
  std::vector<std::string> out;
  out.reserve(values_.size());
  for (const auto& [k, v] : values_)
    out.push_back(k);
  return out;
}

std::size_t Namespace::size() const {
  std::shared_lock lock(mutex_);
  return values_.size();
}

}  // namespace ipp
