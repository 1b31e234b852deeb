// dltool train CONFIG [key=value ...]: train a recipe and report the test accuracy.
#include <iostream>

#include "cli/command.h"
#include "configs/config.h"
#include "engine/train/trainer.h"

namespace dl::cli {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string run_dir;
  bool quiet = false;
  std::string log_format = "auto";
};

std::function<int()> setup_train(CLI::App& sub) {
  auto a = std::make_shared<TrainArgs>();
  sub.add_option("config", a->config, "recipe YAML file")->required()->check(CLI::ExistingFile);
  sub.add_option("overrides", a->overrides, "key=value overrides, e.g. optimizer.lr=0.05 train.epochs=3");
  sub.add_option("--run-dir", a->run_dir, "output directory (default: runs/<recipe name>)");
  sub.add_flag("--quiet", a->quiet, "print only errors and the final result");
  sub.add_option("--log-format", a->log_format, "auto (progress bar on a TTY, plain lines otherwise), plain or json")
      ->check(CLI::IsMember({"auto", "plain", "json"}));
  return [a] {
    Config cfg = load_config(a->config, a->overrides);
    train::RunOptions opt;
    opt.run_dir = a->run_dir;
    using Mode = exporters::ProgressReporter::Mode;
    opt.mode = a->quiet ? Mode::quiet : a->log_format == "json" ? Mode::json : Mode::human;
    opt.tty = a->log_format == "auto" && exporters::ProgressReporter::stdout_is_tty();
    try {
      train::Trainer trainer(std::move(cfg), opt);
      trainer.run();
    } catch (const train::NonFiniteLossError& e) {
      std::cerr << "error: " << e.what() << "\n";
      return kExitFailure;
    }
    return kExitOk;
  };
}

}  // namespace

DL_REGISTER_COMMAND(train, "train", "Train a model from a YAML recipe", setup_train);

}  // namespace dl::cli
