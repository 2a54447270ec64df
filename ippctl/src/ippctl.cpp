// ippctl: the command line for ipp clusters. See run() for the commands.

#include "ippctl.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cluster_cli.hpp"
#include "ipp/client.hpp"
#include "ipp/detail/identifier.hpp"
#include "ipp/literal.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/json_text.hpp"

extern char** environ;

namespace ipp::ctl {

namespace {

using namespace std::chrono_literals;
using json = nlohmann::ordered_json;

constexpr int kOk = 0, kRemote = 1, kUsage = 2, kConnection = 3;

json to_json(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::null:
      return nullptr;
    case Value::Kind::boolean:
      return v.as_bool();
    case Value::Kind::integer:
      return v.as_int();
    case Value::Kind::floating:
      return v.as_float();
    case Value::Kind::string:
      return v.as_string();
    case Value::Kind::bytes: {
      const auto& b = v.as_bytes().data;
      return json::binary(
          std::vector<std::uint8_t>(reinterpret_cast<const std::uint8_t*>(b.data()),
                                    reinterpret_cast<const std::uint8_t*>(b.data()) + b.size()));
    }
    case Value::Kind::range:
    case Value::Kind::array:
    case Value::Kind::list: {
      json out = json::array();
      if (v.kind() == Value::Kind::list) {
        for (const auto& item : v.as_list())
          out.push_back(to_json(item));
      } else if (v.kind() == Value::Kind::range) {
        const Range& r = v.as_range();
        for (std::uint64_t i = 0; i < r.size(); ++i)
          out.push_back(r[i]);
      } else {
        const Array& a = v.as_array();
        detail::visit_dtype(a.dtype(), [&](auto tag) {
          using S = decltype(tag);
          for (std::uint64_t i = 0; i < a.size(); ++i)
            out.push_back(detail::load<S>(a.buffer().data(), i));
        });
      }
      return out;
    }
    case Value::Kind::ref:
      return json{{"ref", v.as_ref().name}};
    case Value::Kind::map: {
      json out = json::object();
      for (const auto& [k, item] : v.as_map())
        out[k] = to_json(item);
      return out;
    }
  }
  return nullptr;
}

/// A command-line argument as a value: a literal, `@name` for a name in the engine's
/// namespace (ipp::ref), or else a bare word taken as a string.
constexpr char kBracketGuard = '\x01';

Value argument(std::string text) {
  if (!text.empty() && text[0] == kBracketGuard) text.erase(0, 1);
  if (text.size() > 1 && text[0] == '@' && detail::is_identifier(text.substr(1)))
    return ref(text.substr(1));
  try {
    return parse_literal(text);
  } catch (const SyntaxError&) {
    const char c = text.empty() ? '\0' : text[0];
    const bool literal_start =
        std::string_view("[\"'0123456789-+.").find(c) != std::string_view::npos;
    if (!literal_start && text.find_first_of(" \t[],") == std::string::npos) return Value(text);
    throw;
  }
}

/// "a,b, c" -> {"a", "b", "c"} (empty pieces dropped).
std::vector<std::string> split_ids(const std::string& list) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : list + ",") {
    if (c == ',' || c == ' ') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

std::vector<std::int64_t> parse_targets(const std::string& spec, const Client& rc, bool* single) {
  *single = false;
  if (spec == "all") return rc.ids();
  std::vector<std::int64_t> out;
  std::stringstream ss(spec);
  std::string part;
  while (std::getline(ss, part, ',')) {
    std::size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != part.size() || id < 0) {
      throw UsageError(
          fmt::format("bad target '{}': use an engine id, ids like 0,2, or all", part));
    }
    out.push_back(id);
  }
  if (out.empty()) throw UsageError("no targets given");
  *single = out.size() == 1 && spec.find(',') == std::string::npos;
  return out;
}

/// A number of seconds: finite and not negative ("nan", "inf" and "-3" are usage errors).
const CLI::Validator kSeconds(
    [](std::string& text) -> std::string {
      double v = 0;
      try {
        std::size_t used = 0;
        v = std::stod(text, &used);
        if (used != text.size()) return "not a number of seconds: " + text;
      } catch (const std::exception&) {
        return "not a number of seconds: " + text;
      }
      if (!std::isfinite(v) || v < 0) return "needs a finite number of seconds >= 0, not " + text;
      return {};
    },
    "SECONDS");

struct Globals {
  std::string profile;
  bool json = false;
  int timeout_ms = 10000;
  std::filesystem::path dir() const {
    return net::profile_dir(profile.empty() ? std::nullopt
                                            : std::optional<std::filesystem::path>(profile));
  }
  Client client() const {
    return Client(ClientOptions{
        .profile_dir = dir(), .connection_file = std::nullopt, .timeout = Duration(timeout_ms)});
  }
  ClusterCli cluster() const { return {.profile = dir(), .json = json, .timeout_ms = timeout_ms}; }
};

void print(const Globals& g, const Value& v, const std::vector<std::string>& msg_ids = {}) {
  if (g.json) {
    json out;
    out["result"] = to_json(v);
    if (!msg_ids.empty()) out["msg_ids"] = msg_ids;
    std::cout << json_text(out) << "\n";
  } else {
    v.write_repr(std::cout);
    std::cout << "\n";
  }
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"ippctl: start ipp clusters and run tasks on them"};
  app.require_subcommand(1);
  Globals g;
  app.add_option("--profile-dir", g.profile,
                 "Profile directory (default: $IPP_PROFILE_DIR or ~/.ipp/profile_default)");
  app.add_flag("--json", g.json, "Print one JSON document");
  app.add_option("--timeout-ms", g.timeout_ms, "How long to wait for the controller")
      ->capture_default_str()
      ->check(CLI::Range(1, 24 * 3600 * 1000));

  auto* cluster = app.add_subcommand("cluster", "Start, stop or inspect a local cluster");
  cluster->require_subcommand(1);
  int n = 0, engine_threads = 0, heartbeat_ms = 1000;
  bool restart_engines = true;
  std::vector<std::int64_t> engine_ids;
  auto* start = cluster->add_subcommand(
      "start",
      "Start a controller, a supervisor and N engines it restarts when they crash; returns when "
      "all are registered");
  start->add_option("-n,--engines", n, "Number of engines")->required()->check(CLI::Range(1, 1024));
  start->add_option("--engine-threads", engine_threads,
                    "Threads per engine (default: the number of cores)");
  start
      ->add_option("--heartbeat-ms", heartbeat_ms,
                   "Heartbeat period: an engine silent this long is dead")
      ->capture_default_str()
      ->check(CLI::Range(20, 600000));
  start->add_flag("--restart-engines,!--no-restart-engines", restart_engines,
                  "Restart engines that crash, with a growing back-off (default: on)");
  std::string scheme;
  std::optional<int> hwm;
  bool no_shm = false;
  start->add_flag("--no-shm", no_shm,
                  "Large arrays always through the sockets, never shared memory");
  bool no_ipc = false;
  start->add_flag("--no-ipc", no_ipc,
                  "Engines and clients on this host use TCP too, never Unix sockets");
  start->add_option(
      "--scheme", scheme,
      "Load-balancing scheme: leastload (default), lru, plainrandom, twobin, weighted");
  start
      ->add_option("--hwm", hwm,
                   "Tasks outstanding per engine in the load-balanced queue: N at most, 0 no "
                   "limit (default: one per thread, more of the tasks known to be short)")
      ->check(CLI::NonNegativeNumber);
  auto* stop = cluster->add_subcommand("stop", "Stop the controller, its engines and supervisor");
  auto* cstatus = cluster->add_subcommand("status", "Show the cluster's processes");
  auto* cadd = cluster->add_subcommand(
      "add", "Start N more supervised engines; returns when they are registered");
  cadd->add_option("-n,--engines", n, "Number of engines")->required()->check(CLI::Range(1, 1024));
  auto* cremove = cluster->add_subcommand(
      "remove", "Drain engines (their running tasks finish, no new ones start), then stop them");
  cremove->add_option("ID", engine_ids, "Engine ids")->required()->check(CLI::NonNegativeNumber);
  // The supervisor daemon that cluster start and add run; not for users.
  auto* supervise = cluster->add_subcommand("supervise", "");
  supervise->group("");
  supervise->add_option("-n,--engines", n)->required();
  supervise->add_option("--engine-threads", engine_threads);
  supervise->add_flag("--restart-engines,!--no-restart-engines", restart_engines);

  auto* ids = app.add_subcommand("ids", "Ids of the registered engines");
  std::string file;
  auto* push = app.add_subcommand("push", "Send a plugin to every engine");
  push->add_option("FILE", file, "The plugin (.so)")->required();
  auto* plugins = app.add_subcommand("plugins", "Plugins pushed so far");
  auto* status = app.add_subcommand("status", "Queue status per engine");

  std::string task, targets;
  // --targets given at all: an empty list is an error, not "all engines".
  std::vector<CLI::Option*> target_options;
  auto targets_given = [&target_options] {
    return std::any_of(target_options.begin(), target_options.end(),
                       [](const CLI::Option* o) { return o->count() > 0; });
  };
  std::vector<std::string> args;
  bool balanced = false;
  std::int64_t chunksize = 0;  // 0: automatic
  auto* apply =
      app.add_subcommand("apply", "Run a task once per target engine (or once, --balanced)");
  apply->add_option("TASK", task, "Task name (plugin.task, or a unique bare name)")->required();
  apply->add_option("ARGS", args,
                    "Arguments: 5  2.5  true  \"text\"  word  '[1, 2]'  1..9  0..100:5  @name "
                    "(the engine's value of name)");
  target_options.push_back(
      apply->add_option("--targets", targets, "Engines: 0, 0,2 or all (default: all)"));
  apply->add_flag("--balanced", balanced, "Run once, wherever an engine is free");
  auto* map = app.add_subcommand("map", "Run a task over sequences, gathered in order");
  map->add_option("TASK", task, "Task name")->required();
  map->add_option("SEQ", args, "Sequences: 1..9  0..100:5  '[1, 2, 3]'  @name")->required();
  target_options.push_back(
      map->add_option("--targets", targets, "Engines for a direct map (default: all)"));
  map->add_flag("--balanced", balanced, "Schedule chunks on free engines");
  map->add_option("--chunksize", chunksize,
                  "Elements per chunk with --balanced (default: automatic)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 40));
  // Scheduling flags (see docs/scheduling.md).
  int retries = 0, priority = 0;
  double queue_timeout = 0, time_limit = 0;
  std::string after, follow;
  bool any = false, on_failure = false, on_finish = false;
  for (auto* cmd : {apply, map}) {
    cmd->add_option("--retries", retries,
                    "--balanced: run a failed task again on another engine, up to N times")
        ->check(CLI::Range(0, 1000));
    cmd->add_option("--timeout", queue_timeout,
                    "--balanced: fail with TaskTimeout after waiting SECONDS in the scheduler")
        ->check(kSeconds);
    cmd->add_option("--after", after, "--balanced: run after these msg_ids (comma-separated)");
    cmd->add_option("--follow", follow,
                    "--balanced: run on the engine where these msg_ids ran (comma-separated)");
    cmd->add_flag("--any", any, "--after/--follow: one of the msg_ids is enough (default: all)");
    cmd->add_flag("--on-failure", on_failure,
                  "--after/--follow: met when they failed (default: when they succeeded)");
    cmd->add_flag("--on-finish", on_finish, "--after/--follow: met when they finished either way");
    cmd->add_option("--priority", priority, "--balanced: higher runs first among ready tasks");
    cmd->add_option("--time-limit", time_limit,
                    "Cancel the task and fail with TaskTimeout after it ran SECONDS")
        ->check(kSeconds);
  }
  auto* abort_cmd = app.add_subcommand("abort", "Remove queued tasks before they run");
  std::vector<std::string> control_ids;
  abort_cmd->add_option("MSG_ID", control_ids, "msg_ids (as printed by --json)")->required();
  auto* cancel_cmd =
      app.add_subcommand("cancel", "Cancel tasks: queued ones do not run, running ones are told");
  cancel_cmd->add_option("MSG_ID", control_ids, "msg_ids (as printed by --json)")->required();

  // Namespaces.
  std::string code, name, assignment;
  auto add_targets = [&](CLI::App* cmd) {
    target_options.push_back(
        cmd->add_option("--targets", targets, "Engines: 0, 0,2 or all (default: all)"));
  };
  auto* execute = app.add_subcommand("execute", "Run statements in each target engine's namespace");
  execute->add_option("CODE", code, "Statements, e.g. \"import sysinfo; a = sysinfo.getpid()\"")
      ->required();
  add_targets(execute);
  auto* pull = app.add_subcommand("pull", "Print the value bound to NAME on each target engine");
  pull->add_option("NAME", name, "A name in the engines' namespaces")->required();
  add_targets(pull);
  auto* set = app.add_subcommand("set", "Bind NAME to a value on each target engine");
  set->add_option("NAME=LITERAL", assignment, "e.g. a=5, xs=1..100, s=\"text\"")->required();
  add_targets(set);
  auto* scatter =
      app.add_subcommand("scatter", "Split a sequence into one block per target engine");
  scatter->add_option("NAME", name, "The name each engine binds its block to")->required();
  scatter->add_option("SEQ", assignment, "A sequence: 1..100, '[1, 2, 3]'")->required();
  add_targets(scatter);
  auto* gather = app.add_subcommand("gather", "Join NAME's blocks from the target engines");
  gather->add_option("NAME", name, "A name bound on every target engine")->required();
  add_targets(gather);
  auto* clear = app.add_subcommand("clear", "Empty the target engines' namespaces");
  add_targets(clear);

  // The hub's task database.
  std::int64_t limit = 0;
  std::vector<std::string> msg_ids, conditions;
  std::string keys;
  double older_than = -1;
  bool purge_all = false;
  auto* history = app.add_subcommand("history", "Msg ids of recorded tasks, oldest first");
  history->add_option("--limit", limit, "Only the last N")->check(CLI::NonNegativeNumber);
  auto* result = app.add_subcommand("result", "The result of a recorded task, from any client");
  result->add_option("MSG_ID", msg_ids, "A msg_id (as printed by --json)")->required();
  auto* resubmit = app.add_subcommand("resubmit", "Run recorded tasks again with their arguments");
  resubmit->add_option("MSG_ID", msg_ids, "msg_ids")->required();
  auto* query = app.add_subcommand("query", "Recorded tasks matching every condition");
  query->add_option("CONDITION", conditions,
                    "FIELD OP VALUE, OP one of == != < <= > >= in glob, e.g. 'task glob arith.*'");
  query->add_option("--keys", keys, "Fields to show, e.g. status,engine (default: all)");
  query->add_option("--limit", limit, "At most N records")->check(CLI::NonNegativeNumber);
  auto* purge = app.add_subcommand("purge", "Remove task records");
  purge->add_option("MSG_ID", msg_ids, "msg_ids to remove");
  purge->add_option("--older-than", older_than, "Remove finished records older than SECONDS")
      ->check(kSeconds);
  purge->add_flag("--all", purge_all, "Remove every finished record");

  // CLI11 reads "[a, b]" as its own list syntax; hide the bracket from it (argument() undoes this).
  std::vector<std::string> words(argv + 1, argv + argc);
  for (auto& w : words) {
    if (!w.empty() && w[0] == '[') w.insert(0, 1, kBracketGuard);
  }
  std::reverse(words.begin(), words.end());  // CLI11 takes a reversed vector
  try {
    app.parse(words);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kUsage;
  }

  try {
    if (*cluster) {
      if (*start) {
        std::vector<std::string> controller_args;
        if (!scheme.empty()) controller_args.insert(controller_args.end(), {"--scheme", scheme});
        if (hwm) controller_args.insert(controller_args.end(), {"--hwm", std::to_string(*hwm)});
        if (no_shm) controller_args.emplace_back("--no-shm");
        if (no_ipc) controller_args.emplace_back("--no-ipc");
        return cluster_start(g.cluster(), n, engine_threads, heartbeat_ms, restart_engines,
                             controller_args);
      }
      if (*stop) return cluster_stop(g.cluster());
      if (*cstatus) return cluster_status(g.cluster());
      if (*cadd) return cluster_add(g.cluster(), n);
      if (*cremove) return cluster_remove(g.cluster(), engine_ids);
      if (*supervise) return cluster_supervise(g.cluster(), n, engine_threads, restart_engines);
    }
    Client rc = g.client();
    // Waits for `r` and prints its value (`quiet`: only with --json), or its error.
    auto finish = [&](const AsyncResult& r, bool quiet) {
      Value v;
      try {
        v = r.get();
      } catch (const Error& e) {
        if (g.json) {
          json out{{"error", e.what()},
                   {"code", std::string(to_string(e.code()))},
                   {"msg_ids", r.msg_ids()}};
          std::cout << json_text(out) << "\n";
        }
        throw;
      }
      if (!quiet || g.json) print(g, v, g.json ? r.msg_ids() : std::vector<std::string>{});
    };
    auto target_view = [&] {
      bool single = false;
      auto t = targets_given() ? parse_targets(targets, rc, &single) : rc.ids();
      if (t.empty()) throw EngineError("no engines are registered");
      return single ? rc[t[0]] : rc[t];
    };
    if (*execute) {
      finish(target_view().execute(code), true);
      return kOk;
    }
    if (*pull) {
      finish(target_view().pull_async(name), false);
      return kOk;
    }
    if (*set) {
      const auto eq = assignment.find('=');
      if (eq == std::string::npos || !detail::is_identifier(assignment.substr(0, eq)))
        throw UsageError(fmt::format(
            "expected NAME=LITERAL with NAME a name like x or n_2, got '{}'", assignment));
      finish(target_view().push_async(
                 {{assignment.substr(0, eq), argument(assignment.substr(eq + 1))}}),
             true);
      return kOk;
    }
    if (*scatter) {
      finish(target_view().scatter_async(name, argument(assignment)), true);
      return kOk;
    }
    if (*gather) {
      finish(target_view().gather_async(name), false);
      return kOk;
    }
    if (*clear) {
      finish(target_view().clear_async(), true);
      return kOk;
    }
    if (*history) {
      print(g, Value(rc.hub_history(limit)));
      return kOk;
    }
    if (*result) {
      if (msg_ids.size() != 1) throw UsageError("result takes one msg_id");
      print(g, rc.get_result(msg_ids[0], Duration(g.timeout_ms)));
      return kOk;
    }
    if (*resubmit) {
      finish(rc.resubmit(msg_ids), false);
      return kOk;
    }
    if (*query) {
      std::vector<DbCondition> where;
      for (const auto& c : conditions)
        where.push_back(DbCondition::parse(c));
      std::vector<std::string> key_list;
      std::stringstream ks(keys);
      for (std::string k; std::getline(ks, k, ',');) {
        if (!k.empty()) key_list.push_back(k);
      }
      const Value rows = rc.db_query(where, key_list, limit);
      if (g.json) {
        print(g, rows);
      } else {
        for (const auto& row : rows.as_list())
          std::cout << row.repr() << "\n";
      }
      return kOk;
    }
    if (*purge) {
      const int forms = (msg_ids.empty() ? 0 : 1) + (older_than >= 0 ? 1 : 0) + (purge_all ? 1 : 0);
      if (forms != 1) throw UsageError("purge takes msg_ids, --older-than SECONDS, or --all");
      std::int64_t purged = 0;
      if (!msg_ids.empty())
        purged = rc.purge_results(msg_ids);
      else if (purge_all)
        purged = rc.purge_all_results();
      else
        purged =
            rc.purge_results_before(std::chrono::system_clock::now() -
                                    std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                        std::chrono::duration<double>(older_than)));
      if (g.json)
        std::cout << json_text(json{{"purged", purged}}) << "\n";
      else
        std::cout << fmt::format("{} record{} removed\n", purged, purged == 1 ? "" : "s");
      return kOk;
    }
    if (*ids)
      print(g, Value(rc.ids()));
    else if (*push)
      print(g, rc.push_plugin(file));
    else if (*plugins)
      print(g, rc.plugins());
    else if (*status)
      print(g, rc.queue_status());
    else if (*abort_cmd || *cancel_cmd) {
      const ControlSummary done = *abort_cmd ? rc.abort(control_ids) : rc.cancel(control_ids);
      if (g.json) {
        std::cout << json_text(json{{"removed", done.removed},
                                    {"signalled", done.signalled},
                                    {"not_pending", done.not_pending}})
                  << "\n";
      } else {
        std::cout << fmt::format(
            "{} removed from the queue, {} passed on to their engines, {} not pending\n",
            done.removed.size(), done.signalled.size(), done.not_pending.size());
      }
    } else if (*apply || *map) {
      Value::List values;
      for (const auto& a : args)
        values.push_back(argument(a));
      TaskFlags flags;
      auto seconds = [](double s) {
        return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
      };
      if (time_limit < 0 || queue_timeout < 0)
        throw UsageError("--time-limit and --timeout take a positive number of seconds");
      if (time_limit > 0) flags.time_limit = std::max(Duration(1), seconds(time_limit));
      const bool lb_flags =
          retries != 0 || priority != 0 || queue_timeout > 0 || !after.empty() || !follow.empty();
      if (lb_flags && !balanced) {
        throw UsageError("--retries, --timeout, --after, --follow and --priority need --balanced");
      }
      AsyncResult r = [&] {
        if (balanced) {
          auto dependency = [&](const std::string& list) {
            Dependency d(split_ids(list));
            if (any) d = d.any();
            if (on_finish)
              d = d.on_finish();
            else if (on_failure)
              d = d.on_failure();
            return d;
          };
          flags.retries = retries;
          flags.priority = priority;
          if (queue_timeout > 0) flags.timeout = std::max(Duration(1), seconds(queue_timeout));
          flags.after = dependency(after);
          flags.follow = dependency(follow);
          if (targets_given()) {
            bool single = false;
            flags.targets = parse_targets(targets, rc, &single);
          }
          auto lb = rc.load_balanced_view().with(flags);
          return *apply ? lb.apply_async(task, values)
                        : lb.map_async(task, values, static_cast<std::uint64_t>(chunksize));
        }
        DirectView view = target_view().with(flags);
        return *apply ? view.apply_async(task, values) : view.map_async(task, values);
      }();
      finish(r, false);
    }
    return kOk;
  } catch (const SyntaxError& e) {
    std::cerr << "ippctl: bad argument: " << e.what() << "\n";
    return kUsage;
  } catch (const UsageError& e) {
    std::cerr << "ippctl: " << e.what() << "\n";
    return kUsage;
  } catch (const ConnectionError& e) {
    std::cerr << "ippctl: " << e.what() << "\n";
    return kConnection;
  } catch (const Error& e) {
    std::cerr << "ippctl: " << e.what() << "\n";
    return e.code() == ErrorCode::argument && std::string_view(e.what()).starts_with("map")
               ? kUsage
               : kRemote;
  } catch (const std::exception& e) {
    std::cerr << "ippctl: " << e.what() << "\n";
    return kRemote;
  }
}

}  // namespace ipp::ctl
