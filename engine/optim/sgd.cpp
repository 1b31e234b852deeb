#include "engine/optim/sgd.h"

#include <memory>

#include <cmath>
#include <stdexcept>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/registry.h"
#include "engine/optim/fused.h"

namespace dl::optim {

Options SGDOptions::to_map() const {
  return {{"lr", lr}, {"momentum", momentum}, {"dampening", dampening},
          {"weight_decay", weight_decay}, {"nesterov", nesterov ? 1.0 : 0.0}};
}

SGDOptions SGDOptions::from_map(const Options& m) {
  SGDOptions o;
  for (const auto& [k, v] : m) {
    if (k == "lr") o.lr = v;
    else if (k == "momentum") o.momentum = v;
    else if (k == "dampening") o.dampening = v;
    else if (k == "weight_decay") o.weight_decay = v;
    else if (k == "nesterov") o.nesterov = v != 0.0;
    else throw std::invalid_argument("SGD: unknown option '" + k + "' (valid: lr, momentum, dampening, "
                                     "weight_decay, nesterov)");
  }
  return o;
}

SGD::SGD(const NamedTensors& params, const SGDOptions& o)
    : SGD(std::vector<ParamGroup>{ParamGroup::from(params)}, o) {}

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& o) : Optimizer("SGD", o.to_map()) {
  init_groups(std::move(groups));
}

void SGD::validate(const Options& o) const {
  double lr = o.at("lr"), momentum = o.at("momentum"), wd = o.at("weight_decay");
  if (std::isnan(lr))
    throw std::invalid_argument("SGD: parameter group didn't specify a value of required optimization parameter lr");
  if (lr < 0) throw std::invalid_argument("SGD: Invalid learning rate: " + option_str(lr));
  if (momentum < 0) throw std::invalid_argument("SGD: Invalid momentum value: " + option_str(momentum));
  if (wd < 0) throw std::invalid_argument("SGD: Invalid weight_decay value: " + option_str(wd));
  if (o.at("nesterov") != 0.0 && (momentum <= 0 || o.at("dampening") != 0.0))
    throw std::invalid_argument("SGD: Nesterov momentum requires a momentum and zero dampening");
}

std::vector<std::string> SGD::slot_names(const Options& group) const {
  if (group.at("momentum") == 0.0) return {};
  return {"momentum_buffer"};
}

void SGD::step() {
  NoGradGuard ng;
  FusedQueue<decltype(sgd_step_stub), SgdArgs> fused(sgd_step_stub, fused_);
  for (ParamGroup& g : groups_) {
    SgdArgs a;
    a.lr = g.get("lr");
    a.momentum = g.get("momentum");
    a.dampening = g.get("dampening");
    a.weight_decay = g.get("weight_decay");
    a.nesterov = g.get("nesterov") != 0.0;
    for (size_t i = 0; i < g.params.size(); ++i) {
      Tensor& p = g.params[i];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      Tensor buf;
      a.init_buffer = false;
      if (a.momentum != 0.0) {
        ParamState& st = state_[g.names[i]];
        auto it = st.slots.find("momentum_buffer");
        if (it == st.slots.end()) {
          buf = empty(p.shape(), p.options());
          st.slots["momentum_buffer"] = buf;
          a.init_buffer = true;
        } else {
          buf = it->second;
        }
      }
      if (fused.add(a, {p, grad, buf})) continue;
      // Engine-op path: torch's _single_tensor_sgd line by line.
      Tensor d = grad;
      if (a.weight_decay != 0.0) d = add(d, p, a.weight_decay);
      if (a.momentum != 0.0) {
        if (a.init_buffer) {
          buf.copy_(d);
        } else {
          mul_(buf, a.momentum);
          add_(buf, d, 1.0 - a.dampening);
        }
        d = a.nesterov ? add(d, buf, a.momentum) : buf;
      }
      add_(p, d, -a.lr);
    }
  }
  fused.flush();
}

namespace {
using A = AttrSchema;
const RegisterOptimizer kRegister({
    "sgd", "SGD", "torch.optim.SGD (nesterov needs momentum > 0 and dampening 0)",
    {A::floating("lr", 1e-3).at_least(0).describe("learning rate"),
     A::floating("momentum", 0.0).at_least(0).describe("momentum factor"),
     A::floating("dampening", 0.0).at_least(0).describe("dampening for momentum"),
     A::floating("weight_decay", 0.0).at_least(0).describe("L2 penalty"),
     A::boolean("nesterov", false).describe("Nesterov momentum")},
    [](const AttrMap& m) -> std::string {
      if (attr_bool(m, "nesterov") && (attr_float(m, "momentum") <= 0 || attr_float(m, "dampening") != 0))
        return "nesterov: Nesterov momentum requires a momentum > 0 and zero dampening";
      return "";
    },
    [](std::vector<ParamGroup> groups, const Options& defaults) -> std::unique_ptr<Optimizer> {
      return std::make_unique<SGD>(std::move(groups), SGDOptions::from_map(defaults));
    },
    /*max_state_tensors=*/1});
}  // namespace

}  // namespace dl::optim
