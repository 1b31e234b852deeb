#include "engine/optim/torch_port.h"

#include <stdexcept>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/optim/registry.h"

namespace dl::optim::port {

void require(bool ok, const std::string& type, const std::string& what, double value) {
  if (!ok) throw std::invalid_argument(type + ": " + what + ": " + option_str(value));
}

void require_betas(const std::string& type, const Options& o) {
  const double b1 = o.at("beta1"), b2 = o.at("beta2");
  require(0.0 <= b1 && b1 < 1.0, type, "Invalid beta parameter at index 0", b1);
  require(0.0 <= b2 && b2 < 1.0, type, "Invalid beta parameter at index 1", b2);
}

void require_adam_like(const std::string& type, const Options& o) {
  require(0.0 <= o.at("lr"), type, "Invalid learning rate", o.at("lr"));
  require(0.0 <= o.at("eps"), type, "Invalid epsilon value", o.at("eps"));
  require_betas(type, o);
  require(0.0 <= o.at("weight_decay"), type, "Invalid weight_decay value", o.at("weight_decay"));
}

Options complete_options(const std::string& type, const Options& given) {
  Options o = default_options(optimizer_def(type));
  for (const auto& [k, v] : given) o[k] = v;
  return o;
}

void for_each_with_grad(std::vector<ParamGroup>& groups, std::map<std::string, ParamState>& state,
                        const ParamUpdate& f) {
  NoGradGuard ng;
  for (ParamGroup& g : groups) {
    for (size_t i = 0; i < g.params.size(); ++i) {
      Tensor& p = g.params[i];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      f(g, p, grad, state[g.names[i]]);
    }
  }
}

Tensor& zeros_slot(ParamState& st, const std::string& name, const Tensor& p) {
  return full_slot(st, name, p, 0.0);
}

Tensor& full_slot(ParamState& st, const std::string& name, const Tensor& p, double value) {
  auto it = st.slots.find(name);
  if (it == st.slots.end()) it = st.slots.emplace(name, full(p.shape(), value, p.options())).first;
  return it->second;
}

Tensor& scalar_slot(ParamState& st, const std::string& name, float value) {
  auto it = st.slots.find(name);
  if (it == st.slots.end()) it = st.slots.emplace(name, scalar_tensor(value, DType::F32)).first;
  return it->second;
}

float scalar_value(const Tensor& t) { return static_cast<float>(t.item()); }

void set_scalar(Tensor& t, float value) { fill_(t, value); }

std::string check_scalar_slot(const Tensor& value) {
  if (!is_floating(value.dtype()))
    return "is " + std::string(dtype_name(value.dtype())) + ", expected a floating-point tensor";
  if (value.dim() != 0) return "has shape " + shape_str(value.shape()) + ", expected a 0-dim tensor";
  return "";
}

using A = AttrSchema;

AttrSchema lr_attr(double def) { return A::floating("lr", def).at_least(0).describe("learning rate"); }

AttrSchema eps_attr(double def) {
  return A::floating("eps", def).at_least(0).describe("added to the denominator for numerical stability");
}

AttrSchema weight_decay_attr() {
  return A::floating("weight_decay", 0.0).at_least(0).describe("weight decay (L2 penalty)");
}

AttrSchema betas_attr(double beta1, double beta2) {
  return A::float_list("betas").def(std::vector<double>{beta1, beta2}).range(0, 1, /*hi_open=*/true)
      .stored_as({"beta1", "beta2"}).describe("coefficients of the running averages of the gradient and its square");
}

}  // namespace dl::optim::port
