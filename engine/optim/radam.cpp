#include "engine/optim/radam.h"

#include <cmath>

#include "engine/ops/elementwise.h"
#include "engine/optim/fused.h"
#include "engine/optim/registry.h"
#include "engine/optim/torch_port.h"

namespace dl::optim {

RAdam::RAdam(std::vector<ParamGroup> groups, const Options& options)
    : Optimizer("RAdam", port::complete_options("RAdam", options)) {
  init_groups(std::move(groups));
}
RAdam::RAdam(const NamedTensors& params, const Options& options)
    : RAdam(std::vector<ParamGroup>{ParamGroup::from(params)}, options) {}

void RAdam::validate(const Options& o) const {
  port::require_adam_like(type_, o);
  Optimizer::validate(o);
}

std::vector<std::string> RAdam::slot_names(const Options&) const { return {"exp_avg", "exp_avg_sq"}; }

void RAdam::step() {
  FusedQueue<decltype(radam_step_stub), RadamArgs> fused(radam_step_stub, fused_);
  port::for_each_with_grad(groups_, state_, [&](const ParamGroup& g, Tensor& p, const Tensor& grad, ParamState& st) {
    const double lr = g.get("lr"), beta1 = g.get("beta1"), beta2 = g.get("beta2"), eps = g.get("eps");
    const double wd = g.get("weight_decay");
    Tensor& exp_avg = port::zeros_slot(st, "exp_avg", p);
    Tensor& exp_avg_sq = port::zeros_slot(st, "exp_avg_sq", p);
    st.step += 1;
    const double step = static_cast<double>(st.step);
    const double bias_correction1 = 1.0 - std::pow(beta1, step);
    const double bias_correction2 = 1.0 - std::pow(beta2, step);
    const double rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    const double rho_t = rho_inf - 2.0 * step * std::pow(beta2, step) / bias_correction2;
    const bool rectified = rho_t > 5.0;
    const double rect =
        rectified ? std::sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t))
                  : 0.0;
    if (fused.add({lr, beta1, beta2, eps, wd, bias_correction1, std::sqrt(bias_correction2), rect, rectified},
                  {p, grad, exp_avg, exp_avg_sq}))
      return;
    Tensor gr = wd != 0.0 ? add(grad, p, wd) : grad;
    mul_(exp_avg, beta1);
    add_(exp_avg, gr, 1.0 - beta1);
    mul_(exp_avg_sq, beta2);
    add_(exp_avg_sq, mul(mul(gr, 1.0 - beta2), gr));  // addcmul_(g, g, value=1-beta2)
    Tensor corrected = div(exp_avg, scalar_tensor(bias_correction1, p.options()));
    if (rectified) {
      Tensor adaptive_lr = div(scalar_tensor(std::sqrt(bias_correction2), p.options()), add(sqrt(exp_avg_sq), eps));
      add_(p, mul(mul(mul(corrected, lr), adaptive_lr), rect), -1.0);
    } else {
      add_(p, mul(corrected, lr), -1.0);
    }
  });
  fused.flush();
}

namespace {
const RegisterOptimizer kRegister({
    "radam", "RAdam", "torch.optim.RAdam (rectified Adam)",
    {port::lr_attr(1e-3), port::betas_attr(), port::eps_attr(1e-8), port::weight_decay_attr()},
    /*rule=*/nullptr,
    [](std::vector<ParamGroup> groups, const Options& d) -> std::unique_ptr<Optimizer> {
      return std::make_unique<RAdam>(std::move(groups), d);
    },
    /*max_state_tensors=*/2});
}  // namespace

}  // namespace dl::optim
