#include "engine/optim/adadelta.h"

#include "engine/ops/elementwise.h"
#include "engine/optim/fused.h"
#include "engine/optim/registry.h"
#include "engine/optim/torch_port.h"

namespace dl::optim {

Adadelta::Adadelta(std::vector<ParamGroup> groups, const Options& options)
    : Optimizer("Adadelta", port::complete_options("Adadelta", options)) {
  init_groups(std::move(groups));
}
Adadelta::Adadelta(const NamedTensors& params, const Options& options)
    : Adadelta(std::vector<ParamGroup>{ParamGroup::from(params)}, options) {}

void Adadelta::validate(const Options& o) const {
  const double lr = o.at("lr"), rho = o.at("rho"), eps = o.at("eps"), wd = o.at("weight_decay");
  port::require(0.0 <= lr, type_, "Invalid learning rate", lr);
  port::require(0.0 <= rho && rho <= 1.0, type_, "Invalid rho value", rho);
  port::require(0.0 <= eps, type_, "Invalid epsilon value", eps);
  port::require(0.0 <= wd, type_, "Invalid weight_decay value", wd);
  Optimizer::validate(o);
}

std::vector<std::string> Adadelta::slot_names(const Options&) const { return {"square_avg", "acc_delta"}; }

void Adadelta::step() {
  FusedQueue<decltype(adadelta_step_stub), AdadeltaArgs> fused(adadelta_step_stub, fused_);
  port::for_each_with_grad(groups_, state_, [&](const ParamGroup& g, Tensor& p, const Tensor& grad, ParamState& st) {
    const double lr = g.get("lr"), rho = g.get("rho"), eps = g.get("eps"), wd = g.get("weight_decay");
    Tensor& square_avg = port::zeros_slot(st, "square_avg", p);
    Tensor& acc_delta = port::zeros_slot(st, "acc_delta", p);
    st.step += 1;
    if (fused.add({lr, rho, eps, wd}, {p, grad, square_avg, acc_delta})) return;
    Tensor gr = wd != 0.0 ? add(grad, p, wd) : grad;
    mul_(square_avg, rho);
    add_(square_avg, mul(mul(gr, 1.0 - rho), gr));  // addcmul_(g, g, value=1-rho)
    Tensor std_ = sqrt(add(square_avg, eps));
    Tensor delta = mul(div(sqrt(add(acc_delta, eps)), std_), gr);
    mul_(acc_delta, rho);
    add_(acc_delta, mul(mul(delta, 1.0 - rho), delta));
    add_(p, delta, -lr);
  });
  fused.flush();
}

namespace {
using A = AttrSchema;
const RegisterOptimizer kRegister({
    "adadelta", "Adadelta", "torch.optim.Adadelta",
    {port::lr_attr(1.0).describe("coefficient that scales delta before it is applied to the parameters"),
     A::floating("rho", 0.9).range(0, 1).describe("coefficient of the running averages of the squared gradient and delta"),
     port::eps_attr(1e-6), port::weight_decay_attr()},
    /*rule=*/nullptr,
    [](std::vector<ParamGroup> groups, const Options& d) -> std::unique_ptr<Optimizer> {
      return std::make_unique<Adadelta>(std::move(groups), d);
    },
    /*max_state_tensors=*/2});
}  // namespace

}  // namespace dl::optim
