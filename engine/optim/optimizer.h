// Optimizers with torch.optim's vocabulary: parameter groups with per-group hyper-parameters,
// and per-parameter state keyed by the parameter's dotted name (what checkpoints store).
//
//   optim::SGD opt(model->named_parameters(), {.lr = 0.1, .momentum = 0.9});
//   for (...) { opt.zero_grad(); loss(model->forward(x)).backward(); opt.step(); }
//
// Hyper-parameters live in each group's `options` map (like torch's param_group dict), so a
// scheduler can change "lr" and a checkpoint can store every value as a number. Names used:
//   SGD:   lr, momentum, dampening, weight_decay, nesterov (0/1)
//   Adam/AdamW: lr, beta1, beta2, eps, weight_decay, amsgrad (0/1)
//   schedulers add initial_lr.
// Slots (ParamState::slots) use PyTorch's names: momentum_buffer (SGD), exp_avg, exp_avg_sq,
// max_exp_avg_sq (Adam/AdamW, the last only with amsgrad); ParamState::step counts the updates
// of that parameter (Adam's state['step']; SGD keeps 0).
//
// Updates run under no-grad, in place. On devices with fused kernels (kernels/optim.h) and
// contiguous tensors one pass per parameter is used; otherwise the same arithmetic runs as
// engine ops. Parameters whose grad is undefined are skipped (no state is created).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl::optim {

using Options = std::map<std::string, double>;
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct ParamGroup {
  std::vector<std::string> names;
  std::vector<Tensor> params;
  Options options;  // filled from the optimizer's defaults where not given

  // Value of option `key`; throws naming the key when absent.
  double get(const std::string& key) const;
  // A group of named parameters (e.g. from Module::named_parameters()) with option overrides.
  static ParamGroup from(const NamedTensors& named, Options overrides = {});
};

struct ParamState {
  int64_t step = 0;
  std::map<std::string, Tensor> slots;
};

// Everything needed to resume bit-exactly. Tensors alias the live state (like torch's
// state_dict); copy them if the optimizer keeps stepping before they are written out.
struct OptimizerState {
  struct Group {
    std::vector<std::string> names;
    Options options;
  };
  std::string type;
  Options defaults;
  std::vector<Group> param_groups;
  std::map<std::string, ParamState> state;  // by parameter name
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient.
  virtual void step() = 0;
  // torch's optimizer.step(closure): `closure` clears the gradients, recomputes the loss on the
  // same batch, runs backward and returns the loss. Most optimizers call it once, then step();
  // LBFGS calls it as often as its line search needs. Returns the first loss.
  using Closure = std::function<double()>;
  virtual double step(const Closure& closure);
  // set_to_none = true drops the gradients (PyTorch 2.x default); false zeroes them in place.
  void zero_grad(bool set_to_none = true);

  const std::string& type() const { return type_; }
  const Options& defaults() const { return defaults_; }
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // Adds a group; options not in `group.options` come from defaults(). Throws on unknown or
  // invalid options and on parameters already in another group (by name or by tensor).
  void add_param_group(ParamGroup group);

  std::map<std::string, ParamState>& state() { return state_; }
  const std::map<std::string, ParamState>& state() const { return state_; }

  OptimizerState state_dict() const;
  // Restores group options and per-parameter state (slots are copied onto each parameter's
  // device and dtype). The groups must hold the same parameter names in the same order, the
  // options pass validate(), steps are >= 0 and each parameter's state holds exactly the slots
  // slot_names() lists for its group (a partial state would be recreated or crash the update).
  void load_state_dict(const OptimizerState& s);
  // The state slots a parameter of a group with options `group` has once it was updated
  // (SGD: momentum_buffer when momentum != 0; Adam: exp_avg, exp_avg_sq [, max_exp_avg_sq]).
  virtual std::vector<std::string> slot_names(const Options& group) const = 0;
  // "" when a restored slot tensor suits parameter `param`, else the problem. Default: a
  // floating-point tensor of the parameter's shape. Optimizers whose state is not shaped like
  // the parameter (ASGD's scalars, LBFGS's history) override it.
  virtual std::string check_slot(const std::string& slot, const Tensor& value, const Tensor& param) const;
  // The dtype a restored slot is stored in. Default: the parameter's (torch's load_state_dict
  // casts floating state to the parameter's dtype). LBFGS keeps its scalars (t, H_diag, ...)
  // in float64 whatever the parameters' dtype, so that a resume continues bit-exactly.
  virtual DType slot_dtype(const std::string& slot, const Tensor& param) const;

  // Fused kernels on/off (default on; off forces the engine-op path, e.g. to test it).
  void set_fused(bool on) { fused_ = on; }
  bool fused() const { return fused_; }

 protected:
  Optimizer(std::string type, Options defaults);
  // Checks a group's options (ranges, unknown keys); throws std::invalid_argument. The default
  // checks them against the optimizer's registration (check_options in registry.h).
  virtual void validate(const Options& o) const;
  void init_groups(std::vector<ParamGroup> groups);

  std::string type_;
  Options defaults_;
  std::vector<ParamGroup> groups_;
  std::map<std::string, ParamState> state_;
  bool fused_ = true;
};

// Builds any registered optimizer (engine/optim/registry.h) by YAML or torch name,
// case-insensitive ("sgd", "AdamW"), from an options map (missing keys take the registry's
// defaults). Unknown types and keys are errors (std::invalid_argument).
std::unique_ptr<Optimizer> make_optimizer(const std::string& type, std::vector<ParamGroup> groups,
                                          const Options& options);
std::unique_ptr<Optimizer> make_optimizer(const std::string& type, const NamedTensors& params,
                                          const Options& options);

// Python-like formatting of an option value for messages.
std::string option_str(double v);

}  // namespace dl::optim
