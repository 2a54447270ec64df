// ippctl's task commands: ids, push, plugins, status, apply, map, abort, cancel.

#include <algorithm>
#include <iostream>
#include <memory>

#include <fmt/format.h>

#include "arguments.hpp"
#include "globals.hpp"
#include "output.hpp"

namespace ipp::ctl {

namespace {

/// The options of apply and map (see docs/scheduling.md for the scheduling flags).
struct TaskArgs {
  std::string task;
  std::vector<std::string> args;
  Targets targets;
  bool balanced = false;
  std::int64_t chunksize = 0;  // 0: automatic
  int retries = 0, priority = 0;
  double queue_timeout = 0, time_limit = 0;
  std::string after, follow;
  bool any = false, on_failure = false, on_finish = false;
};

Duration seconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

/// A dependency on the msg_ids in `list`, met as the flags say.
Dependency dependency(const TaskArgs& a, const std::string& list) {
  Dependency d(split_ids(list));
  if (a.any) d = d.any();
  if (a.on_finish)
    d = d.on_finish();
  else if (a.on_failure)
    d = d.on_failure();
  return d;
}

/// apply (`map` false) or map, on the target engines or the load-balanced queue.
int run_task(const Globals& g, const TaskArgs& a, bool map) {
  Submission s(g);
  Client& rc = s.client();
  Value::List values;
  for (const auto& arg : a.args)
    values.push_back(argument(arg));
  TaskFlags flags;
  if (a.time_limit < 0 || a.queue_timeout < 0)
    throw UsageError("--time-limit and --timeout take a positive number of seconds");
  if (a.time_limit > 0) flags.time_limit = std::max(Duration(1), seconds(a.time_limit));
  const bool lb_flags = a.retries != 0 || a.priority != 0 || a.queue_timeout > 0 ||
                        !a.after.empty() || !a.follow.empty();
  if (lb_flags && !a.balanced) {
    throw UsageError("--retries, --timeout, --after, --follow and --priority need --balanced");
  }
  AsyncResult r = [&] {
    if (a.balanced) {
      flags.retries = a.retries;
      flags.priority = a.priority;
      if (a.queue_timeout > 0) flags.timeout = std::max(Duration(1), seconds(a.queue_timeout));
      flags.after = dependency(a, a.after);
      flags.follow = dependency(a, a.follow);
      if (a.targets.given()) {
        bool single = false;
        flags.targets = a.targets.ids(rc, &single);
      }
      auto lb = rc.load_balanced_view().with(flags);
      return map ? lb.map_async(a.task, values, static_cast<std::uint64_t>(a.chunksize))
                 : lb.apply_async(a.task, values);
    }
    DirectView view = a.targets.view(rc).with(flags);
    return map ? view.map_async(a.task, values) : view.apply_async(a.task, values);
  }();
  s.finish(r, false);
  return kOk;
}

void add_scheduling_flags(CLI::App* cmd, TaskArgs& a) {
  cmd->add_option("--retries", a.retries,
                  "--balanced: run a failed task again on another engine, up to N times")
      ->check(CLI::Range(0, 1000));
  cmd->add_option("--timeout", a.queue_timeout,
                  "--balanced: fail with TaskTimeout after waiting SECONDS in the scheduler")
      ->check(kSeconds);
  cmd->add_option("--after", a.after, "--balanced: run after these msg_ids (comma-separated)");
  cmd->add_option("--follow", a.follow,
                  "--balanced: run on the engine where these msg_ids ran (comma-separated)");
  cmd->add_flag("--any", a.any, "--after/--follow: one of the msg_ids is enough (default: all)");
  cmd->add_flag("--on-failure", a.on_failure,
                "--after/--follow: met when they failed (default: when they succeeded)");
  cmd->add_flag("--on-finish", a.on_finish, "--after/--follow: met when they finished either way");
  cmd->add_option("--priority", a.priority, "--balanced: higher runs first among ready tasks");
  cmd->add_option("--time-limit", a.time_limit,
                  "Cancel the task and fail with TaskTimeout after it ran SECONDS")
      ->check(kSeconds);
}

/// abort (`abort` true) or cancel of `ids`.
int control(const Globals& g, const std::vector<std::string>& ids, bool abort) {
  Client rc = g.client();
  const ControlSummary done = abort ? rc.abort(ids) : rc.cancel(ids);
  if (g.json) {
    print_json(json{{"removed", done.removed},
                    {"signalled", done.signalled},
                    {"not_pending", done.not_pending}});
  } else {
    std::cout << fmt::format(
        "{} removed from the queue, {} passed on to their engines, {} not pending\n",
        done.removed.size(), done.signalled.size(), done.not_pending.size());
  }
  return kOk;
}

}  // namespace

void add_task_commands(CLI::App& app, Globals& g) {
  on(app.add_subcommand("ids", "Ids of the registered engines"), g, [&g] {
    print(g, Value(g.client().ids()));
    return kOk;
  });
  auto file = std::make_shared<std::string>();
  auto* push = app.add_subcommand("push", "Send a plugin to every engine");
  push->add_option("FILE", *file, "The plugin (.so)")->required();
  on(push, g, [&g, file] {
    print(g, g.client().push_plugin(*file));
    return kOk;
  });
  auto name = std::make_shared<std::string>();
  auto* unload = app.add_subcommand(
      "unload", "Unload a plugin from every engine; engines that register later do not get it");
  unload->add_option("NAME", *name, "The plugin's name, as `plugins` lists it")->required();
  on(unload, g, [&g, name] {
    print(g, g.client().unload_plugin(*name));
    return kOk;
  });
  on(app.add_subcommand("plugins", "Plugins pushed so far"), g, [&g] {
    print(g, g.client().plugins());
    return kOk;
  });
  on(app.add_subcommand("status", "Queue status per engine"), g, [&g] {
    print(g, g.client().queue_status());
    return kOk;
  });

  auto a = std::make_shared<TaskArgs>();
  auto* apply =
      app.add_subcommand("apply", "Run a task once per target engine (or once, --balanced)");
  apply->add_option("TASK", a->task, "Task name (plugin.task, or a unique bare name)")->required();
  apply->add_option("ARGS", a->args,
                    "Arguments: 5  2.5  true  \"text\"  word  '[1, 2]'  1..9  0..100:5  @name "
                    "(the engine's value of name)");
  a->targets.add_to(apply);
  apply->add_flag("--balanced", a->balanced, "Run once, wherever an engine is free");
  auto* map = app.add_subcommand("map", "Run a task over sequences, gathered in order");
  map->add_option("TASK", a->task, "Task name")->required();
  map->add_option("SEQ", a->args, "Sequences: 1..9  0..100:5  '[1, 2, 3]'  @name")->required();
  a->targets.add_to(map, "Engines for a direct map (default: all)");
  map->add_flag("--balanced", a->balanced, "Schedule chunks on free engines");
  map->add_option("--chunksize", a->chunksize,
                  "Elements per chunk with --balanced (default: automatic)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
  for (auto* cmd : {apply, map})
    add_scheduling_flags(cmd, *a);
  on(apply, g, [&g, a] { return run_task(g, *a, false); });
  on(map, g, [&g, a] { return run_task(g, *a, true); });

  auto ids = std::make_shared<std::vector<std::string>>();
  auto* abort_cmd = app.add_subcommand("abort", "Remove queued tasks before they run");
  abort_cmd->add_option("MSG_ID", *ids, "msg_ids (as printed by --json)")->required();
  on(abort_cmd, g, [&g, ids] { return control(g, *ids, true); });
  auto* cancel_cmd =
      app.add_subcommand("cancel", "Cancel tasks: queued ones do not run, running ones are told");
  cancel_cmd->add_option("MSG_ID", *ids, "msg_ids (as printed by --json)")->required();
  on(cancel_cmd, g, [&g, ids] { return control(g, *ids, false); });
}

}  // namespace ipp::ctl
