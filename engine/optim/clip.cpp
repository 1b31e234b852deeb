#include "engine/optim/clip.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"

namespace dl::optim {

namespace {

std::vector<Tensor> grads_of(const std::vector<Tensor>& params, double norm_type) {
  if (!(norm_type > 0))
    throw std::invalid_argument("clip_grad_norm_: norm_type must be positive or inf, got " +
                                std::to_string(norm_type));
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  return grads;
}

// Per-gradient norms in the gradient's dtype (like torch.norm), combined in float64 on the
// gradients' device.
Tensor total_norm(const std::vector<Tensor>& grads, double norm_type) {
  Tensor total = zeros({}, TensorOptions(DType::F64, grads.front().device()));
  if (std::isinf(norm_type)) {
    for (const Tensor& g : grads)
      if (g.numel() > 0) total = maximum(total, max(abs(g)).to(DType::F64));  // NaN wins, like torch.max
    return total;
  }
  for (const Tensor& g : grads) {
    Tensor n;
    if (norm_type == 2.0) n = sqrt(sum(mul(g, g)).to(DType::F64));
    else if (norm_type == 1.0) n = sum(abs(g)).to(DType::F64);
    else n = pow(sum(pow(abs(g), norm_type)).to(DType::F64), 1.0 / norm_type);
    total = add(total, pow(n, norm_type));
  }
  return pow(total, 1.0 / norm_type);
}

// g *= clamp(max_norm / (total + 1e-6), max=1), as torch does: a no-op at 1, and a NaN norm
// makes every gradient NaN.
void scale_grads(std::vector<Tensor>& grads, const Tensor& total, double max_norm) {
  const Tensor coef = clamp(div(full({}, max_norm, total.options()), add(total, 1e-6)), std::nullopt, 1.0);
  for (Tensor& g : grads) mul_(g, coef);
}

}  // namespace

Tensor clip_grad_norm_async_(const std::vector<Tensor>& params, double max_norm, double norm_type) {
  NoGradGuard ng;
  std::vector<Tensor> grads = grads_of(params, norm_type);
  if (grads.empty()) return Tensor();
  Tensor total = total_norm(grads, norm_type);
  scale_grads(grads, total, max_norm);
  return total;
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  NoGradGuard ng;
  std::vector<Tensor> grads = grads_of(params, norm_type);
  if (grads.empty()) return 0.0;
  const Tensor total_t = total_norm(grads, norm_type);
  const double total = total_t.item();
  if (error_if_nonfinite && !std::isfinite(total))
    throw std::runtime_error("The total norm of order " + std::to_string(norm_type) +
                             " for gradients from `parameters` is non-finite, so it cannot be clipped. "
                             "To disable this error and scale the gradients by the non-finite norm "
                             "anyway, set error_if_nonfinite=false");
  scale_grads(grads, total_t, max_norm);
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  NoGradGuard ng;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    Tensor g = p.grad();
    g.copy_(clamp(g, -clip_value, clip_value));
  }
}

}  // namespace dl::optim
