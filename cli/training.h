// Shared by `dltool train` and `dltool resume`: resume/init-from preparation and the run.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "configs/config.h"
#include "cli/run/trainer.h"

namespace dl::cli {

// Loads the checkpoint at `path` for resuming a run of `cfg` (the config the user asks for).
// Refused differences (model, data order, optimisation) throw ConfigError naming each key and
// both values; applied ones (schedule, logging, checkpoint policy) are printed.
void prepare_resume(const Config& cfg, const std::string& path, train::RunOptions& opt);

// The config a checkpoint's weights belong to: `config_path` (with `overrides`) when given,
// else the config embedded in the checkpoint (a weights-only file without one is an error that
// says to pass --config). For eval and export.
Config checkpoint_config(const Checkpoint& ckpt, const std::string& path, const std::string& config_path,
                         const std::vector<std::string>& overrides);

// Runs the trainer; maps a non-finite loss to exit 1 and a signal stop to 75.
int run_training(Config cfg, train::RunOptions opt);

}  // namespace dl::cli
