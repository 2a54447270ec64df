#pragma once

// Addresses on the wire: where a controller listens, what its connection files tell peers, and
// TCP endpoints for IPv4, IPv6 and host names alike.

#include <string>
#include <string_view>
#include <utility>

#include <zmq.hpp>

#include "ipp/net/curve.hpp"

namespace ipp::net {

/// `tcp://HOST:PORT`, with an IPv6 address in brackets (`tcp://[::1]:5555`); `port` may be
/// `*` (chosen by the system when binding).
std::string tcp_endpoint(std::string_view host, std::string_view port);

/// Whether `ip` listens on every interface: `*`, `0.0.0.0` or `::`.
bool is_wildcard(std::string_view ip);
/// Whether the numeric address `ip` is a loopback address (127.0.0.0/8, ::1, or IPv4 loopback
/// mapped into IPv6), with or without brackets.
bool is_loopback(std::string_view ip);

/// What a controller binds for `ip` (as `--ip` gives it): a wildcard or a numeric address as
/// is, a host name resolved to its first IPv4 address (peers resolve the name as ZeroMQ does,
/// to IPv4), or its first IPv6 one when it has none. Throws UsageError naming a host that does
/// not resolve.
std::string bind_host(std::string_view ip);

/// The address a controller listening on `ip` writes into its connection files when the
/// user gave none (`--location`): `ip` itself, or for a wildcard the first address of an
/// interface that is up and not loopback (IPv4 first), 127.0.0.1 when there is none.
std::string default_location(std::string_view ip);

/// Connects `socket` to `endpoint`, first allowing IPv6 on it when the endpoint's host is an
/// IPv6 address (ZeroMQ sockets are IPv4-only unless told), and encrypting with `curve` when
/// it is on (see secure_client).
void connect(zmq::socket_t& socket, const std::string& endpoint, const CurveKeys& curve = {});
/// Binds `socket` to `endpoint`, likewise allowing IPv6 when the endpoint needs it; an IPv6
/// wildcard (`tcp://[::]:...`) listens on IPv4 too.
void bind(zmq::socket_t& socket, const std::string& endpoint);

/// This host's name (gethostname), as engines report it when they register.
std::string host_name();

/// A range of ports as `--port-range` gives it, `FIRST-LAST` with 1 <= FIRST <= LAST <=
/// 65535. Throws UsageError saying what it expected.
std::pair<int, int> parse_port_range(std::string_view text);

/// The port of a `tcp://HOST:PORT` endpoint; -1 when it has none.
int port_of(std::string_view endpoint);

}  // namespace ipp::net
