#include "engine/optim/rmsprop.h"

#include "engine/ops/elementwise.h"
#include "engine/optim/fused.h"
#include "engine/optim/registry.h"
#include "engine/optim/torch_port.h"

namespace dl::optim {

RMSprop::RMSprop(std::vector<ParamGroup> groups, const Options& options)
    : Optimizer("RMSprop", port::complete_options("RMSprop", options)) {
  init_groups(std::move(groups));
}
RMSprop::RMSprop(const NamedTensors& params, const Options& options)
    : RMSprop(std::vector<ParamGroup>{ParamGroup::from(params)}, options) {}

void RMSprop::validate(const Options& o) const {
  const double lr = o.at("lr"), eps = o.at("eps"), momentum = o.at("momentum"), wd = o.at("weight_decay");
  const double alpha = o.at("alpha");
  port::require(0.0 <= lr, type_, "Invalid learning rate", lr);
  port::require(0.0 <= eps, type_, "Invalid epsilon value", eps);
  port::require(0.0 <= momentum, type_, "Invalid momentum value", momentum);
  port::require(0.0 <= wd, type_, "Invalid weight_decay value", wd);
  port::require(0.0 <= alpha, type_, "Invalid alpha value", alpha);
  Optimizer::validate(o);
}

std::vector<std::string> RMSprop::slot_names(const Options& group) const {
  std::vector<std::string> s{"square_avg"};
  if (group.at("momentum") > 0) s.push_back("momentum_buffer");
  if (group.at("centered") != 0.0) s.push_back("grad_avg");
  return s;
}

void RMSprop::step() {
  FusedQueue<decltype(rmsprop_step_stub), RmspropArgs> fused(rmsprop_step_stub, fused_);
  port::for_each_with_grad(groups_, state_, [&](const ParamGroup& g, Tensor& p, const Tensor& grad, ParamState& st) {
    const double lr = g.get("lr"), alpha = g.get("alpha"), eps = g.get("eps"), wd = g.get("weight_decay");
    const double momentum = g.get("momentum");
    const bool centered = g.get("centered") != 0.0;
    Tensor& square_avg = port::zeros_slot(st, "square_avg", p);
    st.step += 1;
    Tensor buf = momentum > 0 ? port::zeros_slot(st, "momentum_buffer", p) : Tensor();
    Tensor grad_avg = centered ? port::zeros_slot(st, "grad_avg", p) : Tensor();
    if (fused.add({lr, alpha, eps, wd, momentum, centered}, {p, grad, square_avg, buf, grad_avg})) return;
    Tensor gr = wd != 0.0 ? add(grad, p, wd) : grad;
    mul_(square_avg, alpha);
    add_(square_avg, mul(mul(gr, 1.0 - alpha), gr));  // addcmul_(g, g, value=1-alpha)
    Tensor avg;
    if (centered) {
      mul_(grad_avg, alpha);
      add_(grad_avg, gr, 1.0 - alpha);
      avg = sqrt(sub(square_avg, mul(grad_avg, grad_avg)));  // addcmul(grad_avg, grad_avg, value=-1)
    } else {
      avg = sqrt(square_avg);
    }
    avg = add(avg, eps);
    if (momentum > 0) {
      mul_(buf, momentum);
      add_(buf, div(gr, avg));  // addcdiv_(g, avg)
      add_(p, buf, -lr);
    } else {
      add_(p, div(mul(gr, -lr), avg));  // addcdiv_(g, avg, value=-lr)
    }
  });
  fused.flush();
}

namespace {
using A = AttrSchema;
const RegisterOptimizer kRegister({
    "rmsprop", "RMSprop", "torch.optim.RMSprop (centered, momentum)",
    {port::lr_attr(1e-2), A::floating("alpha", 0.99).at_least(0).describe("smoothing constant"),
     port::eps_attr(1e-8), port::weight_decay_attr(),
     A::floating("momentum", 0.0).at_least(0).describe("momentum factor"),
     A::boolean("centered", false).describe("normalise by the estimated variance of the gradient")},
    /*rule=*/nullptr,
    [](std::vector<ParamGroup> groups, const Options& d) -> std::unique_ptr<Optimizer> {
      return std::make_unique<RMSprop>(std::move(groups), d);
    },
    /*max_state_tensors=*/3});
}  // namespace

}  // namespace dl::optim
