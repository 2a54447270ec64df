#pragma once

// The engine's answers to the hub's plugin messages: a pushed file loaded (under a watchdog
// for initializers that hang) and described, or a plugin unloaded.

#include <cstdint>

#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"

namespace ipp {
class Runtime;
}

namespace ipp::engine {

/// The PluginLoaded answer to PluginPush `h` (its payload, in `env`: the file's bytes),
/// loaded into `runtime`: info {name, version, hash, tasks: [{name, signature, doc}]}, or the
/// error that refused the file. A load still running at LoadWatchdog::limit_for the time-out
/// the push carries ends the engine.
net::Header load_pushed(Runtime& runtime, std::int64_t engine, const net::Header& h,
                        const net::Envelope& env);

/// The PluginLoaded answer to PluginUnload `h` (the plugin named `h.task`): info {name,
/// unloaded: whether it was loaded}.
net::Header unload_pushed(Runtime& runtime, std::int64_t engine, const net::Header& h);

}  // namespace ipp::engine
