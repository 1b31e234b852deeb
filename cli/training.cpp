#include "cli/training.h"

#include <iostream>

#include "cli/command.h"
#include "cli/errors.h"
#include "cli/run/data_parallel.h"
#include "cli/run/signals.h"

namespace dl::cli {

Config checkpoint_config(const Checkpoint& ckpt, const std::string& path, const std::string& config_path,
                         const std::vector<std::string>& overrides) {
  if (!config_path.empty()) return load_config(config_path, overrides);
  if (ckpt.config_yaml.empty())
    throw CheckpointError(path, "has no embedded /config (a weights-only file): pass --config RECIPE");
  return load_config_string(ckpt.config_yaml, path + ":/config", overrides);
}

void prepare_resume(const Config& cfg, const std::string& path, train::RunOptions& opt) {
  Checkpoint ckpt = load_checkpoint(path);
  if (ckpt.config_yaml.empty())
    throw CheckpointError(path, "has no /config: it is a weights-only file; use --init-from to start from its weights");
  Config saved = load_config_string(ckpt.config_yaml, path + ":/config");
  std::vector<std::string> applied;
  std::vector<std::string> refused = train::compare_resume_configs(saved.resolved_yaml, cfg.resolved_yaml, applied);
  if (!refused.empty()) {
    std::vector<Diagnostic> ds;
    for (const std::string& r : refused) {
      Diagnostic d;
      d.loc.file = cfg.source_path;
      d.path = r.substr(0, r.find(':'));
      d.message = "cannot change on resume (it alters the model, the data order or the optimisation):" + r.substr(r.find(':') + 1);
      d.hint = "resume with the checkpoint's value, or start a new run with --init-from " + path;
      ds.push_back(d);
    }
    throw ConfigError(ds);
  }
  for (const std::string& a : applied) std::cout << "resume: applying changed setting " << a << "\n";
  opt.resume_from = std::move(ckpt);
  opt.resume_path = path;
}

namespace {

int train_here(Config cfg, train::RunOptions opt) {
  try {
    train::Trainer trainer(std::move(cfg), std::move(opt));
    train::RunResult r = trainer.run();
    if (r.exit_code == kExitTempFail)
      std::cerr << "stopped by " << train::signal_name(r.stop_signal) << " after a checkpoint: exit 75 (safe to requeue; "
                << "continue with --resume auto)\n";
    return r.exit_code;
  } catch (const train::NonFiniteLossError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace

int run_training(Config cfg, train::RunOptions opt) {
  opt.dist_env = dist::detect_env();
  opt.group = train::init_data_parallel(cfg, opt.dist_env);
  if (!opt.group) return train_here(std::move(cfg), std::move(opt));
  // Data-parallel: a rank that fails reports why and ends every rank of the job (MPI_Abort), so
  // none is left waiting in a collective for it.
  dist::ProcessGroupPtr group = opt.group;
  const int code = run_guarded([&] { return train_here(std::move(cfg), std::move(opt)); });
  if (code != 0 && code != kExitTempFail) {
    std::cerr << "error: rank " << group->rank() << " of " << group->world_size() << " failed (exit " << code
              << "): ending every rank of the job\n";
    group->abort(code);
  }
  return code;
}

}  // namespace dl::cli
