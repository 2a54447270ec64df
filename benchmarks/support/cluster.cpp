#include "cluster.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "ipp/ctl/process.hpp"
#include "ipp/net/connection_file.hpp"

namespace ipp::bench {

using ipp::ctl::exe_dir;

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

double rss_mb(std::int64_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

std::filesystem::path arith() {
  return exe_dir() / ".." / "plugins" / "arith.so";
}

Cluster::Cluster(const std::string& name, int engines, int threads,
                 const std::vector<std::string>& extra) {
  profile_ =
      std::filesystem::temp_directory_path() / fmt::format("ipp-bench-{}-{}", name, ::getpid());
  std::filesystem::create_directories(profile_);
  log_ = profile_ / "ippctl.log";
  const auto t = Clock::now();
  std::vector<std::string> argv{
      ctl(), "--profile-dir", profile_.string(), "cluster", "start", "-n", std::to_string(engines)};
  if (threads > 0) argv.insert(argv.end(), {"--engine-threads", std::to_string(threads)});
  argv.insert(argv.end(), extra.begin(), extra.end());
  const int code = ipp::ctl::run_and_wait(argv, {.log = log_});
  start_s_ = since(t);
  if (code != 0) throw std::runtime_error("ippctl cluster start failed: see " + log_.string());
}

Cluster::~Cluster() {
  (void)ipp::ctl::run_and_wait({ctl(), "--profile-dir", profile_.string(), "cluster", "stop"},
                               {.log = log_});
  std::error_code ec;
  std::filesystem::remove_all(profile_, ec);
}

std::string Cluster::ctl() {
  return (exe_dir() / "ippctl").string();
}

Client Cluster::client() const {
  return Client(ClientOptions{.profile_dir = profile_, .timeout = Duration(600000)});
}

HandCluster::HandCluster(const std::string& name, const std::vector<std::string>& controller_args) {
  profile_ =
      std::filesystem::temp_directory_path() / fmt::format("ipp-bench-{}-{}", name, ::getpid());
  std::filesystem::create_directories(profile_);
  std::vector<std::string> argv{(exe_dir() / "ippcontroller").string(), "--profile-dir",
                                profile_.string(), "--log-level", "warn"};
  argv.insert(argv.end(), controller_args.begin(), controller_args.end());
  pids_.push_back(ipp::ctl::spawn(argv, {.log = profile_ / "controller.log"}));
  while (!std::filesystem::exists(profile_ / ipp::net::kClientFile)) {
    if (::waitpid(pids_.front(), nullptr, WNOHANG) == pids_.front()) {
      pids_.clear();
      throw std::runtime_error("the controller did not start: see " +
                               (profile_ / "controller.log").string());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void HandCluster::add_engines(int n, int threads) {
  for (int i = 0; i < n; ++i) {
    pids_.push_back(
        ipp::ctl::spawn({(exe_dir() / "ippengine").string(), "--profile-dir", profile_.string(),
                         "--threads", std::to_string(threads), "--log-level", "warn"},
                        {.log = profile_ / fmt::format("engine-{}.log", pids_.size())}));
  }
  Client rc = client();
  while (rc.ids().size() < pids_.size() - 1)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

void HandCluster::shutdown() {
  if (pids_.empty()) return;
  try {
    Client(ClientOptions{.profile_dir = profile_, .timeout = Duration(10000)}).shutdown();
  } catch (const std::exception&) {
    for (pid_t p : pids_)
      ::kill(p, SIGTERM);
  }
  for (pid_t p : pids_)
    ::waitpid(p, nullptr, 0);
  pids_.clear();
}

HandCluster::~HandCluster() {
  shutdown();
  std::error_code ec;
  std::filesystem::remove_all(profile_, ec);
}

Client HandCluster::client() const {
  return Client(ClientOptions{.profile_dir = profile_, .timeout = Duration(600000)});
}

double throughput(LoadBalancedView& lb, int tasks) {
  std::vector<AsyncResult> rs;
  rs.reserve(static_cast<std::size_t>(tasks));
  const auto t = Clock::now();
  for (int i = 0; i < tasks; ++i)
    rs.push_back(lb.apply_async("add", {i, 1}));
  for (int i = 0; i < tasks; ++i) {
    if (rs[static_cast<std::size_t>(i)].get().as_int() != i + 1)
      throw std::runtime_error("a wrong result");
  }
  return tasks / since(t);
}

}  // namespace ipp::bench
