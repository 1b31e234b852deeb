#include "engine/optim/rprop.h"

#include <stdexcept>

#include "engine/ops/elementwise.h"
#include "engine/optim/fused.h"
#include "engine/optim/registry.h"
#include "engine/optim/torch_port.h"

namespace dl::optim {

Rprop::Rprop(std::vector<ParamGroup> groups, const Options& options)
    : Optimizer("Rprop", port::complete_options("Rprop", options)) {
  init_groups(std::move(groups));
}
Rprop::Rprop(const NamedTensors& params, const Options& options)
    : Rprop(std::vector<ParamGroup>{ParamGroup::from(params)}, options) {}

void Rprop::validate(const Options& o) const {
  port::require(0.0 <= o.at("lr"), type_, "Invalid learning rate", o.at("lr"));
  const double minus = o.at("etaminus"), plus = o.at("etaplus");
  if (!(0.0 < minus && minus < 1.0 && 1.0 < plus))
    throw std::invalid_argument(type_ + ": Invalid eta values: " + option_str(minus) + ", " + option_str(plus));
  Optimizer::validate(o);
}

std::vector<std::string> Rprop::slot_names(const Options&) const { return {"prev", "step_size"}; }

void Rprop::step() {
  FusedQueue<decltype(rprop_step_stub), RpropArgs> fused(rprop_step_stub, fused_);
  port::for_each_with_grad(groups_, state_, [&](const ParamGroup& g, Tensor& p, const Tensor& grad, ParamState& st) {
    const double etaminus = g.get("etaminus"), etaplus = g.get("etaplus");
    Tensor& prev = port::zeros_slot(st, "prev", p);
    Tensor& step_size = port::full_slot(st, "step_size", p, g.get("lr"));
    st.step += 1;
    if (fused.add({etaminus, etaplus, g.get("step_size_min"), g.get("step_size_max")}, {p, grad, prev, step_size}))
      return;
    const Tensor product = mul(grad, prev);
    const Tensor decrease = lt(product, 0.0);
    auto scalar = [&](double v) { return scalar_tensor(v, p.options()); };
    Tensor factor = where(gt(product, 0.0), scalar(etaplus), where(decrease, scalar(etaminus), scalar(1.0)));
    step_size.copy_(clamp(mul(step_size, factor), g.get("step_size_min"), g.get("step_size_max")));
    Tensor gr = where(decrease, scalar(0.0), grad);  // for dir < 0, dfdx = 0
    add_(p, mul(sign(gr), step_size), -1.0);         // addcmul_(grad.sign(), step_size, value=-1)
    prev.copy_(gr);
  });
  fused.flush();
}

namespace {
using A = AttrSchema;
const RegisterOptimizer kRegister({
    "rprop", "Rprop", "torch.optim.Rprop (resilient backpropagation; full-batch training)",
    {port::lr_attr(1e-2).describe("learning rate: the initial step size"),
     A::float_list("etas").def(std::vector<double>{0.5, 1.2}).stored_as({"etaminus", "etaplus"})
         .check([](const AttrValue& v) -> std::string {
           const auto* e = std::get_if<std::vector<double>>(&v);
           return e && e->size() == 2 && 0.0 < (*e)[0] && (*e)[0] < 1.0 && 1.0 < (*e)[1] ? "" : "out of range";
         }, "[etaminus, etaplus] with 0 < etaminus < 1 < etaplus")
         .describe("multiplicative decrease and increase factors of the step size"),
     A::float_list("step_sizes").def(std::vector<double>{1e-6, 50.0}).stored_as({"step_size_min", "step_size_max"})
         .describe("minimal and maximal allowed step sizes")},
    /*rule=*/nullptr,
    [](std::vector<ParamGroup> groups, const Options& d) -> std::unique_ptr<Optimizer> {
      return std::make_unique<Rprop>(std::move(groups), d);
    },
    /*max_state_tensors=*/2});
}  // namespace

}  // namespace dl::optim
