// Large arrays between hosts: push and pull of a float64 array to an engine on another host,
// beside a raw TCP stream of the same size over the same link, measured in the same run.
//
//     ipp-bench-hosts [--mib 256] [--rounds 4] [--json FILE]      (as root)
//
// The hosts are network namespaces on a virtual switch (scripts/test-hosts.sh), each with its
// own /dev/shm: host a runs the controller, host b the engine, and the client runs on a (the
// head node's case: one hop over the network) and on c (a laptop's: two hops, through the
// controller). The floor is a raw TCP stream of the same bytes from the client's host to b.
// Both are run without encryption and with it (CURVE); the target (0.8x the floor) is for
// the same bytes on the wire, so for the run without.
//
// The same program is also each part it starts inside the hosts (hidden options): the client
// (--client FILE), and both ends of the raw stream (--tcp-sink PORT, --tcp-source ADDR:PORT).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "ipp/client.hpp"
#include "ipp/ctl/process.hpp"
#include "support/cluster.hpp"
#include "support/figures.hpp"

namespace {

using namespace ipp::bench;
using namespace std::chrono_literals;

const std::string kScript = std::string(IPP_SOURCE_DIR) + "/scripts/test-hosts.sh";

/// Memory touched once, so that no round pays for page faults the other side does not.
std::vector<char> touched(std::size_t bytes) {
  std::vector<char> buf(bytes);
  for (std::size_t i = 0; i < bytes; i += 4096)
    buf[i] = static_cast<char>(i);
  return buf;
}

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(fmt::format("{}: {}", what, std::strerror(errno)));
}

/// The sink of the raw stream: for each of `rounds` connections, reads `bytes` and answers
/// one byte.
int tcp_sink(int port, std::size_t bytes, int rounds) {
  const int l = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = INADDR_ANY;
  check(::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind");
  check(::listen(l, 4) == 0, "listen");
  std::cout << "listening" << std::endl;
  std::vector<char> buf = touched(std::min<std::size_t>(bytes, 64 << 20));
  for (int r = 0; r < rounds; ++r) {
    const int c = ::accept(l, nullptr, nullptr);
    check(c >= 0, "accept");
    std::size_t got = 0;
    while (got < bytes) {
      const ssize_t n = ::read(c, buf.data(), std::min(buf.size(), bytes - got));
      check(n > 0, "read");
      got += static_cast<std::size_t>(n);
    }
    check(::write(c, "k", 1) == 1, "ack");
    ::close(c);
  }
  return 0;
}

/// The source: `rounds` connections, each sending `bytes` from one buffer and waiting for the
/// answer; prints the best MB/s of the rounds after the first.
int tcp_source(const std::string& where, std::size_t bytes, int rounds) {
  const auto colon = where.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(where.substr(colon + 1))));
  check(::inet_pton(AF_INET, where.substr(0, colon).c_str(), &a.sin_addr) == 1, "address");
  const std::vector<char> buf = touched(bytes);
  double best = 0;
  for (int r = 0; r < rounds; ++r) {
    const auto t = Clock::now();
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    check(::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "connect");
    std::size_t sent = 0;
    while (sent < bytes) {
      const ssize_t n = ::write(s, buf.data() + sent, bytes - sent);
      check(n > 0, "write");
      sent += static_cast<std::size_t>(n);
    }
    char k;
    check(::read(s, &k, 1) == 1, "ack");
    ::close(s);
    if (r > 0) best = std::max(best, static_cast<double>(bytes) / since(t) / 1e6);
  }
  std::cout << best << std::endl;
  return 0;
}

/// The client: pushes `bytes` of float64 to engine 0 and pulls them back, `rounds` times;
/// prints the best push and pull MB/s of the rounds after the first.
int client(const std::string& file, std::size_t bytes, int rounds) {
  ipp::ClientOptions options;
  options.connection_file = file;
  options.timeout = ipp::Duration(600000);
  ipp::Client rc(options);
  const auto deadline = Clock::now() + 60s;
  while (rc.ids().empty()) {
    if (Clock::now() > deadline) throw std::runtime_error("no engine registered");
    std::this_thread::sleep_for(50ms);
  }
  ipp::DirectView e0 = rc[rc.ids().front()];
  const std::size_t n = bytes / sizeof(double);
  std::vector<double> data(n, 1.5);
  const ipp::Value big(ipp::Array::from(std::move(data)));
  double push = 0, pull = 0;
  for (int r = 0; r < rounds; ++r) {
    auto t = Clock::now();
    e0.push({{"big", big}});
    const double push_rate = static_cast<double>(bytes) / since(t) / 1e6;
    t = Clock::now();
    const ipp::Value back = e0.pull("big");
    const double pull_rate = static_cast<double>(bytes) / since(t) / 1e6;
    if (back.size() != n || back.as_array().view<double>()[n - 1] != 1.5)
      throw std::runtime_error("pulled a wrong value");
    if (r > 0) {
      push = std::max(push, push_rate);
      pull = std::max(pull, pull_rate);
    }
  }
  std::cout << push << " " << pull << std::endl;
  return 0;
}

/// Runs `args` of this program on test host `host` and returns what it printed.
std::string run_on(const std::string& tag, const std::string& host, const std::string& args) {
  const std::string self = std::filesystem::canonical("/proc/self/exe").string();
  const std::string cmd = kScript + " exec " + tag + " " + host + " " + self + " " + args;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  char buf[256];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;)
    out.append(buf, n);
  const int status = ::pclose(p);
  if (status != 0) throw std::runtime_error(fmt::format("'{}' failed: {}", args, out));
  return out;
}

/// The test hosts a, b, c of one run, removed at the end of its life.
class Hosts {
 public:
  Hosts() : tag_("bh" + std::to_string(::getpid() % 100000)) {
    if (std::system((kScript + " up " + tag_ + " a b c").c_str()) != 0)
      throw std::runtime_error("cannot make the test hosts (root, iproute2, util-linux)");
  }
  ~Hosts() {
    for (const pid_t p : pids_) {
      ::kill(p, SIGTERM);
      ::waitpid(p, nullptr, 0);
    }
    (void)std::system((kScript + " down " + tag_).c_str());
  }
  Hosts(const Hosts&) = delete;
  Hosts& operator=(const Hosts&) = delete;

  [[nodiscard]] const std::string& tag() const { return tag_; }
  /// Starts `argv` on `host` in the background; stopped at the end.
  pid_t start(const std::string& host, std::vector<std::string> argv, const std::string& log) {
    argv.insert(argv.begin(), {kScript, "exec", tag_, host});
    const pid_t p = ipp::ctl::spawn(argv, {.log = log});
    pids_.push_back(p);
    return p;
  }
  void stop(pid_t p) {
    ::kill(p, SIGTERM);
    ::waitpid(p, nullptr, 0);
    pids_.erase(std::remove(pids_.begin(), pids_.end(), p), pids_.end());
  }

 private:
  std::string tag_;
  std::vector<pid_t> pids_;
};

/// The raw stream's best MB/s from `from` to host b.
double raw_tcp(Hosts& h, const std::string& from, std::size_t bytes, int rounds,
               const std::filesystem::path& dir) {
  static int port = 47100;
  ++port;
  const std::string self = std::filesystem::canonical("/proc/self/exe").string();
  const auto log = dir / fmt::format("sink-{}.log", port);
  const pid_t sink = h.start("b",
                             {self, "--tcp-sink", std::to_string(port), "--bytes",
                              std::to_string(bytes), "--rounds", std::to_string(rounds)},
                             log.string());
  const auto deadline = Clock::now() + 10s;
  while (true) {
    std::ifstream in(log);
    std::string word;
    if (in >> word && word == "listening") break;
    if (Clock::now() > deadline) throw std::runtime_error("the raw stream's sink did not start");
    std::this_thread::sleep_for(10ms);
  }
  const std::string out =
      run_on(h.tag(), from,
             fmt::format("--tcp-source 10.77.0.2:{} --bytes {} --rounds {}", port, bytes, rounds));
  h.stop(sink);
  return std::stod(out);
}

struct Rates {
  double push = 0, pull = 0;
};

/// ipp's best push and pull MB/s with the controller on a (encryption `encryption`) and the
/// engine on b: a client on a, then one on c.
std::pair<Rates, Rates> ipp_rates(Hosts& h, const std::string& encryption, std::size_t bytes,
                                  int rounds, const std::filesystem::path& dir, bool shm) {
  const auto profile = dir / ("profile-" + encryption);
  std::filesystem::create_directories(profile);
  const auto bin = ipp::ctl::exe_dir();
  const pid_t controller = h.start(
      "a",
      {(bin / "ippcontroller").string(), "--profile-dir", profile.string(), "--ip", "0.0.0.0",
       "--encryption", encryption, "--log-level", "warn", shm ? "--shm" : "--no-shm"},
      (dir / ("controller-" + encryption + ".log")).string());
  const auto file = profile / "ipp-client.json";
  const auto deadline = Clock::now() + 20s;
  while (!std::filesystem::exists(file)) {
    if (Clock::now() > deadline) throw std::runtime_error("the controller did not start");
    std::this_thread::sleep_for(10ms);
  }
  const pid_t engine =
      h.start("b",
              {(bin / "ippengine").string(), "--file", (profile / "ipp-engine.json").string(),
               "--threads", "2", "--log-level", "warn"},
              (dir / ("engine-" + encryption + ".log")).string());
  const auto rates = [&](const std::string& host) {
    std::istringstream in(
        run_on(h.tag(), host,
               fmt::format("--client {} --bytes {} --rounds {}", file.string(), bytes, rounds)));
    Rates r;
    if (!(in >> r.push >> r.pull)) throw std::runtime_error("the client printed no rates");
    return r;
  };
  std::pair<Rates, Rates> out{rates("a"), rates("c")};
  h.stop(engine);
  h.stop(controller);
  return out;
}

int drive(std::size_t mib, int rounds, const std::string& modes, bool shm,
          const std::string& json_file) {
  if (::geteuid() != 0) {
    std::cerr << "ipp-bench-hosts: the test hosts are network namespaces: run it as root\n";
    return 2;
  }
  const std::size_t bytes = mib << 20;
  const auto dir =
      std::filesystem::temp_directory_path() / fmt::format("ipp-bench-hosts-{}", ::getpid());
  std::filesystem::create_directories(dir);
  std::vector<Floor> floors;
  std::vector<Figure> figures;
  {
    Hosts h;
    const double raw_a = raw_tcp(h, "a", bytes, rounds, dir);
    const double raw_c = raw_tcp(h, "c", bytes, rounds, dir);
    floors = {{"raw_tcp_a_b_mbps", fmt::format("a raw TCP stream of {} MiB, host a -> b", mib),
               raw_a, "MB/s"},
              {"raw_tcp_c_b_mbps", fmt::format("a raw TCP stream of {} MiB, host c -> b", mib),
               raw_c, "MB/s"}};
    for (const std::string encryption : {"off", "on"}) {
      if (modes != "both" && modes != encryption) continue;
      const auto [from_a, from_c] = ipp_rates(h, encryption, bytes, rounds, dir, shm);
      const bool plain = encryption == "off";
      const std::string how = plain ? "" : ", encrypted";
      const std::string target = plain ? ">= 0.8x floor" : "";
      const auto add = [&](const std::string& name, double value, double floor) {
        figures.push_back({"11", name + how, value, "MB/s", value / floor, target,
                           !plain || value >= 0.8 * floor});
      };
      add(fmt::format("push of {} MiB, client on the controller's host a -> engine on b", mib),
          from_a.push, raw_a);
      add("pull of it, engine on b -> client on a", from_a.pull, raw_a);
      add(fmt::format("push of {} MiB, client on c -> controller on a -> engine on b", mib),
          from_c.push, raw_c);
      add("pull of it, engine on b -> a -> client on c", from_c.pull, raw_c);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  print_figures(floors, figures);
  if (!json_file.empty())
    write_json(json_file, floors, figures,
               {{"bytes", static_cast<double>(bytes)}, {"rounds", rounds}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ipp-bench-hosts: large arrays between hosts vs a raw TCP stream (needs root)"};
  std::size_t mib = 256;
  int rounds = 4;
  std::string json_file, client_file, source;
  int sink_port = 0;
  std::size_t bytes = 0;
  app.add_option("--mib", mib, "Array size in MiB")->capture_default_str();
  app.add_option("--rounds", rounds, "Repetitions; the best after the first is reported")
      ->capture_default_str()
      ->check(CLI::Range(2, 100));
  app.add_option("--json", json_file, "Also write the figures to this file");
  std::string encryption = "both";
  app.add_option("--encryption", encryption, "Runs without encryption, with it, or both")
      ->check(CLI::IsMember({"off", "on", "both"}))
      ->capture_default_str();
  bool shm = true;
  app.add_flag("--shm,!--no-shm", shm,
               "Whether the client on the controller's host shares memory with it")
      ->capture_default_str();
  app.add_option("--client", client_file)->group("");
  app.add_option("--tcp-sink", sink_port)->group("");
  app.add_option("--tcp-source", source)->group("");
  app.add_option("--bytes", bytes)->group("");
  CLI11_PARSE(app, argc, argv);
  try {
    if (sink_port > 0) return tcp_sink(sink_port, bytes, rounds);
    if (!source.empty()) return tcp_source(source, bytes, rounds);
    if (!client_file.empty()) return client(client_file, bytes, rounds);
    return drive(mib, rounds, encryption, shm, json_file);
  } catch (const std::exception& e) {
    std::cerr << "ipp-bench-hosts: " << e.what() << "\n";
    return 1;
  }
}
