#include "plugin_distributor.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/net/message.hpp"
#include "ipp/runtime/plugin_file.hpp"
#include "replies.hpp"

namespace ipp::ctrl {

PluginDistributor::PluginDistributor(std::filesystem::path store_dir, bool restore,
                                     Clock::duration load_timeout)
    : store_(std::move(store_dir)),
      load_timeout_(load_timeout),
      manifest_(store_.dir() / "pushed.txt") {
  if (restore)
    load_manifest();
  else
    save();  // a fresh controller starts with no pushed plugins
}

// The manifest: one active build per line, "HASH<TAB>NAME" (older files: "HASH").
void PluginDistributor::load_manifest() {
  std::ifstream in(manifest_);
  for (std::string line; std::getline(in, line);) {
    const auto tab = line.find('\t');
    const std::string hash = line.substr(0, tab);
    const std::string name = tab == std::string::npos ? std::string() : line.substr(tab + 1);
    if (hash.empty()) continue;
    const auto path = store_.path_for(hash);
    std::ifstream file(path, std::ios::binary);
    if (!file) {
      spdlog::warn("restore: pushed plugin {} is missing from {}", hash, path.string());
      continue;
    }
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                                    std::istreambuf_iterator<char>());
    plugins_.push_back(
        {StoredPlugin{hash, path}, encode(Value(Bytes{Buffer::adopt(std::move(bytes))})), name});
    history_.push_back(hash);
  }
  spdlog::info("restore: {} pushed plugin(s)", plugins_.size());
}

void PluginDistributor::save() const {
  const auto tmp = manifest_.parent_path() / (manifest_.filename().string() + ".tmp");
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& p : plugins_)
      out << p.stored.hash << '\t' << p.name << '\n';
    out.close();
    if (!out) {
      spdlog::error("cannot write the list of pushed plugins to {}", tmp.string());
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, manifest_, ec);
  if (ec) spdlog::error("cannot write {}: {}", manifest_.string(), ec.message());
}

void PluginDistributor::activate(Stored plugin) {
  if (std::find(history_.begin(), history_.end(), plugin.stored.hash) == history_.end())
    history_.push_back(plugin.stored.hash);
  std::erase_if(plugins_, [&](const Stored& p) {
    return p.stored.hash == plugin.stored.hash || (!plugin.name.empty() && p.name == plugin.name);
  });
  plugins_.push_back(std::move(plugin));
  names_.clear();
  save();
}

void PluginDistributor::deactivate(const std::string& hash, const std::string& why,
                                   spdlog::level::level_enum level) {
  const auto n = std::erase_if(plugins_, [&](const Stored& p) { return p.stored.hash == hash; });
  if (n == 0) return;
  spdlog::log(level, "plugin {} is no longer sent to engines that register: {}", hash.substr(0, 12),
              why);
  names_.clear();
  save();
}

net::Envelope PluginDistributor::push_message(const Target& engine, const Stored& plugin,
                                              const std::string& push_id) const {
  net::Header h;
  h.type = net::MsgType::PluginPush;
  h.msg_id = push_id;
  // The engine ends itself when loading outlasts this by half again (an initializer that
  // hangs), to be restarted without the plugin.
  h.info =
      Value::map({{"hash", plugin.stored.hash},
                  {"load_timeout_ms",
                   std::chrono::duration_cast<std::chrono::milliseconds>(load_timeout_).count()}});
  net::Envelope env = net::make_message(h, plugin.file);
  env.route = net::copy_route(*engine.route);
  return env;
}

std::vector<net::Envelope> PluginDistributor::push(const net::Envelope& request,
                                                   const net::Header& h,
                                                   const std::vector<Target>& targets,
                                                   Clock::time_point now) {
  std::vector<net::Envelope> out;
  net::Header r = reply_header(net::MsgType::PushReply, h.msg_id);
  try {
    Payload payload = net::payload_of(request);
    const Value file = decode(payload);
    const auto& bytes = file.as_bytes().data;
    // Refusals name the file as the user knows it, not the store's hash.
    std::string shown = h.task + ".so";
    if (h.info.kind() == Value::Kind::map && h.info.as_map().contains("file") &&
        h.info["file"].kind() == Value::Kind::string)
      shown = h.info["file"].as_string();
    // Check the file without loading it: the controller never runs plugin code.
    const StoredPlugin stored = store_.store_bytes(bytes.bytes());
    try {
      validate_plugin_file(stored.path, shown);
    } catch (...) {
      std::error_code ec;
      std::filesystem::remove(stored.path, ec);
      throw;
    }
    // The last build pushed is the one replayed, also when an older one is pushed again.
    std::string name = h.task;
    if (auto d = described_.find(stored.hash); d != described_.end())
      name = d->second["name"].as_string();
    activate({stored, std::move(payload), name});
    const Stored& active = plugins_.back();
    Push p;
    p.client = net::copy_route(request.route);
    p.request_id = h.msg_id;
    p.name = h.task;
    p.hash = stored.hash;
    p.deadline = now + load_timeout_;
    const std::string push_id = net::new_id();
    for (const auto& t : targets) {
      p.waiting.insert(t.id);
      out.push_back(push_message(t, active, push_id));
    }
    spdlog::info("plugin {} ({}) pushed to {} engine(s)", h.task, stored.hash.substr(0, 12),
                 p.waiting.size());
    pushes_.emplace(push_id, std::move(p));
    finish(push_id, out);  // at once when there are no engines
    return out;
  } catch (const Error& e) {
    r.error = make_error_record(e.code(), e.what());
  } catch (const std::exception& e) {
    r.error = make_error_record(ErrorCode::plugin_load,
                                fmt::format("cannot store the plugin: {}", e.what()));
  }
  net::Envelope reply = net::make_message(r);
  reply.route = net::copy_route(request.route);
  out.push_back(std::move(reply));
  return out;
}

std::vector<net::Envelope> PluginDistributor::unload(const net::Envelope& request,
                                                     const net::Header& h,
                                                     const std::vector<Target>& targets,
                                                     Clock::time_point now) {
  std::vector<net::Envelope> out;
  auto it = std::find_if(plugins_.begin(), plugins_.end(),
                         [&](const Stored& p) { return p.name == h.task; });
  if (it == plugins_.end()) {
    std::string active;
    for (const auto& p : plugins_)
      active += (active.empty() ? "" : ", ") + p.name;
    net::Header r = reply_header(net::MsgType::PushReply, h.msg_id);
    r.error = make_error_record(
        ErrorCode::usage,
        fmt::format("no plugin named '{}' is loaded (loaded: {})", net::shown_task_name(h.task),
                    active.empty() ? "none" : active));
    net::Envelope reply = net::make_message(r);
    reply.route = net::copy_route(request.route);
    out.push_back(std::move(reply));
    return out;
  }
  Push p;
  p.client = net::copy_route(request.route);
  p.request_id = h.msg_id;
  p.name = h.task;
  p.hash = it->stored.hash;
  p.deadline = now + load_timeout_;
  p.unload = true;
  deactivate(p.hash, "it was unloaded", spdlog::level::info);
  const std::string push_id = net::new_id();
  for (const auto& t : targets) {
    p.waiting.insert(t.id);
    net::Header u;
    u.type = net::MsgType::PluginUnload;
    u.msg_id = push_id;
    u.task = h.task;
    net::Envelope env = net::make_message(u);
    env.route = net::copy_route(*t.route);
    out.push_back(std::move(env));
  }
  spdlog::info("plugin {} ({}) unloaded from {} engine(s)", h.task, p.hash.substr(0, 12),
               p.waiting.size());
  pushes_.emplace(push_id, std::move(p));
  finish(push_id, out);  // at once when there are no engines
  return out;
}

std::vector<net::Envelope> PluginDistributor::expire(Clock::time_point now) {
  std::vector<net::Envelope> out;
  std::vector<std::string> due;
  for (auto& [push_id, p] : pushes_) {
    if (now < p.deadline || p.waiting.empty()) continue;
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(load_timeout_).count();
    for (const auto id : p.waiting) {
      const std::string message =
          fmt::format("engine {} did not finish loading the plugin within {} s", id, seconds);
      p.results[std::to_string(id)] = Value(message);
      p.errors.push_back(make_error_record(ErrorCode::plugin_load, message, "", id));
      ++p.faults;
    }
    p.waiting.clear();
    due.push_back(push_id);
  }
  for (const auto& id : due)
    finish(id, out);
  return out;
}

std::vector<net::Envelope> PluginDistributor::replay_to(const Target& engine,
                                                        std::set<std::string>& awaiting) {
  std::vector<net::Envelope> out;
  auto& pending = replaying_[engine.id];
  pending.clear();
  for (const auto& p : plugins_) {
    const std::string push_id = net::new_id();
    awaiting.insert(push_id);
    pending.push_back({push_id, p.stored.hash});
    out.push_back(push_message(engine, p, push_id));
  }
  return out;
}

std::vector<net::Envelope> PluginDistributor::loaded(const net::Header& h) {
  std::vector<net::Envelope> out;
  if (h.info.kind() == Value::Kind::map && h.info.as_map().count("hash") &&
      h.info.as_map().count("name")) {
    const std::string hash = h.info["hash"].as_string();
    described_[hash] = h.info;
    names_.clear();
    // Now that its real name is known, older builds of that name leave the replay set.
    auto it = std::find_if(plugins_.begin(), plugins_.end(),
                           [&](const Stored& p) { return p.stored.hash == hash; });
    if (it != plugins_.end() && it->name != h.info["name"].as_string()) {
      if (std::next(it) == plugins_.end()) {  // the last pushed: the active build of its name
        Stored named = *it;
        named.name = h.info["name"].as_string();
        activate(std::move(named));
      } else {  // an older build described late keeps its place
        it->name = h.info["name"].as_string();
        save();
      }
    }
  }
  if (auto r = replaying_.find(h.engine); r != replaying_.end()) {
    std::erase_if(r->second, [&](const Replay& p) { return p.push_id == h.parent_id; });
    if (r->second.empty()) replaying_.erase(r);
  }
  auto it = pushes_.find(h.parent_id);
  if (it != pushes_.end() && it->second.waiting.erase(h.engine) != 0) {
    it->second.results[std::to_string(h.engine)] = h.error ? Value(h.error->message) : Value("ok");
    if (h.error) {
      it->second.errors.push_back(*h.error);
      ++it->second.faults;
    }
    finish(h.parent_id, out);
  }
  return out;
}

std::vector<net::Envelope> PluginDistributor::engine_gone(std::int64_t id, const std::string& why,
                                                          bool crashed) {
  std::vector<net::Envelope> out;
  if (auto r = replaying_.find(id); r != replaying_.end()) {
    // It crashed loading what it was sent as it registered: the first it had not acknowledged
    // took it down (it loads them in order). A removal, a kill from outside or a pause is not
    // the plugin's doing.
    if (!r->second.empty() && crashed)
      deactivate(r->second.front().hash, fmt::format("engine {} {} while loading it", id, why));
    replaying_.erase(r);
  }
  const std::string message = fmt::format("engine {} {}", id, why);
  std::vector<std::string> done;
  for (auto& [push_id, p] : pushes_) {
    if (p.waiting.erase(id) != 0) {
      p.results[std::to_string(id)] = Value(message);
      p.errors.push_back(make_error_record(ErrorCode::engine, message, "", id));
      if (crashed) ++p.faults;
      done.push_back(push_id);
    }
  }
  for (const auto& d : done)
    finish(d, out);
  return out;
}

void PluginDistributor::finish(const std::string& id, std::vector<net::Envelope>& out) {
  auto it = pushes_.find(id);
  if (it == pushes_.end() || !it->second.waiting.empty()) return;
  Push& p = it->second;
  // Failed on every engine that had it: a later engine would fail (or crash) on it too. An
  // engine killed from outside or lost to a pause says nothing of the plugin.
  if (!p.unload && !p.results.empty() && p.faults == p.results.size())
    deactivate(p.hash,
               fmt::format("it failed on every engine it was pushed to ({})", p.results.size()));
  net::Header r = reply_header(net::MsgType::PushReply, p.request_id);
  r.info = Value::map({{"name", p.name}, {"engines", Value(p.results)}});
  if (!p.errors.empty()) {
    std::string msg = fmt::format("{} of {} engines failed to {} the plugin", p.errors.size(),
                                  p.results.size(), p.unload ? "unload" : "load");
    for (const auto& err : p.errors)
      msg += fmt::format("\n  engine {}: {}", err.engine, err.message);
    r.error = make_error_record(ErrorCode::plugin_load, std::move(msg));
  }
  net::Envelope env = net::make_message(r);
  env.route = std::move(p.client);
  out.push_back(std::move(env));
  pushes_.erase(it);
}

std::pair<std::string, std::string> PluginDistributor::find_plugin(const std::string& task) const {
  const auto dot = task.find('.');
  for (auto hash = history_.rbegin(); hash != history_.rend(); ++hash) {
    auto d = described_.find(*hash);
    if (d == described_.end()) continue;
    const std::string& pname = d->second["name"].as_string();
    if (dot != std::string::npos) {
      if (task.compare(0, dot, pname) == 0) return {pname, *hash};
      continue;
    }
    for (const auto& t : d->second["tasks"].as_list()) {
      if (t["name"].as_string() == task) return {pname, *hash};
    }
  }
  return {};
}

std::pair<std::string, std::string> PluginDistributor::plugin_of(const std::string& task) {
  if (names_.size() > 4096) names_.clear();  // any name may come: stay bounded
  auto it = names_.find(task);
  if (it == names_.end()) it = names_.emplace(task, find_plugin(task)).first;
  return it->second;
}

Value PluginDistributor::describe() const {
  Value::List list;
  for (const auto& hash : history_) {
    auto d = described_.find(hash);
    Value entry = d != described_.end()
                      ? d->second
                      : Value::map({{"hash", hash}, {"name", "(not loaded by any engine yet)"}});
    entry.as_map()["active"] = std::any_of(plugins_.begin(), plugins_.end(),
                                           [&](const Stored& p) { return p.stored.hash == hash; });
    list.push_back(std::move(entry));
  }
  return Value(std::move(list));
}

}  // namespace ipp::ctrl
