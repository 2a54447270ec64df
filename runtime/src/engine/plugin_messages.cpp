#include "plugin_messages.hpp"

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "ipp/codec.hpp"
#include "ipp/error.hpp"
#include "ipp/net/message.hpp"
#include "ipp/runtime/runtime.hpp"
#include "load_watchdog.hpp"

namespace ipp::engine {

namespace {

/// What a PluginPush `h` says of the controller's load time-out (30 s when it says nothing).
std::chrono::milliseconds load_timeout_of(const net::Header& h) {
  if (h.info.kind() == Value::Kind::map) {
    const auto& m = h.info.as_map();
    const auto it = m.find("load_timeout_ms");
    if (it != m.end() && it->second.kind() == Value::Kind::integer && it->second.as_int() > 0)
      return std::chrono::milliseconds(it->second.as_int());
  }
  return std::chrono::seconds(30);
}

/// The plugin a PluginPush `h` carries, for the log: its hash, cut.
std::string plugin_of(const net::Header& h) {
  if (h.info.kind() != Value::Kind::map) return "(unnamed)";
  const auto& m = h.info.as_map();
  const auto it = m.find("hash");
  if (it == m.end() || it->second.kind() != Value::Kind::string) return "(unnamed)";
  return it->second.as_string().substr(0, 12);
}

net::Header answer_to(const net::Header& h, std::int64_t engine) {
  net::Header r;
  r.type = net::MsgType::PluginLoaded;
  r.msg_id = net::new_id();
  r.parent_id = h.msg_id;
  r.engine = engine;
  return r;
}

}  // namespace

net::Header load_pushed(Runtime& runtime, std::int64_t engine, const net::Header& h,
                        const net::Envelope& env) {
  net::Header r = answer_to(h, engine);
  try {
    const Value file = decode(net::payload_of(env));
    const auto& bytes = file.as_bytes().data;
    std::shared_ptr<const LoadedPlugin> plugin;
    {
      LoadWatchdog guard(engine, LoadWatchdog::limit_for(load_timeout_of(h)), plugin_of(h));
      plugin = runtime.load_bytes(bytes.bytes());
    }
    Value::List tasks;
    for (const auto& t : plugin->tasks())
      tasks.push_back(Value::map({{"name", t.name}, {"signature", t.signature}, {"doc", t.doc}}));
    r.info = Value::map({{"name", plugin->name()},
                         {"version", plugin->version()},
                         {"hash", plugin->hash()},
                         {"tasks", Value(std::move(tasks))}});
  } catch (const Error& e) {
    r.error = make_error_record(e.code(), e.what(), {}, engine);
    spdlog::warn("plugin push refused: {}", e.what());
  }
  return r;
}

net::Header unload_pushed(Runtime& runtime, std::int64_t engine, const net::Header& h) {
  net::Header r = answer_to(h, engine);
  r.info = Value::map({{"name", h.task}, {"unloaded", runtime.unload(h.task)}});
  return r;
}

}  // namespace ipp::engine
