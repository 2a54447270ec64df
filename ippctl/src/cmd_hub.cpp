// ippctl's commands on the hub's task database: history, result, resubmit, query, purge.

#include <iostream>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "arguments.hpp"
#include "globals.hpp"
#include "output.hpp"

namespace ipp::ctl {

namespace {

struct HubArgs {
  std::int64_t limit = 0;
  std::vector<std::string> msg_ids, conditions;
  std::string keys;
  double older_than = -1;
  bool purge_all = false;
};

int query(const Globals& g, const HubArgs& a) {
  Client rc = g.client();
  std::vector<DbCondition> where;
  for (const auto& c : a.conditions)
    where.push_back(DbCondition::parse(c));
  std::vector<std::string> key_list;
  std::stringstream ks(a.keys);
  for (std::string k; std::getline(ks, k, ',');) {
    if (!k.empty()) key_list.push_back(k);
  }
  const Value rows = rc.db_query(where, key_list, a.limit);
  if (g.json) {
    print(g, rows);
  } else {
    for (const auto& row : rows.as_list())
      std::cout << row.repr() << "\n";
  }
  return kOk;
}

int purge(const Globals& g, const HubArgs& a) {
  Client rc = g.client();
  const int forms =
      (a.msg_ids.empty() ? 0 : 1) + (a.older_than >= 0 ? 1 : 0) + (a.purge_all ? 1 : 0);
  if (forms != 1) throw UsageError("purge takes msg_ids, --older-than SECONDS, or --all");
  std::int64_t purged = 0;
  if (!a.msg_ids.empty())
    purged = rc.purge_results(a.msg_ids);
  else if (a.purge_all)
    purged = rc.purge_all_results();
  else
    purged =
        rc.purge_results_before(std::chrono::system_clock::now() -
                                std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                    std::chrono::duration<double>(a.older_than)));
  if (g.json)
    print_json(json{{"purged", purged}});
  else
    std::cout << fmt::format("{} record{} removed\n", purged, purged == 1 ? "" : "s");
  return kOk;
}

}  // namespace

void add_hub_commands(CLI::App& app, Globals& g) {
  auto a = std::make_shared<HubArgs>();
  auto* history = app.add_subcommand("history", "Msg ids of recorded tasks, oldest first");
  history->add_option("--limit", a->limit, "Only the last N")->check(CLI::NonNegativeNumber);
  on(history, g, [&g, a] {
    print(g, Value(g.client().hub_history(a->limit)));
    return kOk;
  });

  auto* result = app.add_subcommand("result", "The result of a recorded task, from any client");
  result->add_option("MSG_ID", a->msg_ids, "A msg_id (as printed by --json)")->required();
  on(result, g, [&g, a] {
    Client rc = g.client();
    if (a->msg_ids.size() != 1) throw UsageError("result takes one msg_id");
    print(g, rc.get_result(a->msg_ids[0], Duration(g.timeout_ms)));
    return kOk;
  });

  auto* resubmit = app.add_subcommand("resubmit", "Run recorded tasks again with their arguments");
  resubmit->add_option("MSG_ID", a->msg_ids, "msg_ids")->required();
  on(resubmit, g, [&g, a] {
    Submission s(g);
    s.finish(s.client().resubmit(a->msg_ids), false);
    return kOk;
  });

  auto* query_cmd = app.add_subcommand("query", "Recorded tasks matching every condition");
  query_cmd->add_option(
      "CONDITION", a->conditions,
      "FIELD OP VALUE, OP one of == != < <= > >= in glob, e.g. 'task glob arith.*'");
  query_cmd->add_option("--keys", a->keys, "Fields to show, e.g. status,engine (default: all)");
  query_cmd->add_option("--limit", a->limit, "At most N records")->check(CLI::NonNegativeNumber);
  on(query_cmd, g, [&g, a] { return query(g, *a); });

  auto* purge_cmd = app.add_subcommand("purge", "Remove task records");
  purge_cmd->add_option("MSG_ID", a->msg_ids, "msg_ids to remove");
  purge_cmd->add_option("--older-than", a->older_than, "Remove finished records older than SECONDS")
      ->check(kSeconds);
  purge_cmd->add_flag("--all", a->purge_all, "Remove every finished record");
  on(purge_cmd, g, [&g, a] { return purge(g, *a); });
}

}  // namespace ipp::ctl
