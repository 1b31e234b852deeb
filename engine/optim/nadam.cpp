#include "engine/optim/nadam.h"

#include <cmath>

#include "engine/ops/elementwise.h"
#include "engine/optim/fused.h"
#include "engine/optim/registry.h"
#include "engine/optim/torch_port.h"

namespace dl::optim {

NAdam::NAdam(std::vector<ParamGroup> groups, const Options& options)
    : Optimizer("NAdam", port::complete_options("NAdam", options)) {
  init_groups(std::move(groups));
}
NAdam::NAdam(const NamedTensors& params, const Options& options)
    : NAdam(std::vector<ParamGroup>{ParamGroup::from(params)}, options) {}

void NAdam::validate(const Options& o) const {
  port::require_adam_like(type_, o);
  port::require(0.0 <= o.at("momentum_decay"), type_, "Invalid momentum_decay value", o.at("momentum_decay"));
  Optimizer::validate(o);
}

std::vector<std::string> NAdam::slot_names(const Options&) const { return {"mu_product", "exp_avg", "exp_avg_sq"}; }

std::string NAdam::check_slot(const std::string& slot, const Tensor& value, const Tensor& param) const {
  if (slot == "mu_product") return port::check_scalar_slot(value);
  return Optimizer::check_slot(slot, value, param);
}

DType NAdam::slot_dtype(const std::string& slot, const Tensor& param) const {
  return slot == "mu_product" ? DType::F32 : param.dtype();
}

void NAdam::step() {
  FusedQueue<decltype(nadam_step_stub), NadamArgs> fused(nadam_step_stub, fused_);
  port::for_each_with_grad(groups_, state_, [&](const ParamGroup& g, Tensor& p, const Tensor& grad, ParamState& st) {
    const double lr = g.get("lr"), beta1 = g.get("beta1"), beta2 = g.get("beta2"), eps = g.get("eps");
    const double wd = g.get("weight_decay"), momentum_decay = g.get("momentum_decay");
    Tensor& mu_product = port::scalar_slot(st, "mu_product", 1.0f);
    Tensor& exp_avg = port::zeros_slot(st, "exp_avg", p);
    Tensor& exp_avg_sq = port::zeros_slot(st, "exp_avg_sq", p);
    st.step += 1;
    const double step = static_cast<double>(st.step);
    const double bias_correction2 = 1.0 - std::pow(beta2, step);
    // The momentum cache mu^t and mu^{t+1}; torch multiplies them into float32 tensors.
    const double mu = beta1 * (1.0 - 0.5 * std::pow(0.96, step * momentum_decay));
    const double mu_next = beta1 * (1.0 - 0.5 * std::pow(0.96, (step + 1.0) * momentum_decay));
    const float product = port::scalar_value(mu_product) * static_cast<float>(mu);
    const float product_next = product * static_cast<float>(mu) * static_cast<float>(mu_next);
    port::set_scalar(mu_product, product);
    const double grad_coef = -lr * (1.0 - mu) / (1.0 - product);
    const double exp_avg_coef = -lr * mu_next / (1.0 - product_next);
    if (fused.add({beta1, beta2, eps, wd, bias_correction2, grad_coef, exp_avg_coef}, {p, grad, exp_avg, exp_avg_sq}))
      return;
    Tensor gr = wd != 0.0 ? add(grad, p, wd) : grad;
    mul_(exp_avg, beta1);
    add_(exp_avg, gr, 1.0 - beta1);
    mul_(exp_avg_sq, beta2);
    add_(exp_avg_sq, mul(mul(gr, 1.0 - beta2), gr));  // addcmul_(g, g, value=1-beta2)
    Tensor denom = add(sqrt(div(exp_avg_sq, scalar_tensor(bias_correction2, p.options()))), eps);
    add_(p, div(mul(gr, grad_coef), denom));
    add_(p, div(mul(exp_avg, exp_avg_coef), denom));
  });
  fused.flush();
}

namespace {
using A = AttrSchema;
const RegisterOptimizer kRegister({
    "nadam", "NAdam", "torch.optim.NAdam (Adam with Nesterov momentum)",
    {port::lr_attr(2e-3), port::betas_attr(), port::eps_attr(1e-8), port::weight_decay_attr(),
     A::floating("momentum_decay", 4e-3).at_least(0).describe("momentum decay (psi)")},
    /*rule=*/nullptr,
    [](std::vector<ParamGroup> groups, const Options& d) -> std::unique_ptr<Optimizer> {
      return std::make_unique<NAdam>(std::move(groups), d);
    },
    /*max_state_tensors=*/2});
}  // namespace

}  // namespace dl::optim
