#include "plugin_distributor.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/net/message.hpp"
#include "ipp/runtime/plugin_loader.hpp"
#include "replies.hpp"

namespace ipp::ctrl {

PluginDistributor::PluginDistributor(std::filesystem::path store_dir, bool restore)
    : store_(std::move(store_dir)), manifest_(store_.dir() / "pushed.txt") {
  if (!restore) return;
  std::ifstream in(manifest_);
  for (std::string hash; std::getline(in, hash);) {
    const auto path = store_.path_for(hash);
    std::ifstream file(path, std::ios::binary);
    if (!file) {
      spdlog::warn("restore: pushed plugin {} is missing from {}", hash, path.string());
      continue;
    }
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                                    std::istreambuf_iterator<char>());
    plugins_.push_back(
        {StoredPlugin{hash, path}, encode(Value(Bytes{Buffer::adopt(std::move(bytes))}))});
  }
  spdlog::info("restore: {} pushed plugin(s)", plugins_.size());
}

net::Envelope PluginDistributor::push_message(const Target& engine, const Stored& plugin,
                                              const std::string& push_id) const {
  net::Header h;
  h.type = net::MsgType::PluginPush;
  h.msg_id = push_id;
  h.info = Value::map({{"hash", plugin.stored.hash}});
  net::Envelope env = net::make_message(h, plugin.file);
  env.route = net::copy_route(*engine.route);
  return env;
}

std::vector<net::Envelope> PluginDistributor::push(const net::Envelope& request,
                                                   const net::Header& h,
                                                   const std::vector<Target>& targets) {
  std::vector<net::Envelope> out;
  net::Header r = reply_header(net::MsgType::PushReply, h.msg_id);
  try {
    Payload payload = net::payload_of(request);
    const Value file = decode(payload);
    const auto& bytes = file.as_bytes().data;
    // Check the file without loading it: the controller never runs plugin code.
    const StoredPlugin stored = store_.store_bytes(bytes.bytes());
    try {
      LoadedPlugin::validate_file(stored.path);
    } catch (...) {
      std::error_code ec;
      std::filesystem::remove(stored.path, ec);
      throw;
    }
    auto known = std::find_if(plugins_.begin(), plugins_.end(),
                              [&](const Stored& p) { return p.stored.hash == stored.hash; });
    if (known == plugins_.end()) {
      names_.clear();
      plugins_.push_back({stored, std::move(payload)});
      known = std::prev(plugins_.end());
      std::ofstream(manifest_, std::ios::app) << stored.hash << "\n";
    }
    Push p;
    p.client = net::copy_route(request.route);
    p.request_id = h.msg_id;
    p.name = h.task;
    const std::string push_id = net::new_id();
    for (const auto& t : targets) {
      p.waiting.insert(t.id);
      out.push_back(push_message(t, *known, push_id));
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

std::vector<net::Envelope> PluginDistributor::replay_to(const Target& engine,
                                                        std::set<std::string>& awaiting) {
  std::vector<net::Envelope> out;
  for (const auto& p : plugins_) {
    const std::string push_id = net::new_id();
    awaiting.insert(push_id);
    out.push_back(push_message(engine, p, push_id));
  }
  return out;
}

std::vector<net::Envelope> PluginDistributor::loaded(const net::Header& h) {
  std::vector<net::Envelope> out;
  if (h.info.kind() == Value::Kind::map && h.info.as_map().count("hash")) {
    described_[h.info["hash"].as_string()] = h.info;
    names_.clear();
  }
  auto it = pushes_.find(h.parent_id);
  if (it != pushes_.end() && it->second.waiting.erase(h.engine) != 0) {
    it->second.results[std::to_string(h.engine)] = h.error ? Value(h.error->message) : Value("ok");
    if (h.error) it->second.errors.push_back(*h.error);
    finish(h.parent_id, out);
  }
  return out;
}

std::vector<net::Envelope> PluginDistributor::engine_gone(std::int64_t id, const std::string& why) {
  std::vector<net::Envelope> out;
  const std::string message = fmt::format("engine {} {}", id, why);
  std::vector<std::string> done;
  for (auto& [push_id, p] : pushes_) {
    if (p.waiting.erase(id) != 0) {
      p.results[std::to_string(id)] = Value(message);
      p.errors.push_back(make_error_record(ErrorCode::engine, message, "", id));
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
  net::Header r = reply_header(net::MsgType::PushReply, p.request_id);
  r.info = Value::map({{"name", p.name}, {"engines", Value(p.results)}});
  if (!p.errors.empty()) {
    std::string msg = fmt::format("{} of {} engines failed to load the plugin", p.errors.size(),
                                  p.results.size());
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
  for (auto p = plugins_.rbegin(); p != plugins_.rend(); ++p) {
    auto d = described_.find(p->stored.hash);
    if (d == described_.end()) continue;
    const std::string& pname = d->second["name"].as_string();
    if (dot != std::string::npos) {
      if (task.compare(0, dot, pname) == 0) return {pname, p->stored.hash};
      continue;
    }
    for (const auto& t : d->second["tasks"].as_list()) {
      if (t["name"].as_string() == task) return {pname, p->stored.hash};
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
  for (const auto& p : plugins_) {
    auto d = described_.find(p.stored.hash);
    list.push_back(
        d != described_.end()
            ? d->second
            : Value::map({{"hash", p.stored.hash}, {"name", "(not loaded by any engine yet)"}}));
  }
  return Value(std::move(list));
}

}  // namespace ipp::ctrl
