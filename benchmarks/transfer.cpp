// Push and pull of a large float64 array to one engine of a real local cluster, beside the
// floor: one raw ZeroMQ message of the same size between two processes over loopback TCP.
//
//     ipp-bench-transfer [--mib 1024] [--rounds 3] [--json FILE]
//
// Prints MB/s for each and the ratio to the floor; writes the figures as JSON when asked.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "ipp/client.hpp"
#include "ipp/ctl/process.hpp"

namespace {

using ipp::ctl::exe_dir;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

/// Raw floor: a child process sends `rounds` messages of `bytes` over loopback TCP; the
/// parent receives them. Returns the best MB/s of the rounds.
double raw_zmq_mbps(std::size_t bytes, int rounds) {
  int port_pipe[2];
  if (::pipe(port_pipe) != 0) throw std::runtime_error("pipe failed");
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(port_pipe[0]);
    zmq::context_t ctx;
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.bind("tcp://127.0.0.1:*");
    const std::string ep = push.get(zmq::sockopt::last_endpoint);
    const std::string port = ep.substr(ep.rfind(':') + 1);
    (void)!::write(port_pipe[1], port.data(), port.size());
    ::close(port_pipe[1]);
    std::vector<char> data(bytes, 1);
    for (int r = 0; r < rounds; ++r) {
      // Zero-copy from the same buffer each round, as ipp sends arrays.
      zmq::message_t msg(
          data.data(), data.size(), [](void*, void*) noexcept {}, nullptr);
      push.send(msg, zmq::send_flags::none);
    }
    zmq::message_t done;
    push.send(done, zmq::send_flags::none);
    push.set(zmq::sockopt::linger, -1);
    push.close();
    ctx.close();
    std::_Exit(0);
  }
  ::close(port_pipe[1]);
  char buf[16] = {};
  const auto n = ::read(port_pipe[0], buf, sizeof buf - 1);
  ::close(port_pipe[0]);
  if (n <= 0) throw std::runtime_error("the sender did not start");
  zmq::context_t ctx;
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.connect(fmt::format("tcp://127.0.0.1:{}", std::string(buf, static_cast<std::size_t>(n))));
  double best = 0;
  zmq::message_t msg;
  // The first message includes connection set-up: time from the first byte's arrival on.
  for (int r = 0; r < rounds; ++r) {
    const auto t = Clock::now();
    (void)pull.recv(msg);
    const double s = seconds_since(t);
    if (r > 0 || rounds == 1) best = std::max(best, static_cast<double>(bytes) / s / 1e6);
  }
  (void)pull.recv(msg);
  int status = 0;
  ::waitpid(child, &status, 0);
  return best;
}

int run_cmd(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ipp-bench-transfer: push/pull of a large array vs a raw ZeroMQ transfer"};
  std::size_t mib = 1024;
  int rounds = 3;
  std::string json_file;
  app.add_option("--mib", mib, "Array size in MiB")->capture_default_str();
  app.add_option("--rounds", rounds, "Repetitions (the best is reported)")->capture_default_str();
  app.add_option("--json", json_file, "Also write the figures to this file");
  CLI11_PARSE(app, argc, argv);
  const std::size_t bytes = mib << 20;

  const double raw = raw_zmq_mbps(bytes, rounds + 1);

  // A real cluster with one engine, in a fresh profile.
  const auto profile =
      std::filesystem::temp_directory_path() / fmt::format("ipp-bench-{}", ::getpid());
  const std::string ctl =
      fmt::format("'{}' --profile-dir '{}'", (exe_dir() / "ippctl").string(), profile.string());
  if (run_cmd(ctl + " cluster start -n 1 > /dev/null") != 0) {
    std::cerr << "ipp-bench-transfer: cannot start a cluster\n";
    return 1;
  }
  double push_best = 0, pull_best = 0;
  int code = 0;
  try {
    ipp::Client rc(ipp::ClientOptions{.profile_dir = profile, .timeout = ipp::Duration(600000)});
    ipp::DirectView e0 = rc[0];
    std::vector<double> xs(bytes / sizeof(double));
    for (std::size_t i = 0; i < xs.size(); ++i)
      xs[i] = static_cast<double>(i);
    const ipp::Value big = std::move(xs);
    for (int r = 0; r < rounds; ++r) {
      auto t = Clock::now();
      e0.push({{"big", big}});
      push_best = std::max(push_best, static_cast<double>(bytes) / seconds_since(t) / 1e6);
      t = Clock::now();
      const ipp::Value back = e0.pull("big");
      pull_best = std::max(pull_best, static_cast<double>(bytes) / seconds_since(t) / 1e6);
      if (back.size() != big.size()) throw std::runtime_error("pulled the wrong size");
    }
  } catch (const std::exception& e) {
    std::cerr << "ipp-bench-transfer: " << e.what() << "\n";
    code = 1;
  }
  (void)run_cmd(ctl + " cluster stop > /dev/null");
  std::error_code ec;
  std::filesystem::remove_all(profile, ec);
  if (code != 0) return code;

  fmt::print("{:<44} {:>10} {:>10}\n", fmt::format("transfer of {} MiB (best of {})", mib, rounds),
             "MB/s", "vs raw");
  fmt::print("{:<44} {:>10.0f} {:>10}\n", "raw ZeroMQ message, one hop (floor)", raw, "1.00");
  fmt::print("{:<44} {:>10.0f} {:>10.2f}\n", "ipp push (client -> controller -> engine)", push_best,
             push_best / raw);
  fmt::print("{:<44} {:>10.0f} {:>10.2f}\n", "ipp pull (engine -> controller -> client)", pull_best,
             pull_best / raw);
  if (!json_file.empty()) {
    nlohmann::json j{{"bytes", bytes},
                     {"rounds", rounds},
                     {"raw_zmq_mbps", raw},
                     {"push_mbps", push_best},
                     {"pull_mbps", pull_best},
                     {"push_ratio", push_best / raw},
                     {"pull_ratio", pull_best / raw}};
    std::ofstream(json_file) << j.dump(2) << "\n";
  }
  return 0;
}
