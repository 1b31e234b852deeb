#include "engine/optim/asgd.h"

#include <algorithm>
#include <cmath>

#include "engine/ops/elementwise.h"
#include "engine/optim/fused.h"
#include "engine/optim/registry.h"
#include "engine/optim/torch_port.h"

namespace dl::optim {

ASGD::ASGD(std::vector<ParamGroup> groups, const Options& options)
    : Optimizer("ASGD", port::complete_options("ASGD", options)) {
  init_groups(std::move(groups));
}
ASGD::ASGD(const NamedTensors& params, const Options& options)
    : ASGD(std::vector<ParamGroup>{ParamGroup::from(params)}, options) {}

void ASGD::validate(const Options& o) const {
  port::require(0.0 <= o.at("lr"), type_, "Invalid learning rate", o.at("lr"));
  port::require(0.0 <= o.at("weight_decay"), type_, "Invalid weight_decay value", o.at("weight_decay"));
  Optimizer::validate(o);
}

std::vector<std::string> ASGD::slot_names(const Options&) const { return {"eta", "mu", "ax"}; }

std::string ASGD::check_slot(const std::string& slot, const Tensor& value, const Tensor& param) const {
  if (slot == "eta" || slot == "mu") return port::check_scalar_slot(value);
  return Optimizer::check_slot(slot, value, param);
}

DType ASGD::slot_dtype(const std::string& slot, const Tensor& param) const {
  return slot == "eta" || slot == "mu" ? DType::F32 : param.dtype();
}

void ASGD::step() {
  FusedQueue<decltype(asgd_step_stub), AsgdArgs> fused(asgd_step_stub, fused_);
  port::for_each_with_grad(groups_, state_, [&](const ParamGroup& g, Tensor& p, const Tensor& grad, ParamState& st) {
    const double lr = g.get("lr"), lambd = g.get("lambd"), alpha = g.get("alpha"), t0 = g.get("t0");
    const double wd = g.get("weight_decay");
    Tensor& eta = port::scalar_slot(st, "eta", static_cast<float>(lr));
    Tensor& mu = port::scalar_slot(st, "mu", 1.0f);
    Tensor& ax = port::zeros_slot(st, "ax", p);
    st.step += 1;
    const double step = static_cast<double>(st.step);
    const double eta_v = port::scalar_value(eta), mu_v = port::scalar_value(mu);
    if (!fused.add({lambd, wd, eta_v, mu_v}, {p, grad, ax})) {
      Tensor gr = wd != 0.0 ? add(grad, p, wd) : grad;
      mul_(p, 1.0 - lambd * eta_v);  // decay term
      add_(p, gr, -eta_v);
      if (mu_v != 1.0f) add_(ax, mul(sub(p, ax), mu_v));  // averaging
      else ax.copy_(p);
    }
    port::set_scalar(eta, static_cast<float>(lr / std::pow(1.0 + lambd * lr * step, alpha)));
    port::set_scalar(mu, static_cast<float>(1.0 / std::max(1.0, step - t0)));
  });
  fused.flush();
}

namespace {
using A = AttrSchema;
const RegisterOptimizer kRegister({
    "asgd", "ASGD", "torch.optim.ASGD (averaged SGD; the average is state 'ax')",
    {port::lr_attr(1e-2), A::floating("lambd", 1e-4).describe("decay term"),
     A::floating("alpha", 0.75).describe("power for the eta update"),
     A::floating("t0", 1e6).describe("point at which to start averaging"), port::weight_decay_attr()},
    /*rule=*/nullptr,
    [](std::vector<ParamGroup> groups, const Options& d) -> std::unique_ptr<Optimizer> {
      return std::make_unique<ASGD>(std::move(groups), d);
    },
    /*max_state_tensors=*/1});
}  // namespace

}  // namespace dl::optim
