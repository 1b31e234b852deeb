// dltool resume RUN_DIR|CHECKPOINT [key=value ...]: continue a run from its checkpoint, with
// the checkpoint's own config (schedule keys such as train.epochs may be overridden).
#include <filesystem>

#include "cli/command.h"
#include "cli/training.h"

namespace dl::cli {
namespace {

struct ResumeArgs {
  std::string target;
  std::vector<std::string> overrides;
  std::string run_dir;
  bool requeue = false;
  bool allow_world_size_change = false;
  bool quiet = false;
  std::string log_format = "auto";
};

std::function<int()> setup_resume(CLI::App& sub) {
  auto a = std::make_shared<ResumeArgs>();
  sub.add_option("target", a->target, "a run directory (uses checkpoints/last.h5) or a checkpoint file")->required();
  sub.add_option("overrides", a->overrides, "key=value overrides of schedule keys, e.g. train.epochs=10");
  sub.add_option("--run-dir", a->run_dir, "output directory (default: the checkpoint's run directory)");
  sub.add_flag("--requeue", a->requeue, "on SIGUSR1 under SLURM: checkpoint, then `scontrol requeue` the job");
  sub.add_flag("--allow-world-size-change", a->allow_world_size_change,
               "data-parallel: resume a checkpoint written by another number of ranks (not bit-exact)");
  sub.add_flag("--quiet", a->quiet, "print only errors and the final result");
  sub.add_option("--log-format", a->log_format, "auto, plain or json")->check(CLI::IsMember({"auto", "plain", "json"}));
  return [a]() -> int {
    namespace fs = std::filesystem;
    std::string path = train::resolve_checkpoint_path(a->target);
    Checkpoint head = load_checkpoint(path, /*weights_only=*/true);
    if (head.config_yaml.empty())
      throw CheckpointError(path, "has no /config: it is a weights-only file; use `dltool train CONFIG --init-from` instead");
    Config cfg = load_config_string(head.config_yaml, path + ":/config", a->overrides);
    train::RunOptions opt;
    if (!a->run_dir.empty()) {
      opt.run_dir = a->run_dir;
    } else if (fs::is_directory(a->target)) {
      opt.run_dir = a->target;
    } else {
      fs::path dir = fs::absolute(path).parent_path();
      opt.run_dir = (dir.filename() == "checkpoints" ? dir.parent_path() : dir).string();
    }
    using Mode = exporters::ProgressReporter::Mode;
    opt.mode = a->quiet ? Mode::quiet : a->log_format == "json" ? Mode::json : Mode::human;
    opt.tty = a->log_format == "auto" && exporters::ProgressReporter::stdout_is_tty();
    opt.requeue = a->requeue;
    opt.allow_world_size_change = a->allow_world_size_change;
    prepare_resume(cfg, path, opt);
    return run_training(std::move(cfg), std::move(opt));
  };
}

}  // namespace

DL_REGISTER_COMMAND(resume, "resume", "Continue a run from its last checkpoint (RUN_DIR or CHECKPOINT)", setup_resume);

}  // namespace dl::cli
