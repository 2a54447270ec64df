#include "supervisor.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <deque>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "cluster_file.hpp"
#include "hub_link.hpp"
#include "ipp/ctl/process.hpp"
#include "ipp/ctl/remote.hpp"
#include "ipp/error.hpp"
#include "ipp/net/address.hpp"
#include "ipp/net/engine_exit.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/message.hpp"

namespace ipp::ctl {

namespace {

using Steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) {
  g_stop = 1;
}

/// Exit code of an engine that lost its controller (or was refused by it): not a crash.
constexpr int kLostController = net::kEngineLostController;

std::string seconds(std::chrono::milliseconds d) {
  return fmt::format("{:g} s", static_cast<double>(d.count()) / 1000.0);
}

/// One engine the supervisor looks after, across its restarts.
struct Slot {
  int index = 0;              // its log is logs/engine-slot-<index>.log until it has an id
  std::filesystem::path log;  // logs/engine-<id>-<host>.log once the hub gave it an id
  pid_t pid = -1;             // the running process, or -1
  pid_t last_pid = -1;        // the latest process, running or not
  std::int64_t engine = -1;   // the id the hub gave it (kept across restarts)
  Steady::time_point started;
  std::deque<Steady::time_point> crashes;  // within the crash window
  std::chrono::milliseconds backoff{0};    // the next restart's wait
  std::vector<std::int64_t> backoffs_ms;   // every restart's wait, in order
  std::optional<Steady::time_point> restart_at;
  int restarts = 0;
  bool done = false;  // exited for good: not restarted
  std::string state = "starting";
  std::string last_exit;
  // An engine on another host runs under a local ssh (the process `pid`).
  std::string destination;    // what ssh is given; empty: an engine on this host
  int input = -1;             // ssh's standard input: closing it stops the remote engine
  int output = -1;            // ssh's standard output: the remote script's start line
  std::string pending;        // output not yet a whole line
  bool ever_started = false;  // a start line came once: the host can be reached
  pid_t engine_pid = -1;      // the engine's pid on its host, as the hub knows it
  std::string engine_host;    // the engine's host name, as the hub knows it
  [[nodiscard]] bool remote() const { return !destination.empty(); }
  [[nodiscard]] std::string where() const {
    return remote() ? " on " + destination : std::string();
  }
};

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class Supervisor {
 public:
  explicit Supervisor(const SupervisorOptions& o)
      : options_(o),
        info_(net::read_connection_file(o.profile / net::kClientFile)),
        signer_(info_.key),
        hub_(info_.endpoint("registration"), info_.key, info_.curve) {
    control_.set(zmq::sockopt::linger, 0);
    control_.bind("tcp://127.0.0.1:*");
    endpoint_ = control_.get(zmq::sockopt::last_endpoint);
  }

  int run() {
    std::signal(SIGTERM, on_stop_signal);
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGHUP, SIG_IGN);
    std::signal(SIGPIPE, SIG_IGN);  // a remote engine's ssh may be gone when it is written to
    const int first_index = next_index();
    for (int i = 0; i < options_.engines; ++i)
      add_slot(first_index + i);
    for (const auto& h : options_.hosts) {
      for (int i = 0; i < h.engines; ++i)
        add_slot(next_index(), h.destination);
    }
    save();
    spdlog::info("supervising {} engine(s); control socket {}", slots_.size(), endpoint_);
    zmq::pollitem_t item{control_.handle(), 0, ZMQ_POLLIN, 0};
    auto last_ids_query = Steady::now() - 1s;
    while (g_stop == 0) {
      try {
        zmq::poll(&item, 1, std::chrono::milliseconds(20));
        if (item.revents & ZMQ_POLLIN) serve_control();
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) throw;
      }
      read_outputs();
      reap();
      const auto now = Steady::now();
      for (auto& s : slots_) {
        if (s.restart_at && now >= *s.restart_at && g_stop == 0) {
          s.restart_at.reset();
          ++s.restarts;
          start(s);
          changed_ = true;
        }
      }
      // Learn the ids the hub gave our engines, so a restart asks for the same id.
      if (now - last_ids_query > 100ms &&
          std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) {
            return s.pid > 0 && (s.engine < 0 || s.state == "starting");
          })) {
        last_ids_query = now;
        learn_ids();
      }
      if (changed_) save();
      if (std::none_of(slots_.begin(), slots_.end(), [](const Slot& s) { return !s.done; })) {
        spdlog::info("no engine left to supervise; exiting");
        return 0;
      }
    }
    stop_all();
    save();
    return 0;
  }

 private:
  int next_index() const {
    int index = 0;
    if (auto c = read_cluster(options_.profile); c && c->doc.contains("supervised")) {
      for (const auto& e : c->doc["supervised"])
        index = std::max(index, e.value("slot", -1) + 1);
    }
    for (const auto& s : slots_)
      index = std::max(index, s.index + 1);
    return index;
  }

  Slot& add_slot(int index, const std::string& destination = {}) {
    Slot s;
    s.index = index;
    s.destination = destination;
    s.backoff = options_.first_backoff;
    slots_.push_back(std::move(s));
    start(slots_.back());
    return slots_.back();
  }

  void start(Slot& s) {
    std::vector<std::string> argv;
    if (s.remote())  // the remote script adds --file
      argv.push_back(options_.remote_engine);
    else
      argv = {(options_.bin_dir / "ippengine").string(), "--profile-dir",
              options_.profile.string()};
    if (options_.threads > 0) {
      argv.push_back("--threads");
      argv.push_back(std::to_string(options_.threads));
    }
    if (options_.time_limit_grace_ms >= 0) {
      argv.push_back("--time-limit-grace-ms");
      argv.push_back(std::to_string(options_.time_limit_grace_ms));
    }
    if (s.engine >= 0) {
      argv.push_back("--engine-id");
      argv.push_back(std::to_string(s.engine));
    }
    if (s.log.empty())
      s.log = options_.profile / "logs" / fmt::format("engine-slot-{}.log", s.index);
    // Engines must not inherit the supervisor's handlers' dispositions (SIGHUP ignored).
    pid_t pid = -1;
    try {
      pid =
          s.remote() ? start_remote(s, argv) : spawn(argv, {.log = s.log, .default_sighup = true});
    } catch (const std::system_error& e) {
      s.done = true;
      s.pid = -1;
      s.state = fmt::format("could not be started{}: {}", s.where(), e.code().message());
      spdlog::error("engine slot {}: {}", s.index, s.state);
      changed_ = true;
      return;
    }
    s.pid = s.last_pid = pid;
    s.engine_pid = s.remote() ? -1 : pid;
    s.engine_host = s.remote() ? std::string() : net::host_name();
    s.started = Steady::now();
    s.state = "starting";
    owned_.insert(pid);
    changed_ = true;
    spdlog::info("engine slot {} started{}: pid {}{}", s.index, s.where(), pid,
                 s.engine >= 0 ? fmt::format(" (engine {})", s.engine) : "");
  }

  /// Starts `engine_argv` on the slot's host under a local ssh, and gives it the engine
  /// connection file on its standard input; returns ssh's pid.
  pid_t start_remote(Slot& s, const std::vector<std::string>& engine_argv) {
    const std::string file = read_file(options_.profile / net::kEngineFile);
    if (file.empty())
      throw std::system_error(ENOENT, std::generic_category(), "no engine connection file");
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category());
    if (::pipe2(out, O_CLOEXEC) != 0) {
      const int err = errno;
      ::close(in[0]);
      ::close(in[1]);
      throw std::system_error(err, std::generic_category());
    }
    pid_t pid = -1;
    try {
      pid = spawn(remote_engine_command(options_.ssh, s.destination, file.size(), engine_argv),
                  {.log = s.log, .default_sighup = true, .stdin_fd = in[0], .stdout_fd = out[1]});
    } catch (...) {
      for (const int fd : {in[0], in[1], out[0], out[1]})
        ::close(fd);
      throw;
    }
    ::close(in[0]);
    ::close(out[1]);
    // A pipe holds 64 KiB: the file (a few hundred bytes) is written at once, whatever ssh
    // does. Should ssh be gone already, the write fails (SIGPIPE is ignored) and its exit
    // says why.
    if (::write(in[1], file.data(), file.size()) != static_cast<ssize_t>(file.size()))
      spdlog::warn("engine slot {}: could not hand ssh the engine connection file", s.index);
    ::fcntl(out[0], F_SETFL, ::fcntl(out[0], F_GETFL) | O_NONBLOCK);
    s.input = in[1];
    s.output = out[0];
    s.pending.clear();
    return pid;
  }

  /// Reads what remote engines' scripts printed: the engine's pid and host name.
  void read_outputs() {
    for (auto& s : slots_) {
      if (s.output < 0) continue;
      char buf[512];
      ssize_t n;
      while ((n = ::read(s.output, buf, sizeof buf)) > 0)
        s.pending.append(buf, static_cast<std::size_t>(n));
      if (n == 0) close_fd(s.output);
      for (auto nl = s.pending.find('\n'); nl != std::string::npos; nl = s.pending.find('\n')) {
        const std::string line = s.pending.substr(0, nl);
        s.pending.erase(0, nl + 1);
        if (auto started = parse_remote_start(line)) {
          s.engine_pid = started->pid;
          s.engine_host = started->host;
          s.ever_started = true;
          changed_ = true;
          spdlog::info("engine slot {}: pid {} on {} ({})", s.index, s.engine_pid, s.engine_host,
                       s.destination);
        } else if (!line.empty()) {
          spdlog::info("engine slot {}{}: {}", s.index, s.where(), line);
        }
      }
    }
  }

  void reap() {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      auto s =
          std::find_if(slots_.begin(), slots_.end(), [&](const Slot& x) { return x.pid == pid; });
      if (s != slots_.end()) exited(*s, pid, status);
    }
  }

  void exited(Slot& s, pid_t pid, int status) {
    if (s.remote()) {
      read_outputs();  // its start line may have come just before its end
      close_fd(s.input);
      close_fd(s.output);
      if (!WIFEXITED(status) || WEXITSTATUS(status) == 255) return lost_ssh(s, status);
      if (WEXITSTATUS(status) == 126 || WEXITSTATUS(status) == 127) {
        s.pid = -1;
        s.done = true;
        s.last_exit = exit_reason(status);
        s.state = fmt::format("could not run {} on {} (exit code {}); not restarted",
                              options_.remote_engine, s.destination, WEXITSTATUS(status));
        spdlog::error("engine slot {}: {}", s.index, s.state);
        changed_ = true;
        return;
      }
      status = *remote_wait_status(WEXITSTATUS(status));  // the engine's own end, there
    }
    const auto now = Steady::now();
    const std::string reason = exit_reason(status) + s.where();
    s.pid = -1;
    s.last_exit = reason;
    changed_ = true;
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const bool lost = WIFEXITED(status) && WEXITSTATUS(status) == kLostController;
    const std::string who =
        s.engine >= 0 ? fmt::format("engine {}", s.engine) : fmt::format("engine slot {}", s.index);
    if (clean || g_stop != 0) {
      s.done = true;
      // Told to stop by the controller (shutdown, or removed), or stopped by us: not a crash.
      s.state = fmt::format("{}; not restarted", reason);
      spdlog::info("{} {}", who, reason);
      return;
    }
    std::optional<std::string> note;
    bool restart = false;
    if (lost && options_.restart && controller_answers()) {
      // Cut off from a controller that lives (a link was down, heartbeats were lost): it is
      // wanted again, with the usual back-off but not counted as a crash.
      restart = true;
      s.restart_at = now + s.backoff;
      s.backoffs_ms.push_back(s.backoff.count());
      s.state = fmt::format("lost its controller ({}), which answers again; restarting in {}",
                            reason, seconds(s.backoff));
      s.backoff = std::min(s.backoff * 2, options_.max_backoff);
    } else if (lost) {
      s.done = true;
      s.state = fmt::format("lost its controller ({}); not restarted", reason);
    } else {
      s.crashes.push_back(now);
      while (!s.crashes.empty() && now - s.crashes.front() > options_.crash_window)
        s.crashes.pop_front();
      const std::string clause = reason.starts_with("was ") ? reason.substr(4) : reason;
      if (!options_.restart) {
        s.done = true;
        s.state = fmt::format("{}; not restarted (--no-restart-engines)", reason);
      } else if (static_cast<int>(s.crashes.size()) >= options_.crash_limit) {
        s.done = true;
        s.state = fmt::format("crashed {} times in {} s (last: {}); not restarted",
                              s.crashes.size(), options_.crash_window.count(), clause);
        note = s.state;
      } else {
        if (now - s.started >= options_.stable_after) s.backoff = options_.first_backoff;
        restart = true;
        s.restart_at = now + s.backoff;
        s.backoffs_ms.push_back(s.backoff.count());
        s.state = fmt::format("restarting in {} (it {})", seconds(s.backoff), reason);
        s.backoff = std::min(s.backoff * 2, options_.max_backoff);
      }
    }
    if (note)
      spdlog::error("{}: {}", who, *note);
    else
      spdlog::warn("{} (pid {}) {}", who, s.remote() ? s.engine_pid : pid, reason);
    // Tell the hub at once; wait for its answer so the restarted engine finds its id free.
    Value::Map info{{"pid", static_cast<std::int64_t>(s.remote() ? s.engine_pid : pid)},
                    {"reason", reason},
                    {"restart", restart},
                    {"crash", net::engine_exit_is_crash(status)},
                    {"host", s.remote() ? s.engine_host : net::host_name()}};
    if (note) info["note"] = *note;
    if (auto r = hub_.query("engine_exited", Value(std::move(info)), 2s)) {
      if (!r->error && r->info.kind() == Value::Kind::map && r->info["engine"].as_int() >= 0)
        s.engine = r->info["engine"].as_int();
    } else {
      spdlog::warn("the controller did not answer about {}", who);
    }
  }

  /// Whether the controller answers a query within a second.
  bool controller_answers() { return hub_.query("ids", Value(), 1s).has_value(); }

  /// The ssh of a remote engine failed or was killed: a host never reached is not tried again
  /// (a wrong name, no key); one reached before is tried again with the usual back-off, for as
  /// long as the supervisor runs (the link or the host is down for now). Not a crash: the
  /// engine may be running still, cut off, and ends by itself once it misses its controller.
  void lost_ssh(Slot& s, int status) {
    const auto now = Steady::now();
    s.pid = -1;
    changed_ = true;
    s.last_exit = WIFEXITED(status) ? fmt::format("lost its ssh connection to {}", s.destination)
                                    : fmt::format("its ssh {}", exit_reason(status));
    if (g_stop != 0) {
      s.done = true;
      s.state = "stopped";
      return;
    }
    if (!s.ever_started) {
      s.done = true;
      s.state = fmt::format("could not be started on {}: ssh failed; not restarted", s.destination);
      spdlog::error("engine slot {}: {}:{}", s.index, s.state, tail(s.log, 2));
      return;
    }
    if (!options_.restart) {
      s.done = true;
      s.state = fmt::format("{}; not restarted (--no-restart-engines)", s.last_exit);
      spdlog::warn("engine slot {}: {}", s.index, s.state);
      return;
    }
    if (now - s.started >= options_.stable_after) s.backoff = options_.first_backoff;
    s.restart_at = now + s.backoff;
    s.backoffs_ms.push_back(s.backoff.count());
    s.state = fmt::format("{}; starting it again in {}", s.last_exit, seconds(s.backoff));
    s.backoff = std::min(s.backoff * 2, options_.max_backoff);
    spdlog::warn(
        "{}: {}",
        s.engine >= 0 ? fmt::format("engine {}", s.engine) : fmt::format("engine slot {}", s.index),
        s.state);
  }

  /// Names the log of slot `s` by its engine's id and host (`logs/engine-3-node1.log`); a
  /// log of that name from an earlier process goes to `.1` first. The engine keeps writing to
  /// the file it has open, under its new name.
  void name_log(Slot& s, const std::string& host) {
    const auto named = options_.profile / "logs" / fmt::format("engine-{}-{}.log", s.engine, host);
    if (s.log == named) return;
    std::error_code ec;
    if (std::filesystem::exists(named, ec))
      std::filesystem::rename(named, named.string() + ".1", ec);
    std::filesystem::rename(s.log, named, ec);
    if (ec) {
      spdlog::warn("engine {}: its log stays {} ({})", s.engine, s.log.string(), ec.message());
      return;
    }
    s.log = named;
    changed_ = true;
  }

  void learn_ids() {
    auto r = hub_.query("engines", Value(), 1s);
    if (!r || r->error || r->info.kind() != Value::Kind::list) return;
    for (const auto& e : r->info.as_list()) {
      const std::string host = string_field(e, "host", net::host_name());
      for (auto& s : slots_) {
        if (s.pid <= 0 || e["pid"].as_int() != s.engine_pid || host != s.engine_host) continue;
        if (s.engine != e["id"].as_int() || (s.state == "starting" && e["ready"] == Value(true))) {
          s.engine = e["id"].as_int();
          name_log(s, host);
          if (e["ready"] == Value(true)) s.state = "running";
          changed_ = true;
        }
      }
    }
  }

  void serve_control() {
    while (true) {
      std::optional<net::Envelope> env;
      net::Header h;
      try {
        env = net::recv(control_, signer_, zmq::recv_flags::dontwait);
        if (!env) return;
        h = net::decode_header(env->parts.at(0));
      } catch (const Error& e) {
        spdlog::warn("control socket dropped a message: {}", e.what());
        continue;
      }
      net::Header r;
      r.type = net::MsgType::QueryReply;
      r.msg_id = net::new_id();
      r.parent_id = h.msg_id;
      try {
        if (h.task == "add") {
          const std::int64_t n = h.info["n"].as_int();
          if (n < 1 || n > 1024) throw UsageError(fmt::format("cannot add {} engines", n));
          const std::string host = string_field(h.info, "host", "");
          if (!host.empty() && options_.remote_engine.empty())
            throw UsageError("this supervisor was not told ippengine's path on other hosts");
          Value::List pids;
          for (int i = 0; i < n; ++i) {
            Slot& s = add_slot(next_index(), host);
            pids.emplace_back(static_cast<std::int64_t>(s.pid));
          }
          save();
          r.info = Value::map({{"pids", Value(std::move(pids))}});
        } else if (h.task == "status" || h.task == "ids") {
          r.info = Value(static_cast<std::int64_t>(slots_.size()));
        } else {
          throw UsageError(fmt::format("unknown supervisor request '{}'", h.task));
        }
      } catch (const std::exception& e) {
        r.error = make_error_record(ErrorCode::usage, e.what());
      }
      net::Envelope out = net::make_message(r);
      out.route = std::move(env->route);
      net::send(control_, signer_, out, true);
    }
  }

  void stop_all() {
    spdlog::info("stopping {} engine(s)", std::count_if(slots_.begin(), slots_.end(),
                                                        [](const Slot& s) { return s.pid > 0; }));
    for (auto& s : slots_) {
      s.restart_at.reset();
      if (s.pid <= 0) continue;
      if (s.remote())
        close_fd(s.input);  // its script stops the engine and ssh returns how it ended
      else
        ::kill(s.pid, SIGTERM);
    }
    const auto deadline = Steady::now() + 5s;
    while (Steady::now() < deadline &&
           std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.pid > 0; })) {
      read_outputs();
      reap();
      std::this_thread::sleep_for(10ms);
    }
    for (auto& s : slots_) {
      if (s.pid > 0) {
        ::kill(s.pid, SIGKILL);
        ::waitpid(s.pid, nullptr, 0);
        close_fd(s.input);
        close_fd(s.output);
        s.pid = -1;
        s.state = "killed after not stopping in 5 s";
      }
      s.done = true;
    }
  }

  void save() {
    changed_ = false;
    const pid_t me = ::getpid();
    try {
      update_cluster(options_.profile, [&](nlohmann::ordered_json& j) {
        j["supervisor"] = me;
        j["supervisor_endpoint"] = endpoint_;
        std::vector<pid_t> engines;
        if (j.contains("engines")) {
          for (pid_t p : j["engines"].get<std::vector<pid_t>>()) {
            if (!owned_.contains(p)) engines.push_back(p);  // survivors we do not supervise
          }
        }
        auto supervised = nlohmann::ordered_json::array();
        if (j.contains("supervised")) {
          for (const auto& e : j["supervised"]) {
            if (e.value("supervisor", -1) != me) supervised.push_back(e);
          }
        }
        for (const auto& s : slots_) {
          if (s.pid > 0) engines.push_back(s.pid);
          supervised.push_back({{"slot", s.index},
                                {"supervisor", me},
                                {"engine", s.engine},
                                {"pid", s.last_pid},
                                {"alive", s.pid > 0},
                                {"done", s.done},
                                {"state", s.state},
                                {"restarts", s.restarts},
                                {"backoff_ms", s.backoffs_ms},
                                {"last_exit", s.last_exit},
                                {"log", s.log.string()},
                                {"host", s.destination},
                                {"engine_pid", s.engine_pid},
                                {"engine_host", s.engine_host}});
        }
        j["engines"] = engines;
        j["supervised"] = supervised;
      });
    } catch (const std::exception& e) {
      spdlog::warn("cannot update cluster.json: {}", e.what());
    }
  }

  SupervisorOptions options_;
  net::ConnectionInfo info_;
  net::Signer signer_;
  HubLink hub_;
  zmq::context_t ctx_{1};
  zmq::socket_t control_{ctx_, zmq::socket_type::router};
  std::string endpoint_;
  std::deque<Slot> slots_;  // a deque: references stay valid as slots are added
  std::set<pid_t> owned_;   // every engine process this supervisor started
  bool changed_ = false;
};

}  // namespace

std::string exit_reason(int status) {
  return net::engine_exit_reason(status);
}

int supervise(const SupervisorOptions& options) {
  Supervisor s(options);
  return s.run();
}

}  // namespace ipp::ctl
