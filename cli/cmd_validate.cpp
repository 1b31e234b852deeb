// dltool validate CONFIG: parse, resolve and build the model; print the layer table. No data
// is loaded beyond the image file's header, nothing is trained.
#include <iostream>

#include "cli/command.h"
#include "configs/config.h"
#include "engine/train/setup.h"

namespace dl::cli {
namespace {

struct ValidateArgs {
  std::string config;
  std::vector<std::string> overrides;
  bool print = false;
};

std::function<int()> setup_validate(CLI::App& sub) {
  auto args = std::make_shared<ValidateArgs>();
  sub.add_option("config", args->config, "recipe YAML file")->required();
  sub.add_option("overrides", args->overrides, "key=value overrides, e.g. optimizer.lr=0.05");
  sub.add_flag("--print", args->print, "print the resolved config (extends, overrides and defaults applied)");
  return [args]() -> int {
    Config cfg = load_config(args->config, args->overrides);
    if (args->print) {
      std::cout << cfg.resolved_yaml;
      return kExitOk;
    }
    Shape sample = train::sample_shape_from_headers(cfg.data);
    auto model = train::build_model(cfg, sample, static_cast<uint64_t>(cfg.train.seed));
    std::cout << cfg.source_path << ": OK (" << cfg.name << ")\n\n" << format_summary(*model);
    return kExitOk;
  };
}

}  // namespace

DL_REGISTER_COMMAND(validate, "validate", "Check a recipe: schema, shapes and parameter count (no training)",
                    setup_validate);

}  // namespace dl::cli
