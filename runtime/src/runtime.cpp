#include "ipp/runtime/runtime.hpp"

#include <future>

#include <spdlog/spdlog.h>

namespace ipp {

Runtime::Runtime(RuntimeOptions options)
    : engine_id_(options.engine_id),
      store_(options.store_dir.empty() ? throw UsageError("RuntimeOptions::store_dir is required")
                                       : options.store_dir),
      executor_(options.threads) {}

Runtime::~Runtime() {
  executor_.wait_idle();
}

std::shared_ptr<const LoadedPlugin> Runtime::load(const std::filesystem::path& file) {
  LoadedPlugin::validate_file(file);  // refuse early, before anything is stored
  return register_stored(store_.store_file(file));
}

std::shared_ptr<const LoadedPlugin> Runtime::load_bytes(std::span<const std::byte> bytes) {
  const StoredPlugin stored = store_.store_bytes(bytes);
  return register_stored(stored);
}

std::shared_ptr<const LoadedPlugin> Runtime::register_stored(const StoredPlugin& stored) {
  // One load at a time: two pushes of different builds of one plugin must not interleave.
  std::lock_guard lock(load_mutex_);
  for (const auto& p : registry_.plugins()) {
    if (p->hash() == stored.hash) return p;  // this exact build is already registered
  }
  auto plugin = LoadedPlugin::load(stored.path, stored.hash);
  auto previous = registry_.add(plugin);
  if (previous) {
    spdlog::info("plugin {} {} ({}) replaces {} ({}) for new calls", plugin->name(),
                 plugin->version(), plugin->hash().substr(0, 12), previous->version(),
                 previous->hash().substr(0, 12));
  } else {
    spdlog::info("plugin {} {} ({}) loaded with {} task(s)", plugin->name(), plugin->version(),
                 plugin->hash().substr(0, 12), plugin->tasks().size());
  }
  return plugin;
}

void Runtime::submit(std::string_view task, Payload args, Callback done,
                     std::shared_ptr<const std::atomic<bool>> cancelled) {
  submit_impl(task, std::move(args), std::move(done), std::move(cancelled), false);
}

void Runtime::submit_map(std::string_view task, Payload sequences, Callback done,
                         std::shared_ptr<const std::atomic<bool>> cancelled) {
  submit_impl(task, std::move(sequences), std::move(done), std::move(cancelled), true);
}

void Runtime::submit_impl(std::string_view task, Payload payload, Callback done,
                          std::shared_ptr<const std::atomic<bool>> cancelled, bool is_map) {
  TaskHandle handle;
  try {
    handle = registry_.resolve(task);
  } catch (const Error& e) {
    TaskOutcome out;
    out.started = out.completed = Clock::now();
    ErrorRecord r;
    r.code = e.code();
    r.type = e.code() == ErrorCode::ambiguous_task ? "ipp::AmbiguousTask" : "ipp::TaskNotFound";
    r.message = e.what();
    r.task = std::string(task);
    r.engine = engine_id_;
    out.error = std::move(r);
    done(std::move(out));
    return;
  }
  executor_.submit([this, handle = std::move(handle), payload = std::move(payload),
                    done = std::move(done), cancelled = std::move(cancelled), is_map]() mutable {
    const InvokeContext ctx{engine_id_, &ns_, cancelled.get()};
    TaskOutcome out =
        is_map ? invoke_map(handle, payload, ctx, executor_) : invoke(handle, payload, ctx);
    try {
      done(std::move(out));
    } catch (const std::exception& e) {
      spdlog::error("task completion callback threw: {}", e.what());
    }
  });
}

TaskOutcome Runtime::wait_for(std::string_view task, Payload payload, bool is_map) {
  (void)registry_.resolve(task);  // throws TaskNotFound / AmbiguousTask to the caller, typed
  std::promise<TaskOutcome> promise;
  auto future = promise.get_future();
  submit_impl(
      task, std::move(payload), [&promise](TaskOutcome out) { promise.set_value(std::move(out)); },
      nullptr, is_map);
  return future.get();
}

Value Runtime::call(std::string_view task, const Value::List& args) {
  TaskOutcome out = wait_for(task, encode(Value(args)), false);
  if (!out.ok()) rethrow(*out.error);
  return decode(out.result);
}

Value Runtime::map(std::string_view task, const Value::List& sequences) {
  TaskOutcome out = wait_for(task, encode(Value(sequences)), true);
  if (!out.ok()) rethrow(*out.error);
  return decode(out.result);
}

}  // namespace ipp
