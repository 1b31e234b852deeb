#include "engine/optim/adagrad.h"

#include "engine/ops/elementwise.h"
#include "engine/optim/fused.h"
#include "engine/optim/registry.h"
#include "engine/optim/torch_port.h"

namespace dl::optim {

Adagrad::Adagrad(std::vector<ParamGroup> groups, const Options& options)
    : Optimizer("Adagrad", port::complete_options("Adagrad", options)) {
  init_groups(std::move(groups));
}
Adagrad::Adagrad(const NamedTensors& params, const Options& options)
    : Adagrad(std::vector<ParamGroup>{ParamGroup::from(params)}, options) {}

void Adagrad::validate(const Options& o) const {
  const double lr = o.at("lr"), lr_decay = o.at("lr_decay"), wd = o.at("weight_decay");
  const double init = o.at("initial_accumulator_value"), eps = o.at("eps");
  port::require(0.0 <= lr, type_, "Invalid learning rate", lr);
  port::require(0.0 <= lr_decay, type_, "Invalid lr_decay value", lr_decay);
  port::require(0.0 <= wd, type_, "Invalid weight_decay value", wd);
  port::require(0.0 <= init, type_, "Invalid initial_accumulator_value value", init);
  port::require(0.0 <= eps, type_, "Invalid epsilon value", eps);
  Optimizer::validate(o);
}

std::vector<std::string> Adagrad::slot_names(const Options&) const { return {"sum"}; }

void Adagrad::step() {
  const double init = defaults_.at("initial_accumulator_value");
  FusedQueue<decltype(adagrad_step_stub), AdagradArgs> fused(adagrad_step_stub, fused_);
  port::for_each_with_grad(groups_, state_, [&](const ParamGroup& g, Tensor& p, const Tensor& grad, ParamState& st) {
    const double lr = g.get("lr"), lr_decay = g.get("lr_decay"), wd = g.get("weight_decay"), eps = g.get("eps");
    Tensor& sum = port::full_slot(st, "sum", p, init);
    st.step += 1;
    const double clr = lr / (1.0 + static_cast<double>(st.step - 1) * lr_decay);
    if (fused.add({clr, eps, wd}, {p, grad, sum})) return;
    Tensor gr = wd != 0.0 ? add(grad, p, wd) : grad;
    add_(sum, mul(gr, gr));  // addcmul_(g, g, value=1)
    Tensor std_ = add(sqrt(sum), eps);
    add_(p, div(mul(gr, -clr), std_));  // addcdiv_(g, std, value=-clr)
  });
  fused.flush();
}

namespace {
using A = AttrSchema;
const RegisterOptimizer kRegister({
    "adagrad", "Adagrad", "torch.optim.Adagrad",
    {port::lr_attr(1e-2), A::floating("lr_decay", 0.0).at_least(0).describe("learning rate decay"),
     port::weight_decay_attr(),
     A::floating("initial_accumulator_value", 0.0).at_least(0)
         .describe("initial value of the sum of squared gradients (the optimizer's value; groups cannot override it, as in torch)"),
     port::eps_attr(1e-10)},
    /*rule=*/nullptr,
    [](std::vector<ParamGroup> groups, const Options& d) -> std::unique_ptr<Optimizer> {
      return std::make_unique<Adagrad>(std::move(groups), d);
    },
    /*max_state_tensors=*/1});
}  // namespace

}  // namespace dl::optim
