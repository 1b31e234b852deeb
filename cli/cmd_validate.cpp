// dltool validate CONFIG: parse and resolve the config, infer every layer's shapes and the
// parameter count, estimate the memory training needs; print the layer table and the estimate
// (or --json). Nothing is allocated for the model and no data is read beyond the image file's
// header, so a model of any size is checked in milliseconds; one that cannot fit in the
// available memory is an error (exit 2), as it would be for `dltool train`.
#include <iostream>

#include "cli/command.h"
#include "configs/config.h"
#include "cli/run/setup.h"
#include "exporters/json.h"

namespace dl::cli {
namespace {

struct ValidateArgs {
  std::string config;
  std::vector<std::string> overrides;
  bool print = false;
  bool json = false;
};

std::string validate_json(const Config& cfg, const Shape& sample, const std::vector<NodeSummary>& nodes,
                          const MemoryEstimate& e, const std::optional<AvailableMemory>& avail) {
  json::Array layers;
  for (const NodeSummary& n : nodes) {
    json::Array inputs;
    for (const std::string& in : n.inputs) inputs.push(in);
    layers.push(json::Object()
                    .add("name", n.name).add("type", n.type).add("inputs", inputs)
                    .add("output_shape", json::Array::of(n.output_shape)).add("params", n.num_params));
  }
  json::Object mem;
  mem.add("batch_size", e.batch_size).add("eval_batch_size", e.eval_batch_size).add("weights_bytes", e.weights).add("gradients_bytes", e.gradients)
      .add("optimizer_state_bytes", e.optimizer_state).add("activations_bytes", e.activations)
      .add("total_bytes", e.total());
  if (avail) mem.add("available_bytes", avail->bytes).add("available_source", avail->source);
  mem.add("fits", !avail || e.total() <= avail->bytes);
  return json::Object()
      .add("config", cfg.source_path).add("name", cfg.name).add("input_shape", json::Array::of(sample))
      .add("layers", layers).add("parameters", e.num_params).add("memory", mem).str();
}

std::function<int()> setup_validate(CLI::App& sub) {
  auto args = std::make_shared<ValidateArgs>();
  sub.add_option("config", args->config, "recipe YAML file")->required();
  sub.add_option("overrides", args->overrides, "key=value overrides, e.g. optimizer.lr=0.05");
  sub.add_flag("--print", args->print, "print the resolved config (extends, overrides and defaults applied)");
  sub.add_flag("--json", args->json, "print the layer table and the memory estimate as one JSON object");
  return [args]() -> int {
    Config cfg = load_config(args->config, args->overrides);
    if (args->print) {
      std::cout << cfg.resolved_yaml;
      return kExitOk;
    }
    const train::ModelData data = train::peek_model_data(cfg);
    const Shape& sample = data.input.shape;
    const ModelSpec spec = train::resolve_model_spec(cfg, data.num_classes);
    train::check_model_inputs(cfg, spec, data);
    std::vector<NodeSummary> nodes = infer_model_shapes_of_inputs(spec, data.inputs());
    MemoryEstimate e = train::estimate_memory(cfg, nodes, sample);
    std::optional<AvailableMemory> avail = available_memory(Device::parse(cfg.train.device));
    if (args->json) {
      std::cout << validate_json(cfg, sample, nodes, e, avail) << "\n";
    } else {
      std::cout << cfg.source_path << ": " << (!avail || e.total() <= avail->bytes ? "OK" : "does not fit") << " ("
                << cfg.name << ")\n\n" << format_summary(nodes, sample)
                << "Training memory estimate: " << format_bytes(e.total()) << " (" << describe_parts(e) << ")\n";
      if (avail) std::cout << "Available: " << format_bytes(avail->bytes) << " (" << avail->source << ")\n";
    }
    train::check_memory_fits(cfg, e);
    return kExitOk;
  };
}

}  // namespace

DL_REGISTER_COMMAND(validate, "validate",
                    "Check a recipe: schema, shapes, parameter count and memory estimate (no training)",
                    setup_validate);

}  // namespace dl::cli
