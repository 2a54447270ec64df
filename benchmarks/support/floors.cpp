#include "floors.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <fmt/format.h>

#include "cluster.hpp"

namespace ipp::bench {

namespace {

/// Forks a child running `child(port_out)`; returns its pid and the port it wrote.
template <typename Child>
std::pair<pid_t, std::string> fork_peer(Child&& child) {
  int pipe_fd[2];
  if (::pipe(pipe_fd) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipe_fd[0]);
    child(pipe_fd[1]);
    ::_exit(0);
  }
  ::close(pipe_fd[1]);
  char buf[16] = {};
  const auto n = ::read(pipe_fd[0], buf, sizeof buf - 1);
  ::close(pipe_fd[0]);
  if (n <= 0) throw std::runtime_error("the floor's peer process did not start");
  return {pid, std::string(buf, static_cast<std::size_t>(n))};
}

void write_port(zmq::socket_t& s, int fd) {
  const std::string ep = s.get(zmq::sockopt::last_endpoint);
  const std::string port = ep.substr(ep.rfind(':') + 1);
  (void)!::write(fd, port.data(), port.size());
  ::close(fd);
}

/// `n` round trips of 64 B from `dealer`, each in us, appended to `out`.
void time_round_trips(zmq::socket_t& dealer, int n, std::vector<double>& out) {
  const std::string payload(64, 'x');
  for (int i = 0; i < n; ++i) {
    const auto t = Clock::now();
    dealer.send(zmq::buffer(payload), zmq::send_flags::none);
    zmq::message_t reply;
    (void)dealer.recv(reply);
    out.push_back(since(t) * 1e6);
  }
}

/// Where a floor's peer listens: a Unix socket at `path`, or TCP on loopback at `port`.
std::string local_endpoint(bool ipc, const std::string& path, const std::string& port) {
  return ipc ? "ipc://" + path : "tcp://127.0.0.1:" + port;
}
/// What a floor's peer binds to for local_endpoint().
std::string local_bind(bool ipc, const std::string& path) {
  return ipc ? "ipc://" + path : std::string("tcp://127.0.0.1:*");
}

}  // namespace

RawEcho::RawEcho(bool ipc) {
  const std::string path =
      (std::filesystem::temp_directory_path() / fmt::format("ipp-bench-{}.ipc", ::getpid()))
          .string();
  auto [pid, port] = fork_peer([ipc, path](int fd) {
    zmq::context_t ctx;
    zmq::socket_t router(ctx, zmq::socket_type::router);
    router.bind(local_bind(ipc, path));
    write_port(router, fd);
    while (true) {
      zmq::message_t id, body;
      (void)router.recv(id);
      (void)router.recv(body);
      const bool stop = body.to_string_view() == "stop";
      router.send(id, zmq::send_flags::sndmore);
      router.send(body, zmq::send_flags::none);
      if (stop) return;
    }
  });
  pid_ = pid;
  dealer_.connect(local_endpoint(ipc, path, port));
  std::vector<double> warm;
  time(100, warm);
}

RawEcho::~RawEcho() {
  dealer_.send(zmq::str_buffer("stop"), zmq::send_flags::none);
  zmq::message_t reply;
  (void)dealer_.recv(reply);
  ::waitpid(pid_, nullptr, 0);
}

void RawEcho::time(int n, std::vector<double>& out) {
  time_round_trips(dealer_, n, out);
}

std::pair<double, double> raw_rtt_us(int rounds, bool ipc) {
  RawEcho echo(ipc);
  std::vector<double> us;
  echo.time(rounds, us);
  return {percentile(us, 0.5), percentile(us, 0.99)};
}

double raw_relay_rtt_us(int rounds, bool ipc) {
  const std::string base =
      (std::filesystem::temp_directory_path() / fmt::format("ipp-bench-relay-{}", ::getpid()))
          .string();
  auto [relay_pid, ports] = fork_peer([rounds, ipc, base](int fd) {
    zmq::context_t ctx;
    zmq::socket_t front(ctx, zmq::socket_type::router), back(ctx, zmq::socket_type::router);
    front.bind(local_bind(ipc, base + "-front"));
    back.bind(local_bind(ipc, base + "-back"));
    auto port = [](zmq::socket_t& s) {
      const std::string ep = s.get(zmq::sockopt::last_endpoint);
      return ep.substr(ep.rfind(':') + 1);
    };
    const std::string both = port(front) + " " + port(back);
    (void)!::write(fd, both.data(), both.size());
    ::close(fd);
    zmq::message_t worker, hello;
    (void)back.recv(worker);  // the worker's hello: its route exists
    (void)back.recv(hello);
    zmq::pollitem_t items[] = {{front.handle(), 0, ZMQ_POLLIN, 0},
                               {back.handle(), 0, ZMQ_POLLIN, 0}};
    for (int done = 0; done < rounds + 100;) {
      zmq::poll(items, 2, std::chrono::milliseconds(-1));
      if (items[0].revents & ZMQ_POLLIN) {
        zmq::message_t client, body;
        (void)front.recv(client);
        (void)front.recv(body);
        zmq::message_t to(worker.data(), worker.size());
        back.send(to, zmq::send_flags::sndmore);
        back.send(client, zmq::send_flags::sndmore);
        back.send(body, zmq::send_flags::none);
      }
      if (items[1].revents & ZMQ_POLLIN) {
        zmq::message_t from, client, body;
        (void)back.recv(from);
        (void)back.recv(client);
        (void)back.recv(body);
        front.send(client, zmq::send_flags::sndmore);
        front.send(body, zmq::send_flags::none);
        ++done;
      }
    }
  });
  const std::string front_ep =
      local_endpoint(ipc, base + "-front", ports.substr(0, ports.find(' ')));
  const std::string back_ep =
      local_endpoint(ipc, base + "-back", ports.substr(ports.find(' ') + 1));
  auto [worker_pid, unused] = fork_peer([rounds, back_ep](int fd) {
    zmq::context_t ctx;
    zmq::socket_t worker(ctx, zmq::socket_type::dealer);
    worker.set(zmq::sockopt::routing_id, "w");
    worker.connect(back_ep);
    worker.send(zmq::str_buffer("hello"), zmq::send_flags::none);
    (void)!::write(fd, "0", 1);
    ::close(fd);
    for (int i = 0; i < rounds + 100; ++i) {
      zmq::message_t client, body;
      (void)worker.recv(client);
      (void)worker.recv(body);
      worker.send(client, zmq::send_flags::sndmore);
      worker.send(body, zmq::send_flags::none);
    }
  });
  (void)unused;
  std::vector<double> us;
  {
    zmq::context_t ctx;
    zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
    dealer.connect(front_ep);
    time_round_trips(dealer, 100, us);  // warm-up
    us.clear();
    time_round_trips(dealer, rounds, us);
  }
  ::waitpid(worker_pid, nullptr, 0);
  ::waitpid(relay_pid, nullptr, 0);
  return percentile(us, 0.5);
}

double raw_stream_mbps(int messages) {
  constexpr std::size_t kMiB = 1 << 20;
  auto [pid, port] = fork_peer([messages](int fd) {
    std::vector<char> data(kMiB, 1);  // outlives the context, which sends until it closes
    zmq::context_t ctx;
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.bind("tcp://127.0.0.1:*");
    write_port(push, fd);
    for (int i = 0; i < messages; ++i) {
      zmq::message_t m(
          data.data(), data.size(), [](void*, void*) noexcept {}, nullptr);
      push.send(m, zmq::send_flags::none);
    }
    zmq::message_t done;
    push.send(done, zmq::send_flags::none);
  });
  zmq::context_t ctx;
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.connect("tcp://127.0.0.1:" + port);
  zmq::message_t m;
  (void)pull.recv(m);  // the first arrives once connected: start the clock here
  const auto t = Clock::now();
  std::size_t bytes = 0;
  while (true) {
    (void)pull.recv(m);
    if (m.size() == 0) break;
    bytes += m.size();
  }
  const double s = since(t);
  ::waitpid(pid, nullptr, 0);
  return static_cast<double>(bytes) / 1e6 / s;
}

double raw_message_mbps(std::size_t bytes, int rounds) {
  auto [pid, port] = fork_peer([bytes, rounds](int fd) {
    zmq::context_t ctx;
    zmq::socket_t push(ctx, zmq::socket_type::push);
    push.bind("tcp://127.0.0.1:*");
    write_port(push, fd);
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
  });
  zmq::context_t ctx;
  zmq::socket_t pull(ctx, zmq::socket_type::pull);
  pull.connect("tcp://127.0.0.1:" + port);
  double best = 0;
  zmq::message_t msg;
  // The first message includes connection set-up: time from the first byte's arrival on.
  for (int r = 0; r < rounds; ++r) {
    const auto t = Clock::now();
    (void)pull.recv(msg);
    const double s = since(t);
    if (r > 0 || rounds == 1) best = std::max(best, static_cast<double>(bytes) / s / 1e6);
  }
  (void)pull.recv(msg);
  ::waitpid(pid, nullptr, 0);
  return best;
}

}  // namespace ipp::bench
