#include "engine/optim/adamax.h"

#include <cmath>

#include "engine/ops/elementwise.h"
#include "engine/optim/fused.h"
#include "engine/optim/registry.h"
#include "engine/optim/torch_port.h"

namespace dl::optim {

Adamax::Adamax(std::vector<ParamGroup> groups, const Options& options)
    : Optimizer("Adamax", port::complete_options("Adamax", options)) {
  init_groups(std::move(groups));
}
Adamax::Adamax(const NamedTensors& params, const Options& options)
    : Adamax(std::vector<ParamGroup>{ParamGroup::from(params)}, options) {}

void Adamax::validate(const Options& o) const {
  port::require_adam_like(type_, o);
  Optimizer::validate(o);
}

std::vector<std::string> Adamax::slot_names(const Options&) const { return {"exp_avg", "exp_inf"}; }

void Adamax::step() {
  FusedQueue<decltype(adamax_step_stub), AdamaxArgs> fused(adamax_step_stub, fused_);
  port::for_each_with_grad(groups_, state_, [&](const ParamGroup& g, Tensor& p, const Tensor& grad, ParamState& st) {
    const double lr = g.get("lr"), beta1 = g.get("beta1"), beta2 = g.get("beta2"), eps = g.get("eps");
    const double wd = g.get("weight_decay");
    Tensor& exp_avg = port::zeros_slot(st, "exp_avg", p);
    Tensor& exp_inf = port::zeros_slot(st, "exp_inf", p);
    st.step += 1;
    const double clr = lr / (1.0 - std::pow(beta1, static_cast<double>(st.step)));
    if (fused.add({beta1, beta2, eps, wd, clr}, {p, grad, exp_avg, exp_inf})) return;
    Tensor gr = wd != 0.0 ? add(grad, p, wd) : grad;
    mul_(exp_avg, beta1);
    add_(exp_avg, gr, 1.0 - beta1);
    mul_(exp_inf, beta2);
    exp_inf.copy_(maximum(exp_inf, add(abs(gr), eps)));  // amax(cat([exp_inf * beta2, |g| + eps]), 0)
    add_(p, div(mul(exp_avg, -clr), exp_inf));  // addcdiv_(exp_avg, exp_inf, value=-clr)
  });
  fused.flush();
}

namespace {
const RegisterOptimizer kRegister({
    "adamax", "Adamax", "torch.optim.Adamax (Adam with the infinity norm)",
    {port::lr_attr(2e-3), port::betas_attr(), port::eps_attr(1e-8), port::weight_decay_attr()},
    /*rule=*/nullptr,
    [](std::vector<ParamGroup> groups, const Options& d) -> std::unique_ptr<Optimizer> {
      return std::make_unique<Adamax>(std::move(groups), d);
    },
    /*max_state_tensors=*/2});
}  // namespace

}  // namespace dl::optim
