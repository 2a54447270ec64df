#include "ipp/net/address.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <charconv>
#include <memory>

#include <fmt/format.h>

#include "ipp/error.hpp"

namespace ipp::net {

namespace {

bool is_ipv6_literal(std::string_view host) {
  return host.find(':') != std::string_view::npos;
}

/// The host part of a `tcp://HOST:PORT` endpoint, brackets and all.
std::string_view host_of(std::string_view endpoint) {
  constexpr std::string_view kTcp = "tcp://";
  if (endpoint.substr(0, kTcp.size()) != kTcp) return {};
  endpoint.remove_prefix(kTcp.size());
  const auto colon = endpoint.rfind(':');
  return colon == std::string_view::npos ? endpoint : endpoint.substr(0, colon);
}

/// Whether the socket must be allowed IPv6 for `endpoint`.
bool needs_ipv6(std::string_view endpoint) {
  return host_of(endpoint).substr(0, 1) == "[";
}

std::string numeric(const sockaddr* sa) {
  char text[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, text, sizeof text);
  } else if (sa->sa_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, text, sizeof text);
  }
  return text;
}

}  // namespace

std::string tcp_endpoint(std::string_view host, std::string_view port) {
  if (is_ipv6_literal(host) && host.substr(0, 1) != "[")
    return fmt::format("tcp://[{}]:{}", host, port);
  return fmt::format("tcp://{}:{}", host, port);
}

bool is_wildcard(std::string_view ip) {
  return ip == "*" || ip == "0.0.0.0" || ip == "::" || ip == "[::]";
}

bool is_loopback(std::string_view ip) {
  std::string text(ip);
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  in_addr v4{};
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, text.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

std::string bind_host(std::string_view ip) {
  if (ip.empty()) throw UsageError("an empty address to listen on");
  if (is_wildcard(ip)) return ip == "*" ? "0.0.0.0" : std::string(ip);
  in6_addr v6{};
  in_addr v4{};
  const std::string text(ip);
  if (::inet_pton(AF_INET, text.c_str(), &v4) == 1 || ::inet_pton(AF_INET6, text.c_str(), &v6) == 1)
    return text;
  // IPv4 first: peers given the host name resolve it as ZeroMQ does without IPv6, to IPv4.
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = ::getaddrinfo(text.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    hints.ai_family = AF_INET6;
    rc = ::getaddrinfo(text.c_str(), nullptr, &hints, &found);
  }
  if (rc != 0 || found == nullptr) {
    throw UsageError(fmt::format("cannot listen on '{}': the host name does not resolve ({})", text,
                                 rc != 0 ? ::gai_strerror(rc) : "no address"));
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(found, ::freeaddrinfo);
  return numeric(found->ai_addr);
}

std::string default_location(std::string_view ip) {
  if (!is_wildcard(ip)) return std::string(ip);
  ifaddrs* all = nullptr;
  if (::getifaddrs(&all) != 0) return "127.0.0.1";
  std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> owner(all, ::freeifaddrs);
  for (const int family : {AF_INET, AF_INET6}) {
    for (const ifaddrs* i = all; i != nullptr; i = i->ifa_next) {
      if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != family) continue;
      if ((i->ifa_flags & IFF_UP) == 0 || (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
      if (family == AF_INET6 &&
          IN6_IS_ADDR_LINKLOCAL(&reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr))
        continue;  // needs a zone to be reached
      return numeric(i->ifa_addr);
    }
  }
  return "127.0.0.1";
}

void connect(zmq::socket_t& socket, const std::string& endpoint, const CurveKeys& curve) {
  if (needs_ipv6(endpoint)) socket.set(zmq::sockopt::ipv6, true);
  secure_client(socket, curve);
  socket.connect(endpoint);
}

void bind(zmq::socket_t& socket, const std::string& endpoint) {
  if (needs_ipv6(endpoint)) socket.set(zmq::sockopt::ipv6, true);
  socket.bind(endpoint);
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

std::pair<int, int> parse_port_range(std::string_view text) {
  const auto dash = text.find('-');
  int first = 0, last = 0;
  const auto number = [](std::string_view digits, int& out) {
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    return ec == std::errc() && end == digits.data() + digits.size();
  };
  if (dash == std::string_view::npos || !number(text.substr(0, dash), first) ||
      !number(text.substr(dash + 1), last))
    throw UsageError(fmt::format("a port range is FIRST-LAST, not '{}'", text));
  if (first < 1 || last > 65535 || first > last)
    throw UsageError(
        fmt::format("a port range is FIRST-LAST with 1 <= FIRST <= LAST <= 65535, not '{}'", text));
  return {first, last};
}

int port_of(std::string_view endpoint) {
  const auto colon = endpoint.rfind(':');
  if (colon == std::string_view::npos) return -1;
  int port = -1;
  const auto digits = endpoint.substr(colon + 1);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  return ec == std::errc() && end == digits.data() + digits.size() ? port : -1;
}

}  // namespace ipp::net
