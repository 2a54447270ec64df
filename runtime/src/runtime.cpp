#include "ipp/runtime/runtime.hpp"

#include <future>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/fb/value_generated.h"
#include "ipp/literal.hpp"
#include "ipp/runtime/statements.hpp"

namespace ipp {

Runtime::Runtime(RuntimeOptions options)
    : engine_id_(options.engine_id),
      max_map_output_(options.max_map_output),
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

void Runtime::load_on_demand(std::string name, std::filesystem::path file) {
  std::lock_guard lock(on_demand_mutex_);
  on_demand_.insert_or_assign(std::move(name), std::move(file));
}

bool Runtime::load_wanted(std::string_view name) {
  // Held while it loads: a second first call waits for the plugin instead of missing it.
  std::lock_guard lock(on_demand_mutex_);
  if (registry_.plugin(name) != nullptr) return true;  // loaded meanwhile
  const auto it = on_demand_.find(name);
  if (it == on_demand_.end()) return false;
  const std::filesystem::path file = it->second;
  on_demand_.erase(it);  // tried once: a plugin that fails to load says so once
  try {
    (void)load(file);
    return true;
  } catch (const Error& e) {
    spdlog::warn("built-in plugin {} not loaded: {}", file.string(), e.what());
    return false;
  }
}

TaskHandle Runtime::resolve_loading(std::string_view task) {
  try {
    return registry_.resolve(task);
  } catch (const TaskNotFound&) {
    const auto dot = task.find('.');
    if (dot == std::string_view::npos || !load_wanted(task.substr(0, dot))) throw;
  }
  return registry_.resolve(task);
}

bool Runtime::unload(std::string_view name) {
  std::lock_guard lock(load_mutex_);
  auto removed = registry_.remove(name);
  if (removed)
    spdlog::info("plugin {} {} ({}) unloaded for new calls", removed->name(), removed->version(),
                 removed->hash().substr(0, 12));
  return removed != nullptr;
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

bool TaskControl::start() noexcept {
  if (cancelled.load()) return false;
  started_us.store(std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count());
  return true;
}

void Runtime::submit(std::string_view task, Payload args, Callback done,
                     std::shared_ptr<TaskControl> control, bool may_be_quick) {
  submit_impl(task, std::move(args), std::move(done), std::move(control), false, may_be_quick);
}

void Runtime::ran(CallTimes& times, Clock::duration took) noexcept {
  const std::uint32_t n = times.runs.fetch_add(1, std::memory_order_relaxed) + 1;
  if (took >= kQuickBelow) times.last_slow.store(n, std::memory_order_relaxed);
}

bool Runtime::quick(const CallTimes& times) noexcept {
  return times.runs.load(std::memory_order_relaxed) >=
         times.last_slow.load(std::memory_order_relaxed) + kQuickRuns;
}

bool Runtime::quick(std::string_view task) {
  try {
    const TaskHandle handle = registry_.resolve(task);
    return quick(handle.plugin->call_times(handle.index));
  } catch (const Error&) {
    return false;  // no such task
  }
}

void Runtime::submit_map(std::string_view task, Payload sequences, Callback done,
                         std::shared_ptr<TaskControl> control) {
  submit_impl(task, std::move(sequences), std::move(done), std::move(control), true);
}

namespace {

/// The record of a task name that does not resolve (unknown, or ambiguous when bare).
ErrorRecord lookup_error(const Error& e, std::string_view task, std::int64_t engine) {
  return make_error_record(e.code(), e.what(), std::string(task), engine);
}

}  // namespace

ErrorRecord cancelled_before_start(std::string_view task, std::int64_t engine) {
  return make_error_record(ErrorCode::cancelled,
                           fmt::format("task '{}' was cancelled before it started", task),
                           std::string(task), engine);
}

void Runtime::submit_impl(std::string_view task, Payload payload, Callback done,
                          std::shared_ptr<TaskControl> control, bool is_map, bool may_be_quick) {
  TaskHandle handle;
  try {
    handle = resolve_loading(task);
  } catch (const Error& e) {
    TaskOutcome out;
    out.started = out.completed = Clock::now();
    out.error = lookup_error(e, task, engine_id_);
    done(std::move(out));
    return;
  }
  // Plain calls learn how long they take; maps run in parallel and are never quick.
  CallTimes* times = is_map ? nullptr : &handle.plugin->call_times(handle.index);
  const bool is_quick = may_be_quick && times != nullptr && quick(*times);
  executor_.submit(
      [this, handle = std::move(handle), payload = std::move(payload), done = std::move(done),
       control = std::move(control), is_map, name = std::string(task), times]() mutable {
        TaskOutcome out;
        if (control && !control->start()) {
          out.started = out.completed = Clock::now();
          out.error = cancelled_before_start(name, engine_id_);
        } else {
          const InvokeContext ctx{engine_id_, &ns_, control ? &control->cancelled : nullptr,
                                  max_map_output_};
          out = is_map ? invoke_map(handle, payload, ctx, executor_) : invoke(handle, payload, ctx);
          if (times) ran(*times, out.completed - out.started);
        }
        try {
          done(std::move(out));
        } catch (const std::exception& e) {
          spdlog::error("task completion callback threw: {}", e.what());
        }
      },
      is_quick);
}

TaskOutcome Runtime::wait_for(std::string_view task, Payload payload, bool is_map) {
  (void)resolve_loading(task);  // throws TaskNotFound / AmbiguousTask to the caller, typed
  std::promise<TaskOutcome> promise;
  auto future = promise.get_future();
  submit_impl(
      task, std::move(payload), [&promise](TaskOutcome out) { promise.set_value(std::move(out)); },
      nullptr, is_map);
  return future.get();
}

// ---- ordered jobs ---------------------------------------------------------------------------

void Runtime::submit_ordered(std::function<TaskOutcome()> job, Callback done) {
  {
    std::lock_guard lock(strand_mutex_);
    strand_.emplace_back(std::move(job), std::move(done));
    if (strand_running_) return;
    strand_running_ = true;
  }
  // One runner drains the queue; the next job starts when the previous one has finished.
  executor_.submit([this] {
    while (true) {
      std::pair<std::function<TaskOutcome()>, Callback> next;
      {
        std::lock_guard lock(strand_mutex_);
        if (strand_.empty()) {
          strand_running_ = false;
          return;
        }
        next = std::move(strand_.front());
        strand_.pop_front();
      }
      TaskOutcome out;
      try {
        out = next.first();
      } catch (const std::exception& e) {
        ErrorRecord r;
        r.code = ErrorCode::unknown;
        r.type = "std::exception";
        r.message = e.what();
        r.engine = engine_id_;
        out.error = std::move(r);
        out.started = out.completed = Clock::now();
      }
      try {
        next.second(std::move(out));
      } catch (const std::exception& e) {
        spdlog::error("ordered job completion callback threw: {}", e.what());
      }
    }
  });
}

// ---- references and bound results ------------------------------------------------------------

bool Runtime::has_refs(const Payload& args) {
  const Buffer root = args.root.aligned(8);
  const fb::Value* v = verify(root.bytes());
  const auto* list = v->data_as_List();
  if (list == nullptr) return false;
  for (const auto* item : *list->items()) {
    if (item->data_type() == fb::Data::Ref) return true;
  }
  return false;
}

namespace {

ErrorRecord name_error(const std::string& name, std::int64_t engine) {
  return make_error_record(ErrorCode::name_error,
                           engine >= 0
                               ? fmt::format("name '{}' is not defined on engine {}", name, engine)
                               : fmt::format("name '{}' is not defined", name),
                           {}, engine);
}

TaskOutcome failed(ErrorRecord r) {
  TaskOutcome out;
  out.started = out.completed = Clock::now();
  out.error = std::move(r);
  return out;
}

}  // namespace

TaskOutcome Runtime::run_now(std::string_view task, const Payload& args, bool is_map,
                             const std::string& bind, const std::atomic<bool>* cancelled) {
  TaskHandle handle;
  try {
    handle = resolve_loading(task);
  } catch (const Error& e) {
    return failed(lookup_error(e, task, engine_id_));
  }
  Payload resolved;
  try {
    if (has_refs(args)) {
      Value list = decode(args);
      for (auto& item : list.as_list()) {
        if (item.kind() != Value::Kind::ref) continue;
        const std::string name = item.as_ref().name;
        auto value = ns_.get(name);
        if (!value) {
          ErrorRecord r = name_error(name, engine_id_);
          r.task = handle.info().qualified_name();
          r.plugin = handle.info().plugin;
          return failed(std::move(r));
        }
        item = std::move(*value);
      }
      resolved = encode(list);
    } else {
      resolved = args;
    }
  } catch (const Error& e) {
    return failed(
        make_error_record(e.code(), e.what(), handle.info().qualified_name(), engine_id_));
  }
  const InvokeContext ctx{engine_id_, &ns_, cancelled, max_map_output_};
  TaskOutcome out =
      is_map ? invoke_map(handle, resolved, ctx, executor_) : invoke(handle, resolved, ctx);
  if (out.ok() && !bind.empty()) {
    ns_.set(bind, decode(out.result));
    out.result = Payload{};
  }
  return out;
}

void Runtime::clear_namespace() {
  ns_.clear();
  std::lock_guard lock(imports_mutex_);
  imports_.clear();
}

// ---- execute --------------------------------------------------------------------------------

namespace {

/// A statement failed: its record, completed with where it happened.
struct StatementFailure {
  ErrorRecord record;
};

}  // namespace

namespace {

/// `r` raised at `at`.
StatementFailure failure_at(ErrorRecord r, statements::Position at) {
  r.line = at.line;
  r.column = at.column;
  return StatementFailure{std::move(r)};
}

}  // namespace

TaskOutcome Runtime::execute(std::string_view code, const std::atomic<bool>* cancelled) {
  const auto started = Clock::now();
  auto fail = [&](ErrorRecord r, statements::Position at) {
    r.engine = engine_id_;
    r.line = at.line;
    r.column = at.column;
    TaskOutcome out = failed(std::move(r));
    out.started = started;
    return out;
  };
  std::vector<statements::Statement> program;
  try {
    program = statements::parse(code);
  } catch (const SyntaxError& e) {
    ErrorRecord r = make_error_record(ErrorCode::syntax, e.what());
    // The message starts with "line L, column C: "; the record carries those apart.
    if (const auto colon = r.message.find(": "); colon != std::string::npos)
      r.message = r.message.substr(colon + 2);
    return fail(std::move(r), {e.line(), e.column()});
  }
  const InvokeContext ctx{engine_id_, &ns_, cancelled, max_map_output_};
  for (const auto& s : program) {
    try {
      run_statement(s, ctx);
    } catch (const StatementFailure& f) {
      return fail(f.record, {f.record.line, f.record.column});
    } catch (const Error& e) {
      return fail(make_error_record(e.code(), e.what()), s.at);
    }
  }
  TaskOutcome out;
  out.started = started;
  out.completed = Clock::now();
  return out;
}

void Runtime::run_statement(const statements::Statement& s, const InvokeContext& ctx) {
  using statements::Statement;
  switch (s.kind) {
    case Statement::Kind::import_plugins:
      import_plugins(s);
      break;
    case Statement::Kind::assign:
      ns_.set(s.names.at(0).text, eval(s.expr, ctx));
      break;
    case Statement::Kind::del:
      for (const auto& n : s.names) {
        if (!ns_.erase(n.text)) throw failure_at(name_error(n.text, engine_id_), n.at);
      }
      break;
    case Statement::Kind::expr:
      (void)eval(s.expr, ctx);
      break;
  }
}

void Runtime::import_plugins(const statements::Statement& s) {
  for (const auto& n : s.names) {
    if (registry_.plugin(n.text) == nullptr && !load_wanted(n.text)) {
      std::string loaded;
      for (const auto& p : registry_.plugins())
        loaded += (loaded.empty() ? "" : ", ") + p->name();
      ErrorRecord r = make_error_record(
          ErrorCode::name_error, fmt::format("no plugin named '{}' has been pushed (plugins: {})",
                                             n.text, loaded.empty() ? "none" : loaded));
      r.type = "ipp::ImportError";  // a NameError of a plugin's name, as Python says
      throw failure_at(std::move(r), n.at);
    }
    std::lock_guard lock(imports_mutex_);
    imports_.insert(n.text);
  }
}

bool Runtime::imported(std::string_view plugin) const {
  std::lock_guard lock(imports_mutex_);
  return imports_.contains(plugin);
}

Value Runtime::eval(const statements::Expr& e, const InvokeContext& ctx) {
  using statements::Expr;
  switch (e.kind) {
    case Expr::Kind::literal:
      return e.value;
    case Expr::Kind::name: {
      if (auto v = ns_.get(e.name)) return std::move(*v);
      ErrorRecord r = name_error(e.name, engine_id_);
      if (imported(e.name)) {
        r.message = fmt::format("'{}' is a plugin, not a value: call its tasks as {}.task(...)",
                                e.name, e.name);
      }
      throw failure_at(std::move(r), e.at);
    }
    case Expr::Kind::list: {
      Value::List items;
      items.reserve(e.items.size());
      for (const auto& item : e.items)
        items.push_back(eval(item, ctx));
      return Value(std::move(items));
    }
    case Expr::Kind::call:
      return call_in_statement(e, ctx);
  }
  return Value();
}

Value Runtime::call_in_statement(const statements::Expr& e, const InvokeContext& ctx) {
  if (!e.plugin.empty() && !imported(e.plugin)) {
    ErrorRecord r;
    r.task = e.name;
    r.code = ErrorCode::name_error;
    r.type = error_type_name(r.code);
    r.message =
        fmt::format("name '{}' is not defined (import it first: import {})", e.plugin, e.plugin);
    throw failure_at(std::move(r), e.at);
  }
  TaskHandle handle;
  try {
    handle = resolve_loading(e.name);
  } catch (const Error& err) {
    throw failure_at(lookup_error(err, e.name, -1), e.at);
  }
  Value::List args;
  args.reserve(e.items.size());
  for (const auto& item : e.items)
    args.push_back(eval(item, ctx));
  TaskOutcome out = invoke(handle, encode(Value(std::move(args))), ctx);
  if (!out.ok()) throw failure_at(std::move(*out.error), e.at);
  return decode(out.result);
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
