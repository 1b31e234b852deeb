// The scheduler registry: every torch.optim.lr_scheduler scheduler dltool knows is ONE
// registration in the file that implements it (schema with docs, builder; state save/load is
// the class's own state_dict/load_state_dict):
//
//   namespace {
//   const RegisterScheduler reg({
//       "step", "StepLR", "StepLR: lr *= gamma every step_size steps",
//       {AttrSchema::integer("step_size").req().at_least(1).describe("period of lr decay"),
//        AttrSchema::floating("gamma", 0.1).above(0).describe("multiplicative factor")},
//       /*rule=*/nullptr,
//       [](optim::Optimizer& opt, const SchedulerConfig& c, const SchedulerContext&) {
//         return std::make_unique<StepLR>(opt, attr_int(c.attrs, "step_size"), attr_float(c.attrs, "gamma"));
//       }});
//   }
//
// configs/ reads `scheduler:` against these schemas (plus the generic `interval`), the
// reference in configs/README.md is generated from them, restored checkpoint values are
// checked with them, and tests/engine/test_registries.cpp walks the registry. Adding a
// scheduler = its .cpp/.h with this registration.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/graph/attr_schema.h"
#include "engine/sched/scheduler.h"

namespace dl::sched {

// A scheduler as a recipe describes it: type, resolved attributes (defaults filled) and, for
// schedulers made of schedulers (SequentialLR, ChainedScheduler), the children in order.
struct SchedulerConfig {
  std::string type;  // registry name: "step", "one_cycle", ...
  AttrMap attrs;
  std::vector<SchedulerConfig> children;
  bool operator==(const SchedulerConfig&) const = default;
};

struct SchedulerContext {
  // scheduler.step() calls in the whole run (epochs, or optimizer steps for interval: step):
  // what `auto` means for T_max, total_steps, ...
  int64_t total_steps = 1;
};

struct SchedulerDef {
  std::string name;        // YAML `scheduler.type` ("cosine_annealing")
  std::string torch_name;  // torch class ("CosineAnnealingLR"): LRScheduler::type(), checkpoints
  std::string doc;         // one line for the generated reference
  std::vector<AttrSchema> attrs;
  // Cross-attribute rule on the resolved attributes: "" when fine, else the problem.
  std::function<std::string(const AttrMap&)> rule;
  std::function<std::unique_ptr<LRScheduler>(optim::Optimizer&, const SchedulerConfig&, const SchedulerContext&)> make;
  bool takes_children = false;  // `schedulers:` list (SequentialLR, ChainedScheduler)
  bool metric_driven = false;   // ReduceLROnPlateau: stepped with a metric after evaluations
  // Values for the required attributes that have no default (step_size, lr_lambda, ...):
  // tests/engine/test_registries.cpp builds every scheduler with them, and the docs show them.
  AttrMap example = {};
};

struct RegisterScheduler {
  explicit RegisterScheduler(SchedulerDef def);  // std::logic_error on a duplicate
};

const std::vector<SchedulerDef>& scheduler_defs();  // sorted by name
// By YAML name or torch name, case-insensitive; nullptr when unknown.
const SchedulerDef* find_scheduler_def(std::string_view name);
const SchedulerDef& scheduler_def(std::string_view name);  // throws listing the valid names
std::vector<std::string> scheduler_names();

// Rule helper: "" when the IntList attribute `key` is strictly increasing, else the problem
// ("milestones: expected strictly increasing values, got 8 then 3").
std::string strictly_increasing(const AttrMap& m, const std::string& key);

// Builds `c` (recursively for children). "none" (constant lr) returns nullptr. Attributes not
// given take the schema's defaults; everything is checked (std::invalid_argument).
std::unique_ptr<LRScheduler> make_scheduler(optim::Optimizer& opt, const SchedulerConfig& c,
                                            const SchedulerContext& ctx);

}  // namespace dl::sched
