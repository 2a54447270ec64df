// ippctl's namespace commands: execute, pull, set, scatter, gather, clear.

#include <memory>

#include <fmt/format.h>

#include "arguments.hpp"
#include "globals.hpp"
#include "ipp/detail/identifier.hpp"
#include "output.hpp"

namespace ipp::ctl {

namespace {

struct NamespaceArgs {
  std::string code, name, assignment;
  Targets targets;
};

/// Runs `request(view)` on the target engines and prints its result (`quiet`: only with --json).
template <typename Request>
int on_targets(const Globals& g, const NamespaceArgs& a, bool quiet, Request request) {
  Submission s(g);
  DirectView view = a.targets.view(s.client());
  s.finish(request(view), quiet);
  return kOk;
}

}  // namespace

void add_namespace_commands(CLI::App& app, Globals& g) {
  auto a = std::make_shared<NamespaceArgs>();
  auto* execute = app.add_subcommand("execute", "Run statements in each target engine's namespace");
  execute->add_option("CODE", a->code, "Statements, e.g. \"import sysinfo; a = sysinfo.getpid()\"")
      ->required();
  a->targets.add_to(execute);
  on(execute, g, [&g, a] {
    return on_targets(g, *a, true, [&](DirectView& v) { return v.execute(a->code); });
  });

  auto* pull = app.add_subcommand("pull", "Print the value bound to NAME on each target engine");
  pull->add_option("NAME", a->name, "A name in the engines' namespaces")->required();
  a->targets.add_to(pull);
  on(pull, g, [&g, a] {
    return on_targets(g, *a, false, [&](DirectView& v) { return v.pull_async(a->name); });
  });

  auto* set = app.add_subcommand("set", "Bind NAME to a value on each target engine");
  set->add_option("NAME=LITERAL", a->assignment, "e.g. a=5, xs=1..100, s=\"text\"")->required();
  a->targets.add_to(set);
  on(set, g, [&g, a] {
    return on_targets(g, *a, true, [&](DirectView& v) {
      const auto eq = a->assignment.find('=');
      if (eq == std::string::npos || !detail::is_identifier(a->assignment.substr(0, eq)))
        throw UsageError(fmt::format(
            "expected NAME=LITERAL with NAME a name like x or n_2, got '{}'", a->assignment));
      return v.push_async({{a->assignment.substr(0, eq), argument(a->assignment.substr(eq + 1))}});
    });
  });

  auto* scatter =
      app.add_subcommand("scatter", "Split a sequence into one block per target engine");
  scatter->add_option("NAME", a->name, "The name each engine binds its block to")->required();
  scatter->add_option("SEQ", a->assignment, "A sequence: 1..100, '[1, 2, 3]'")->required();
  a->targets.add_to(scatter);
  on(scatter, g, [&g, a] {
    return on_targets(g, *a, true, [&](DirectView& v) {
      return v.scatter_async(a->name, argument(a->assignment));
    });
  });

  auto* gather = app.add_subcommand("gather", "Join NAME's blocks from the target engines");
  gather->add_option("NAME", a->name, "A name bound on every target engine")->required();
  a->targets.add_to(gather);
  on(gather, g, [&g, a] {
    return on_targets(g, *a, false, [&](DirectView& v) { return v.gather_async(a->name); });
  });

  auto* clear = app.add_subcommand("clear", "Empty the target engines' namespaces");
  a->targets.add_to(clear);
  on(clear, g,
     [&g, a] { return on_targets(g, *a, true, [](DirectView& v) { return v.clear_async(); }); });
}

}  // namespace ipp::ctl
