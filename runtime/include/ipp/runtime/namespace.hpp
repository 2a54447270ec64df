#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "ipp/value.hpp"

namespace ipp {

/// An engine's namespace: names bound to values, shared by every task on the engine.
///
/// Guarantee: each get, set and erase is atomic. Values are immutable once bound (arrays
/// share storage, never mutate it), so a reader sees either the whole old value or the whole
/// new one, never a mix, whatever runs concurrently. Sequences of operations are not atomic
/// as a group.
class Namespace {
 public:
  [[nodiscard]] std::optional<Value> get(std::string_view name) const;
  void set(std::string name, Value value);
  bool erase(std::string_view name);
  void clear();
  [[nodiscard]] std::vector<std::string> names() const;
  [[nodiscard]] std::size_t size() const;

 private:
  mutable std::shared_mutex mutex_;
  std::map<std::string, Value, std::less<>> values_;
};

}  // namespace ipp
