// dltool: train, evaluate, resume, inspect and export deep-learning models from YAML recipes.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <iostream>
#include <stdexcept>

#include "cli/command.h"
#include "cli/errors.h"
#include "kernels/cpu/isa.h"

namespace dl::cli {

std::vector<Command>& registry() {
  static std::vector<Command> commands;
  return commands;
}

static size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_name(const std::string& word, const std::vector<std::string>& names) {
  std::string best;
  size_t best_d = 3;
  for (const auto& n : names) {
    size_t d = edit_distance(word, n);
    if (d < best_d || (best.empty() && !word.empty() && n.rfind(word, 0) == 0)) {
      best_d = std::min(d, best_d);
      best = n;
    }
  }
  return best;
}

}  // namespace dl::cli

int main(int argc, char** argv) {
  using namespace dl::cli;
  auto& cmds = registry();
  std::sort(cmds.begin(), cmds.end(), [](const Command& a, const Command& b) { return a.name < b.name; });
  std::vector<std::string> names;
  for (const auto& c : cmds) names.push_back(c.name);
  std::string valid;
  for (const auto& n : names) valid += (valid.empty() ? "" : ", ") + n;

  CLI::App app{"dltool " DLTOOL_VERSION " - deep-learning training from YAML recipes\n"
               "Run `dltool COMMAND --help` for the options of a command."};
  app.set_version_flag("--version", "dltool " DLTOOL_VERSION);
  app.require_subcommand(1);
  app.footer("Commands: " + valid + "\nExit codes: 0 done, 1 runtime failure, 2 usage/config error, "
             "75 stopped by a signal after a checkpoint (safe to requeue).");

  // An unknown first word is a wrong subcommand: say which ones exist.
  if (argc > 1 && argv[1][0] != '-' && std::find(names.begin(), names.end(), argv[1]) == names.end()) {
    std::cerr << "dltool: unknown command '" << argv[1] << "'.";
    std::string hint = closest_name(argv[1], names);
    if (!hint.empty()) std::cerr << " Did you mean '" << hint << "'?";
    std::cerr << "\nValid commands: " << valid << "\n";
    return kExitUsage;
  }

  std::function<int()> run;
  std::vector<std::pair<CLI::App*, std::function<std::function<int()>(CLI::App&)>>> subs;
  std::vector<std::function<int()>> runners(cmds.size());
  for (size_t i = 0; i < cmds.size(); ++i) {
    CLI::App* sub = app.add_subcommand(cmds[i].name, cmds[i].help);
    runners[i] = cmds[i].setup(*sub);
    sub->callback([&run, &runners, i] { run = runners[i]; });
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (!run) return kExitUsage;
  // Environment settings the kernels read lazily, checked before any work so that a bad value is
  // a usage error naming the variable (not a failure of whichever layer first runs the kernel).
  try {
    dl::cpu::cpu_isa();
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitUsage;
  }
  return run_guarded(run);
}
