// dltool train CONFIG [key=value ...]: train a recipe and report the test accuracy.
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "cli/training.h"
#include "configs/config.h"

namespace dl::cli {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string run_dir;
  std::string resume;
  std::string init_from;
  bool no_strict = false;
  bool requeue = false;
  bool allow_world_size_change = false;
  bool quiet = false;
  std::string log_format = "auto";
};

std::function<int()> setup_train(CLI::App& sub) {
  auto a = std::make_shared<TrainArgs>();
  sub.add_option("config", a->config, "recipe YAML file")->required()->check(CLI::ExistingFile);
  sub.add_option("overrides", a->overrides, "key=value overrides, e.g. optimizer.lr=0.05 train.epochs=3");
  sub.add_option("--run-dir", a->run_dir, "output directory (default: runs/<recipe name>)");
  sub.add_option("--resume", a->resume,
                 "continue from a checkpoint: 'auto' = the run directory's checkpoints/last.h5 if there is one "
                 "(a fresh start otherwise), or a checkpoint path");
  sub.add_option("--init-from", a->init_from, "load initial weights (/model) from an .h5 checkpoint or weights file");
  sub.add_flag("--no-strict", a->no_strict, "with --init-from: allow missing/unexpected keys (load_state_dict(strict=False))");
  sub.add_flag("--requeue", a->requeue, "on SIGUSR1 under SLURM: checkpoint, then `scontrol requeue` the job");
  sub.add_flag("--allow-world-size-change", a->allow_world_size_change,
               "data-parallel: resume a checkpoint written by another number of ranks (not bit-exact)");
  sub.add_flag("--quiet", a->quiet, "print only errors and the final result");
  sub.add_option("--log-format", a->log_format, "auto (progress bar on a TTY, plain lines otherwise), plain or json")
      ->check(CLI::IsMember({"auto", "plain", "json"}));
  return [a]() -> int {
    Config cfg = load_config(a->config, a->overrides);
    train::RunOptions opt;
    opt.run_dir = a->run_dir.empty() ? "runs/" + cfg.name : a->run_dir;
    using Mode = exporters::ProgressReporter::Mode;
    opt.mode = a->quiet ? Mode::quiet : a->log_format == "json" ? Mode::json : Mode::human;
    opt.tty = a->log_format == "auto" && exporters::ProgressReporter::stdout_is_tty();
    opt.requeue = a->requeue;
    opt.allow_world_size_change = a->allow_world_size_change;
    opt.strict = !a->no_strict;
    if (!a->resume.empty() && !a->init_from.empty()) {
      std::cerr << "error: --resume and --init-from cannot be combined (a resume restores the weights)\n";
      return kExitUsage;
    }
    if (!a->resume.empty()) {
      std::string path = a->resume;
      if (path == "auto") {
        path = opt.run_dir + "/checkpoints/last.h5";
        if (!std::filesystem::exists(path)) {
          if (!a->quiet) std::cout << "resume auto: no checkpoint in " << opt.run_dir << "/checkpoints, starting fresh\n";
          path.clear();
        }
      } else {
        path = train::resolve_checkpoint_path(path);
      }
      if (!path.empty()) prepare_resume(cfg, path, opt);
    }
    if (!a->init_from.empty()) {
      Checkpoint w = load_checkpoint(a->init_from, /*weights_only=*/true);
      opt.init_weights = std::move(w.model);
      opt.init_path = a->init_from;
    }
    return run_training(std::move(cfg), std::move(opt));
  };
}

}  // namespace

DL_REGISTER_COMMAND(train, "train", "Train a model from a YAML recipe", setup_train);

}  // namespace dl::cli
