// Plugin-side machinery behind IPP_TASK. This code is linked into every plugin.

#include <cxxabi.h>

#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <typeinfo>

#include <fmt/format.h>

#include "ipp/detail/task.hpp"

namespace ipp::detail {

std::vector<ipp_task_v1>& task_registry() {
  static std::vector<ipp_task_v1> tasks;
  return tasks;
}

const char* intern(std::string s) {
  static std::mutex mutex;
  static std::deque<std::string> strings;  // deque: c_str() stays valid as it grows
  std::lock_guard lock(mutex);
  return strings.emplace_back(std::move(s)).c_str();
}

const ipp_manifest_v1* make_manifest(const char* plugin_name, const char* plugin_version,
                                     std::uint32_t abi_version) {
  static const ipp_manifest_v1 manifest{
      abi_version,           IPP_VERSION, plugin_name, plugin_version, task_registry().size(),
      task_registry().data()};
  return &manifest;
}

namespace {
std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                             std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(name);
}
}  // namespace

void report_current_exception(const ipp_host_v1* host, std::uint64_t element) noexcept {
  auto send = [&](ErrorCode code, const std::string& type, const char* message) {
    host->set_error(host->self, static_cast<std::int32_t>(code), type.data(), type.size(), message,
                    std::char_traits<char>::length(message), element);
  };
  try {
    try {
      throw;
    } catch (const ForeignError& e) {
      send(ErrorCode::remote, e.type(), e.what());
    } catch (const Error& e) {
      send(e.code(), demangle(typeid(e).name()), e.what());
    } catch (const std::exception& e) {
      send(ErrorCode::remote, demangle(typeid(e).name()), e.what());
    } catch (...) {
      const std::type_info* t = abi::__cxa_current_exception_type();
      send(ErrorCode::remote, t != nullptr ? demangle(t->name()) : std::string("unknown"),
           "a non-standard exception was thrown");
    }
  } catch (...) {
    // Out of memory while describing the error: say so without allocating.
    host->set_error(host->self, static_cast<std::int32_t>(ErrorCode::remote), "std::bad_alloc", 14,
                    "out of memory while reporting an error", 38, element);
  }
}

const flatbuffers::Vector<flatbuffers::Offset<fb::Value>>* expect_args(const ipp_payload_v1& args,
                                                                       std::int32_t arity) {
  const fb::Value* root = wire_root(args);
  const auto* list = root->data_as_List();
  if (list == nullptr) throw ArgumentError("arguments must be a list, got " + wire_type_name(root));
  const auto n = static_cast<std::int64_t>(list->items()->size());
  if (n != arity) {
    throw ArgumentError(
        fmt::format("expected {} argument{}, got {}", arity, arity == 1 ? "" : "s", n));
  }
  return list->items();
}

void set_result(const ipp_host_v1* host, const Value& value) {
  Payload p = encode(value);
  std::vector<ipp_bytes_v1> scratch;
  const ipp_payload_v1 view = p.abi_view(scratch);
  host->set_result(host->self, &view);
}

void set_null_result(const ipp_host_v1* host) {
  set_result(host, Value());
}

}  // namespace ipp::detail
