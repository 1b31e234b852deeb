#include "engine/optim/adam.h"

#include <cmath>
#include <stdexcept>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/registry.h"
#include "engine/optim/fused.h"

namespace dl::optim {

namespace {
template <class O>
Options adam_to_map(const O& o) {
  return {{"lr", o.lr}, {"beta1", o.beta1}, {"beta2", o.beta2}, {"eps", o.eps},
          {"weight_decay", o.weight_decay}, {"amsgrad", o.amsgrad ? 1.0 : 0.0}};
}

template <class O>
O adam_from_map(const Options& m, const char* type) {
  O o;
  for (const auto& [k, v] : m) {
    if (k == "lr") o.lr = v;
    else if (k == "beta1") o.beta1 = v;
    else if (k == "beta2") o.beta2 = v;
    else if (k == "eps") o.eps = v;
    else if (k == "weight_decay") o.weight_decay = v;
    else if (k == "amsgrad") o.amsgrad = v != 0.0;
    else throw std::invalid_argument(std::string(type) + ": unknown option '" + k +
                                     "' (valid: lr, beta1, beta2, eps, weight_decay, amsgrad)");
  }
  return o;
}
}  // namespace

Options AdamOptions::to_map() const { return adam_to_map(*this); }
Options AdamWOptions::to_map() const { return adam_to_map(*this); }
AdamOptions AdamOptions::from_map(const Options& m) { return adam_from_map<AdamOptions>(m, "Adam"); }
AdamWOptions AdamWOptions::from_map(const Options& m) { return adam_from_map<AdamWOptions>(m, "AdamW"); }

Adam::Adam(const NamedTensors& params, const AdamOptions& o)
    : Adam("Adam", std::vector<ParamGroup>{ParamGroup::from(params)}, o.to_map(), false) {}
Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& o)
    : Adam("Adam", std::move(groups), o.to_map(), false) {}
Adam::Adam(std::string type, std::vector<ParamGroup> groups, Options defaults, bool decoupled)
    : Optimizer(std::move(type), std::move(defaults)), decoupled_(decoupled) {
  init_groups(std::move(groups));
}

AdamW::AdamW(const NamedTensors& params, const AdamWOptions& o)
    : Adam("AdamW", std::vector<ParamGroup>{ParamGroup::from(params)}, o.to_map(), true) {}
AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o)
    : Adam("AdamW", std::move(groups), o.to_map(), true) {}

void Adam::validate(const Options& o) const {
  double lr = o.at("lr"), eps = o.at("eps"), b1 = o.at("beta1"), b2 = o.at("beta2"), wd = o.at("weight_decay");
  if (!(lr >= 0)) throw std::invalid_argument(type_ + ": Invalid learning rate: " + option_str(lr));
  if (!(eps >= 0)) throw std::invalid_argument(type_ + ": Invalid epsilon value: " + option_str(eps));
  if (!(b1 >= 0 && b1 < 1))
    throw std::invalid_argument(type_ + ": Invalid beta parameter at index 0: " + option_str(b1));
  if (!(b2 >= 0 && b2 < 1))
    throw std::invalid_argument(type_ + ": Invalid beta parameter at index 1: " + option_str(b2));
  if (!(wd >= 0)) throw std::invalid_argument(type_ + ": Invalid weight_decay value: " + option_str(wd));
}

std::vector<std::string> Adam::slot_names(const Options& group) const {
  if (group.at("amsgrad") != 0.0) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  return {"exp_avg", "exp_avg_sq"};
}

void Adam::step() {
  NoGradGuard ng;
  FusedQueue<decltype(adam_step_stub), AdamArgs> fused(adam_step_stub, fused_);
  for (ParamGroup& g : groups_) {
    AdamArgs a;
    a.lr = g.get("lr");
    a.beta1 = g.get("beta1");
    a.beta2 = g.get("beta2");
    a.eps = g.get("eps");
    a.weight_decay = g.get("weight_decay");
    a.decoupled = decoupled_;
    const bool amsgrad = g.get("amsgrad") != 0.0;
    a.amsgrad = amsgrad;
    for (size_t i = 0; i < g.params.size(); ++i) {
      Tensor& p = g.params[i];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      ParamState& st = state_[g.names[i]];
      if (!st.slots.count("exp_avg")) {
        st.slots["exp_avg"] = zeros(p.shape(), p.options());
        st.slots["exp_avg_sq"] = zeros(p.shape(), p.options());
      }
      if (amsgrad && !st.slots.count("max_exp_avg_sq")) st.slots["max_exp_avg_sq"] = zeros(p.shape(), p.options());
      Tensor m = st.slots["exp_avg"], v = st.slots["exp_avg_sq"];
      Tensor vmax = amsgrad ? st.slots["max_exp_avg_sq"] : Tensor();
      st.step += 1;
      const double step = static_cast<double>(st.step);
      const double bias_correction1 = 1.0 - std::pow(a.beta1, step);
      const double bias_correction2 = 1.0 - std::pow(a.beta2, step);
      a.step_size = a.lr / bias_correction1;
      a.bias_correction2_sqrt = std::sqrt(bias_correction2);

      if (fused.add(a, {p, grad, m, v, vmax})) continue;
      // Engine-op path: torch's _single_tensor_adam(w) line by line.
      Tensor gr = grad;
      if (decoupled_) mul_(p, 1.0 - a.lr * a.weight_decay);
      else if (a.weight_decay != 0.0) gr = add(gr, p, a.weight_decay);
      mul_(m, a.beta1);
      add_(m, gr, 1.0 - a.beta1);
      mul_(v, a.beta2);
      add_(v, mul(mul(gr, 1.0 - a.beta2), gr));  // addcmul_(g, g, value=1-beta2)
      Tensor s = v;
      if (vmax.defined()) {
        vmax.copy_(maximum(vmax, v));
        s = vmax;
      }
      Tensor denom = add(div(sqrt(s), scalar_tensor(a.bias_correction2_sqrt, s.options())), a.eps);
      add_(p, div(mul(m, -a.step_size), denom));  // addcdiv_(exp_avg, denom, value=-step_size)
    }
  }
  fused.flush();
}

namespace {
using A = AttrSchema;
std::vector<AttrSchema> adam_hyper(double weight_decay, const char* wd_doc) {
  return {A::floating("lr", 1e-3).at_least(0).describe("learning rate"),
          A::float_list("betas").def(std::vector<double>{0.9, 0.999}).range(0, 1, /*hi_open=*/true)
              .stored_as({"beta1", "beta2"}).describe("decay rates of the 1st and 2nd moment averages"),
          A::floating("eps", 1e-8).at_least(0).describe("added to the denominator"),
          A::floating("weight_decay", weight_decay).at_least(0).describe(wd_doc),
          A::boolean("amsgrad", false).describe("use the AMSGrad variant")};
}
const RegisterOptimizer kAdam({"adam", "Adam", "torch.optim.Adam", adam_hyper(0.0, "L2 penalty"), nullptr,
                               [](std::vector<ParamGroup> groups, const Options& d) -> std::unique_ptr<Optimizer> {
                                 return std::make_unique<Adam>(std::move(groups), AdamOptions::from_map(d));
                               },
                               /*max_state_tensors=*/3});
const RegisterOptimizer kAdamW({"adamw", "AdamW", "torch.optim.AdamW (decoupled weight decay)",
                                adam_hyper(1e-2, "decoupled weight decay"), nullptr,
                                [](std::vector<ParamGroup> groups, const Options& d) -> std::unique_ptr<Optimizer> {
                                  return std::make_unique<AdamW>(std::move(groups), AdamWOptions::from_map(d));
                                },
                                /*max_state_tensors=*/3});
}  // namespace

}  // namespace dl::optim
