#include "cluster_cli.hpp"

#include <signal.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "cluster_file.hpp"
#include "globals.hpp"
#include "hub_link.hpp"
#include "ipp/client.hpp"
#include "ipp/ctl/process.hpp"
#include "ipp/net/address.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/limits.hpp"
#include "output.hpp"
#include "supervisor.hpp"

namespace ipp::ctl {

namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

Client client_of(const ClusterCli& c) {
  return Client(ClientOptions{
      .profile_dir = c.profile, .connection_file = c.file, .timeout = Duration(c.timeout_ms)});
}

/// The commands that start processes work on a profile on this host, not on a controller a
/// connection file names.
void refuse_file(const ClusterCli& c, const char* command) {
  if (c.file) {
    throw UsageError(fmt::format(
        "cluster {} starts processes for a profile on this host (--profile-dir); --file names "
        "a controller started elsewhere",
        command));
  }
}

/// One line per registered engine: its id, pid and host, and whether it is still loading.
void print_engines(const Value& engines) {
  for (const auto& e : engines.as_list()) {
    std::cout << fmt::format("engine {}: pid {}{}{}\n", e["id"].as_int(), e["pid"].as_int(),
                             e.kind() == Value::Kind::map && e.as_map().count("host") != 0
                                 ? " on " + e["host"].as_string()
                                 : std::string(),
                             e["ready"] == Value(true) ? "" : " (loading plugins)");
  }
}

/// `cluster status` of a controller ippctl did not start here (by hand, or on another host):
/// what it says of itself and its engines. Exit codes as ippctl's.
int remote_status(const ClusterCli& c) {
  Value engines;
  std::string at;
  try {
    ClusterCli quick = c;  // a controller that answers does so in milliseconds
    quick.timeout_ms = std::min(c.timeout_ms, 3000);
    Client rc = client_of(quick);
    engines = rc.engines();
    at = net::read_connection_file(c.file ? *c.file : c.profile / net::kClientFile)
             .endpoint("registration");
  } catch (const ConnectionError&) {
    std::cout << (c.json ? "{\"running\": false}" : "no cluster running") << "\n";
    return kConnection;
  }
  if (c.json) {
    print_json(json{{"running", true}, {"controller", at}, {"engines", to_json(engines)}});
    return kOk;
  }
  std::cout << fmt::format("controller at {} (not started by ippctl here); {} engine(s)\n", at,
                           engines.size());
  print_engines(engines);
  return kOk;
}

/// The supervised entries of cluster.json for processes `pids` (all when empty).
std::vector<json> supervised(const std::filesystem::path& profile,
                             const std::set<pid_t>& pids = {}) {
  std::vector<json> out;
  auto c = read_cluster(profile);
  if (!c || !c->doc.contains("supervised")) return out;
  for (const auto& e : c->doc["supervised"]) {
    if (pids.empty() || pids.contains(e.value("pid", -1))) out.push_back(e);
  }
  return out;
}

/// The supervisor's log with its last lines, for errors.
std::string supervisor_log(const std::filesystem::path& profile) {
  return tail(profile / "logs" / "supervisor.log");
}

/// The engine settings cluster.json holds.
EngineSettings engine_settings(const ClusterFile& cluster) {
  EngineSettings s;
  s.threads = cluster.doc.value("engine_threads", 0);
  s.restart = cluster.doc.value("restart_engines", true);
  s.time_limit_grace_ms = cluster.doc.value("time_limit_grace_ms", -1);
  if (cluster.doc.contains("ssh")) s.ssh = cluster.doc["ssh"].get<std::vector<std::string>>();
  s.remote_engine = cluster.doc.value("remote_engine", (exe_dir() / "ippengine").string());
  return s;
}

/// `a:4,[fd00::1]:2`, as parse_hosts() reads it.
std::string format_hosts(const std::vector<RemoteHost>& hosts) {
  std::string out;
  for (const auto& h : hosts) {
    const bool v6 = h.destination.find(':') != std::string::npos;
    out += fmt::format("{}{}{}{}:{}", out.empty() ? "" : ",", v6 ? "[" : "", h.destination,
                       v6 ? "]" : "", h.engines);
  }
  return out;
}

pid_t start_supervisor(const ClusterCli& c, int n, const std::vector<RemoteHost>& hosts,
                       const EngineSettings& engines) {
  std::vector<std::string> argv{(exe_dir() / "ippctl").string(),
                                "--profile-dir",
                                c.profile.string(),
                                "cluster",
                                "supervise",
                                "-n",
                                std::to_string(n),
                                "--engine-threads",
                                std::to_string(engines.threads)};
  if (!engines.restart) argv.emplace_back("--no-restart-engines");
  if (engines.time_limit_grace_ms >= 0) {
    argv.emplace_back("--time-limit-grace-ms");
    argv.push_back(std::to_string(engines.time_limit_grace_ms));
  }
  argv.insert(argv.end(), {"--ssh", fmt::format("{}", fmt::join(engines.ssh, " ")),
                           "--remote-engine", engines.remote_engine});
  if (!hosts.empty()) argv.insert(argv.end(), {"--hosts", format_hosts(hosts)});
  return spawn(argv, {.log = c.profile / "logs" / "supervisor.log", .new_session = true});
}

/// Engine processes just started, and the supervisor that looks after them.
struct Started {
  std::vector<pid_t> pids;
  pid_t supervisor = -1;
};

/// Asks the running supervisor for `n` more engines here and those `hosts` ask for, or starts a
/// supervisor for them; returns their (local) pids once the supervisor has started them.
Started more_engines(const ClusterCli& c, const ClusterFile& cluster, int n,
                     const std::vector<RemoteHost>& hosts, Steady::time_point deadline) {
  const std::string endpoint = cluster.doc.value("supervisor_endpoint", "");
  std::vector<pid_t> pids;
  if (alive(cluster.supervisor) && !endpoint.empty()) {
    const auto key = net::read_connection_file(c.profile / net::kClientFile).key;
    HubLink link(endpoint, key);
    const auto add = [&](int count, const std::string& host) {
      Value::Map info{{"n", count}};
      if (!host.empty()) info["host"] = host;
      auto r = link.query("add", Value(std::move(info)), std::chrono::milliseconds(c.timeout_ms));
      if (!r) throw ConnectionError("the supervisor did not answer" + supervisor_log(c.profile));
      if (r->error) throw Error(r->error->code, r->error->message);
      for (const auto& p : r->info["pids"].as_list())
        pids.push_back(static_cast<pid_t>(p.as_int()));
    };
    if (n > 0) add(n, "");
    for (const auto& h : hosts)
      add(h.engines, h.destination);
    return {pids, cluster.supervisor};
  }
  const pid_t sup = start_supervisor(c, n, hosts, engine_settings(cluster));
  for (const auto& h : hosts)
    n += h.engines;
  while (true) {
    auto now = read_cluster(c.profile);
    if (now && now->supervisor == sup) {
      for (const auto& e : now->doc["supervised"]) {
        if (e.value("supervisor", -1) == sup) pids.push_back(e.value("pid", -1));
      }
      if (static_cast<int>(pids.size()) >= n) return {pids, sup};
      pids.clear();
    }
    if (!alive(sup))
      throw ConnectionError("the supervisor exited at start:" + supervisor_log(c.profile));
    if (Steady::now() > deadline) throw ConnectionError("the supervisor did not start in time");
    std::this_thread::sleep_for(5ms);
  }
}

/// Waits until the engine processes `pids` are registered and ready, following a supervised
/// engine to its new process when it was restarted; returns the ids, in the order of `pids`.
/// Throws ConnectionError naming an engine that exited for good, or at the deadline.
std::vector<std::int64_t> wait_registered(const ClusterCli& c, Client& rc,
                                          const std::vector<pid_t>& pids,
                                          Steady::time_point deadline) {
  // Supervised engines are known by (supervisor, slot): their pid changes when restarted, and
  // the hub knows an engine on another host by its pid there.
  std::map<pid_t, std::pair<pid_t, int>> slot_of;
  for (const auto& e : supervised(c.profile, {pids.begin(), pids.end()}))
    slot_of[e.value("pid", -1)] = {e.value("supervisor", -1), e.value("slot", -1)};
  const std::string here = net::host_name();
  while (true) {
    std::map<std::pair<std::string, pid_t>, std::int64_t> ready;
    const Value engines = rc.engines();
    for (const auto& e : engines.kind() == Value::Kind::list ? engines.as_list() : Value::List{}) {
      if (e.kind() != Value::Kind::map || e["ready"] != Value(true)) continue;
      const std::string host = string_field(e, "host", here);
      ready[{host, static_cast<pid_t>(e["pid"].as_int())}] = e["id"].as_int();
    }
    const auto entries = supervised(c.profile);
    std::vector<std::int64_t> ids;
    for (const pid_t pid : pids) {
      std::pair<std::string, pid_t> current{here, pid};
      if (auto s = slot_of.find(pid); s != slot_of.end()) {
        for (const auto& e : entries) {
          if (e.value("supervisor", -1) != s->second.first ||
              e.value("slot", -1) != s->second.second)
            continue;
          if (e.value("done", false)) {
            const std::filesystem::path log = e.value("log", std::string());
            const std::string host = e.value("host", std::string());
            if (!host.empty())  // its state says where and how
              throw ConnectionError(fmt::format("an engine over ssh (pid {}) {}:{}", pid,
                                                e.value("state", "exited"), tail(log)));
            throw ConnectionError(fmt::format("engine process {} {} before registering:{}", pid,
                                              e.value("last_exit", "exited"), tail(log)));
          }
          current = {e.value("engine_host", here), e.value("engine_pid", e.value("pid", -1))};
        }
      }
      if (auto r = ready.find(current); r != ready.end()) ids.push_back(r->second);
    }
    if (ids.size() == pids.size()) return ids;
    if (Steady::now() > deadline)
      throw ConnectionError(
          fmt::format("only {} of {} engines registered in time", ids.size(), pids.size()));
    std::this_thread::sleep_for(5ms);
  }
}

}  // namespace

int cluster_start(const ClusterCli& c, int n, const std::vector<RemoteHost>& hosts,
                  const EngineSettings& engines, int heartbeat_ms,
                  const std::vector<std::string>& controller_args) {
  refuse_file(c, "start");
  const auto& profile = c.profile;
  std::filesystem::create_directories(profile / "logs");
  const auto existing = read_cluster(profile);
  if (existing && alive(existing->controller)) {
    std::cerr << fmt::format(
        "ippctl: a controller (pid {}) is already running for profile {}; "
        "use 'ippctl cluster stop' first\n",
        existing->controller, profile.string());
    return kUsage;
  }
  // A profile whose controller died while engines live on: restore it, and the engines come
  // back under their ids with their plugins; only the missing engines are started. A
  // supervisor that outlived the controller goes on supervising its engines.
  std::vector<pid_t> survivors;
  if (existing) {
    for (pid_t e : existing->engines) {
      if (alive(e)) survivors.push_back(e);
    }
    // An engine its living supervisor is about to start again (it crashed a moment ago)
    // counts too, by its last pid: wait_registered() follows it to its new process.
    if (alive(existing->supervisor)) {
      for (const auto& e : supervised(profile)) {
        if (e.value("supervisor", -1) == existing->supervisor && !e.value("alive", true) &&
            !e.value("done", true))
          survivors.push_back(e.value("pid", -1));
      }
    }
  }
  const bool restore = !survivors.empty() && std::filesystem::exists(profile / net::kClientFile) &&
                       std::filesystem::exists(profile / net::kEngineFile);
  const pid_t old_supervisor = restore && alive(existing->supervisor) ? existing->supervisor : -1;
  if (!restore) {
    std::error_code ec;
    std::filesystem::remove(profile / net::kClientFile, ec);
    std::filesystem::remove(profile / net::kEngineFile, ec);
    std::filesystem::remove(profile / "cluster.json", ec);
  }
  const auto bin = exe_dir();
  std::vector<std::string> controller_argv{(bin / "ippcontroller").string(), "--profile-dir",
                                           profile.string(), "--heartbeat-ms",
                                           std::to_string(heartbeat_ms)};
  if (restore) controller_argv.emplace_back("--restore");
  controller_argv.insert(controller_argv.end(), controller_args.begin(), controller_args.end());
  const pid_t controller =
      spawn(controller_argv, {.log = profile / "logs" / "controller.log", .new_session = true});
  const auto written = update_cluster(profile, [&](json& j) {
    j["controller"] = controller;
    j["heartbeat_ms"] = heartbeat_ms;
    j["engine_threads"] = engines.threads;
    j["restart_engines"] = engines.restart;
    j["time_limit_grace_ms"] = engines.time_limit_grace_ms;
    j["ssh"] = engines.ssh;
    j["remote_engine"] =
        engines.remote_engine.empty() ? (bin / "ippengine").string() : engines.remote_engine;
    if (!restore) {
      j["supervisor"] = -1;
      j["engines"] = json::array();
    }
  });
  const auto deadline = Steady::now() + std::chrono::milliseconds(c.timeout_ms) * 3;
  // The client file is written last: once it exists, both are complete.
  while (!std::filesystem::exists(profile / net::kClientFile)) {
    if (!alive(controller)) {
      std::cerr << "ippctl: the controller exited at start:"
                << tail(profile / "logs" / "controller.log") << "\n";
      return kConnection;
    }
    if (Steady::now() > deadline) {
      std::cerr << "ippctl: the controller did not start in time\n";
      return kConnection;
    }
    std::this_thread::sleep_for(2ms);
  }
  // Survivors count against the engines asked for on their host: here, or a host over ssh.
  std::map<pid_t, std::string> survivor_host;
  for (const auto& e : supervised(profile))
    survivor_host[e.value("pid", -1)] = e.value("host", std::string());
  std::map<std::string, int> kept_on;
  for (const pid_t p : survivors)
    ++kept_on[survivor_host[p]];
  const int kept = static_cast<int>(survivors.size());
  const int missing = std::max(0, n - kept_on[""]);
  std::vector<RemoteHost> missing_on;
  for (const auto& h : hosts) {
    const int m = std::max(0, h.engines - kept_on[h.destination]);
    kept_on[h.destination] = std::max(0, kept_on[h.destination] - h.engines);
    if (m > 0) missing_on.push_back({h.destination, m});
  }
  int missing_remote = 0;
  for (const auto& h : missing_on)
    missing_remote += h.engines;
  std::vector<pid_t> started;
  pid_t supervisor = old_supervisor;
  try {
    if (missing > 0 || !missing_on.empty()) {
      Started more = more_engines(c, *written, missing, missing_on, deadline);
      started = std::move(more.pids);
      supervisor = more.supervisor;
    }
    Client rc = client_of(c);
    std::vector<pid_t> all = survivors;
    all.insert(all.end(), started.begin(), started.end());
    wait_registered(c, rc, all, deadline);
  } catch (const ConnectionError& e) {
    std::cerr << "ippctl: " << e.what() << "\n";
    return kConnection;
  }
  const int engine_count = kept + missing + missing_remote;
  if (c.json)
    print_json(json{{"profile", profile.string()},
                    {"controller", controller},
                    {"supervisor", supervisor},
                    {"engines", engine_count},
                    {"restored", restore},
                    {"engines_kept", kept}});
  else if (restore)
    std::cout << fmt::format(
        "cluster restored: controller pid {}; {} engine(s) came back, {} started (profile {})\n",
        controller, kept, missing + missing_remote, profile.string());
  else if (hosts.empty())
    std::cout << fmt::format(
        "cluster started: controller pid {} and {} engines, supervisor pid {} (profile {})\n",
        controller, n, supervisor, profile.string());
  else
    std::cout << fmt::format(
        "cluster started: controller pid {} and {} engines ({} here, {} over ssh on {}), "
        "supervisor pid {} (profile {})\n",
        controller, engine_count, n, missing_remote, format_hosts(hosts), supervisor,
        profile.string());
  return kOk;
}

int cluster_stop(const ClusterCli& c) {
  if (c.file) {  // a controller started elsewhere: told to shut down, its engines with it
    client_of(c).shutdown();
    if (!c.json) std::cout << "controller told to shut down\n";
    return kOk;
  }
  const auto& profile = c.profile;
  auto cluster = read_cluster(profile);
  try {
    ClusterCli quick = c;
    quick.timeout_ms = 2000;
    client_of(quick).shutdown();
  } catch (const Error&) {
    // No controller answering: the processes below are stopped by signal.
  }
  if (cluster) {
    // The supervisor stops its engines and restarts none; the controller told them to stop.
    if (alive(cluster->supervisor)) ::kill(cluster->supervisor, SIGTERM);
    std::vector<pid_t> pids = cluster->engines;
    for (const auto& e : supervised(profile)) {
      if (e.value("pid", -1) > 0) pids.push_back(e.value("pid", -1));
    }
    pids.push_back(cluster->controller);
    pids.push_back(cluster->supervisor);
    const auto deadline = Steady::now() + 8s;
    for (pid_t p : pids) {
      while (alive(p) && Steady::now() < deadline)
        std::this_thread::sleep_for(5ms);
      if (alive(p)) ::kill(p, SIGKILL);
    }
  }
  std::error_code ec;
  std::filesystem::remove(profile / "cluster.json", ec);
  std::filesystem::remove(profile / "cluster.lock", ec);
  std::filesystem::remove(profile / net::kClientFile, ec);
  std::filesystem::remove(profile / net::kEngineFile, ec);
  if (!c.json) std::cout << "cluster stopped\n";
  return kOk;
}

int cluster_status(const ClusterCli& c) {
  auto cluster = read_cluster(c.profile);
  // A controller ippctl started here that died: said at once. One it did not start (by hand,
  // or elsewhere): asked.
  if (c.file || (!cluster && std::filesystem::exists(c.profile / net::kClientFile)))
    return remote_status(c);
  if (!cluster || !alive(cluster->controller)) {
    std::cout << (c.json ? "{\"running\": false}" : "no cluster running") << "\n";
    return kConnection;
  }
  Client rc = client_of(c);
  const Value engines = rc.engines();
  // The task database's trouble, when it has any (queue_status says so).
  const Value queue = rc.queue_status();
  const Value task_db = queue.kind() == Value::Kind::map && queue.as_map().count("task_db") != 0
                            ? queue["task_db"]
                            : Value();
  // Supervised engines that are not running, and what became of them.
  std::vector<json> gone;
  for (auto& e : supervised(c.profile)) {
    if (!e.value("alive", false)) gone.push_back(e);
  }
  const pid_t sup = alive(cluster->supervisor) ? cluster->supervisor : -1;
  if (c.json) {
    json j{{"running", true},
           {"controller", cluster->controller},
           {"supervisor", sup},
           {"engines", to_json(engines)},
           {"supervised", cluster->doc.value("supervised", json::array())},
           {"task_db", task_db.is_null() ? json{{"ok", true}} : to_json(task_db)}};
    print_json(j);
    return kOk;
  }
  std::cout << fmt::format("controller pid {}; {} engine(s)\n", cluster->controller,
                           engines.size());
  print_engines(engines);
  std::cout << (sup > 0 ? fmt::format("supervisor pid {}\n", sup)
                        : std::string("no supervisor running\n"));
  if (!task_db.is_null()) {
    std::cout << (task_db["ok"].as_bool()
                      ? fmt::format("task database: {} write(s) were lost\n",
                                    task_db["writes_lost"].as_int())
                      : fmt::format(
                            "task database refuses writes for {:.1f} s: {}; {} write(s) "
                            "waiting, {} lost\n",
                            task_db["failing_for_s"].as_float(), task_db["error"].as_string(),
                            task_db["writes_waiting"].as_int(), task_db["writes_lost"].as_int()));
  }
  for (const auto& e : gone) {
    const std::int64_t id = e.value("engine", -1);
    std::cout << (id >= 0 ? fmt::format("engine {}", id)
                          : fmt::format("engine slot {}", e.value("slot", 0)))
              << ": " << e.value("state", "") << "\n";
  }
  return kOk;
}

int cluster_add(const ClusterCli& c, int n, const std::vector<RemoteHost>& hosts) {
  refuse_file(c, "add");
  auto cluster = read_cluster(c.profile);
  if (!cluster || !alive(cluster->controller)) {
    std::cerr << "ippctl: no cluster running for profile " << c.profile.string()
              << "; start one with 'ippctl cluster start'\n";
    return kConnection;
  }
  const auto deadline = Steady::now() + std::chrono::milliseconds(c.timeout_ms) * 3;
  Client rc = client_of(c);
  const auto pids = more_engines(c, *cluster, n, hosts, deadline).pids;
  const auto ids = wait_registered(c, rc, pids, deadline);
  // Each engine as the hub knows it: its pid on its host.
  std::map<std::int64_t, std::pair<std::int64_t, std::string>> where;
  const Value engines = rc.engines();
  for (const auto& e : engines.as_list()) {
    where[e["id"].as_int()] = {e["pid"].as_int(), string_field(e, "host", net::host_name())};
  }
  json added = json::array();
  std::string text;
  for (const std::int64_t id : ids) {
    const auto& [pid, host] = where[id];
    added.push_back({{"id", id}, {"pid", pid}, {"host", host}});
    text += fmt::format("{}{} (pid {} on {})", text.empty() ? "" : ", ", id, pid, host);
  }
  if (c.json)
    print_json(json{{"added", added}, {"engines", engines.size()}});
  else
    std::cout << fmt::format("added engine{} {}; {} engines registered\n",
                             ids.size() == 1 ? "" : "s", text, engines.size());
  return kOk;
}

int cluster_remove(const ClusterCli& c, const std::vector<std::int64_t>& ids) {
  refuse_file(c, "remove");
  HubLink hub(c.profile);
  std::vector<Value> list(ids.begin(), ids.end());
  auto r = hub.query("remove_engines", Value::map({{"ids", Value(Value::List(list))}}),
                     std::chrono::milliseconds(c.timeout_ms), /*patient=*/true);
  if (!r) {
    throw ConnectionError(
        fmt::format("no answer from the controller of profile {}: is a controller running?",
                    c.profile.string()));
  }
  if (r->error) {
    if (r->error->code == ErrorCode::usage) throw UsageError(r->error->message);
    throw Error(r->error->code, r->error->message);
  }
  // Gone from the hub; wait for the processes to exit and say how they did.
  json removed = json::array();
  std::string text;
  const auto deadline = Steady::now() + 10s;
  const std::string here = net::host_name();
  for (const auto& e : r->info["removed"].as_list()) {
    const pid_t pid = static_cast<pid_t>(e["pid"].as_int());
    const std::int64_t id = e["id"].as_int();
    // A process on this host is watched here; one elsewhere through its supervisor's word.
    const bool local = string_field(e, "host", here) == here;
    std::string exit = "exited";
    bool supervised_here = false;
    while (Steady::now() < deadline) {
      std::optional<json> entry;
      for (const auto& s : supervised(c.profile)) {
        if (s.value("engine", std::int64_t{-1}) == id &&
            s.value("engine_pid", s.value("pid", -1)) == pid)
          entry = s;
      }
      supervised_here = entry.has_value();
      if (entry && !entry->value("alive", true)) {
        exit = entry->value("last_exit", exit);
        break;
      }
      if (!entry && (!local || !alive(pid))) break;
      std::this_thread::sleep_for(5ms);
    }
    if ((local && alive(pid)) || (supervised_here && Steady::now() >= deadline))
      exit = "still running";
    removed.push_back({{"id", e["id"].as_int()},
                       {"pid", pid},
                       {"reason", e["reason"].as_string()},
                       {"exit", exit}});
    text += fmt::format(
        "engine {} (pid {}) {}: its process {}\n", e["id"].as_int(), pid,
        e["reason"].as_string() == "was removed" ? "drained and removed" : e["reason"].as_string(),
        exit);
  }
  if (c.json)
    print_json(json{{"removed", removed}});
  else
    std::cout << text;
  return kOk;
}

int cluster_supervise(const ClusterCli& c, int n, const std::vector<RemoteHost>& hosts,
                      const EngineSettings& engines) {
  spdlog::set_default_logger(spdlog::stderr_logger_mt("ippctl-supervise"));
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [supervisor] [%l] %v");
  net::raise_open_files_limit();  // its engines inherit it
  try {
    return supervise(SupervisorOptions{.profile = c.profile,
                                       .bin_dir = exe_dir(),
                                       .engines = n,
                                       .hosts = hosts,
                                       .ssh = engines.ssh,
                                       .remote_engine = engines.remote_engine,
                                       .threads = engines.threads,
                                       .restart = engines.restart,
                                       .time_limit_grace_ms = engines.time_limit_grace_ms});
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}

}  // namespace ipp::ctl
