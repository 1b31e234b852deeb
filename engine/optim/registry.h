// The optimizer registry: every torch.optim optimizer dltool knows is ONE registration, in the
// file that implements it, holding everything the rest of dltool needs to know about it:
//
//   namespace {
//   const RegisterOptimizer reg({
//       "rmsprop", "RMSprop", "torch.optim.RMSprop (centered, momentum)",
//       {AttrSchema::floating("lr", 1e-2).at_least(0).describe("learning rate"),
//        AttrSchema::floating("alpha", 0.99).at_least(0).describe("smoothing constant"), ...},
//       /*rule=*/nullptr,
//       [](std::vector<ParamGroup> groups, const Options& defaults) {
//         return std::make_unique<RMSprop>(std::move(groups), defaults);
//       },
//       /*max_state_tensors=*/3});
//   }
//
// The YAML schema (`optimizer:` and `param_groups:` keys, defaults, ranges, docs in
// configs/README.md), the checks of a group's options (Optimizer::add_param_group and every
// restored checkpoint value), the builder and the memory estimate all read this entry; the
// checkpoint stores the options and state generically (optimizer.h). tests/engine/
// test_registries.cpp walks the registry: every entry documented, buildable, steppable,
// checkpointable and resumable. Adding an optimizer = its .cpp/.h with this registration.
//
// Options are a param group's numbers (torch's param_group dict): a YAML bool is 0/1, a
// fixed-length list is stored under its components' names (AttrSchema::stored_as: Adam's
// `betas` -> beta1, beta2), a choice by its index in `choices`.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/graph/attr_schema.h"
#include "engine/optim/optimizer.h"

namespace dl::optim {

struct OptimizerDef {
  std::string name;        // YAML `optimizer.type`: snake_case of torch's class ("rmsprop")
  std::string torch_name;  // torch.optim class ("RMSprop"): Optimizer::type(), checkpoints
  std::string doc;         // one line for the generated reference
  std::vector<AttrSchema> hyper;  // per-group hyper-parameters: torch's names and defaults
  // Cross-option rule on a group's complete options (YAML values, as in `hyper`): "" when
  // fine, else the problem ("nesterov needs momentum > 0 and dampening 0").
  std::function<std::string(const AttrMap&)> rule;
  // Builds the optimizer; every group's options are complete. `defaults`: the optimizer-level
  // values (torch's optimizer.defaults), also what later add_param_group calls fill in from.
  std::function<std::unique_ptr<Optimizer>(std::vector<ParamGroup> groups, const Options& defaults)> make;
  // State tensors per parameter (each the parameter's size) at most: the memory estimate.
  int max_state_tensors = 0;
  // LBFGS: step() needs a closure that re-evaluates the loss (Optimizer::step(closure)).
  bool needs_closure = false;
};

// Registers at static-initialisation time (dlengine is an OBJECT library, so every object's
// registrations run). Throws std::logic_error on a duplicate name.
struct RegisterOptimizer {
  explicit RegisterOptimizer(OptimizerDef def);
};

// Every registered optimizer, sorted by name.
const std::vector<OptimizerDef>& optimizer_defs();
// By YAML name or torch name, case-insensitive ("adamw", "AdamW"); nullptr when unknown.
const OptimizerDef* find_optimizer_def(std::string_view name);
// The same, throwing std::invalid_argument listing the valid names when unknown.
const OptimizerDef& optimizer_def(std::string_view name);
std::vector<std::string> optimizer_names();

// YAML values -> param-group options (numbers). Keys not in `hyper` throw invalid_argument.
Options to_options(const std::vector<AttrSchema>& hyper, const AttrMap& values);
// Param-group options -> YAML values for the keys `hyper` lists (missing ones are left out;
// a list whose components are incomplete too). Other keys (initial_lr) are ignored.
AttrMap from_options(const std::vector<AttrSchema>& hyper, const Options& options);
// The schema's defaults as options.
Options default_options(const OptimizerDef& def);
// "" when `options` are a valid complete group for `def` (every key known, every value in
// range, the rule holds), else the first problem: "lr: expected a number >= 0, got -1".
std::string check_options(const OptimizerDef& def, const Options& options);

}  // namespace dl::optim
