#include "engine/optim/clip.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"

namespace dl::optim {

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  NoGradGuard ng;
  std::vector<Tensor> grads;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  if (!(norm_type > 0))
    throw std::invalid_argument("clip_grad_norm_: norm_type must be positive or inf, got " +
                                std::to_string(norm_type));
  // Per-gradient norms in the gradient's dtype (like torch.norm), combined in double.
  double total = 0.0;
  if (std::isinf(norm_type)) {
    for (const Tensor& g : grads) {
      if (g.numel() == 0) continue;
      double m = max(abs(g)).item();
      total = (std::isnan(m) || std::isnan(total)) ? NAN : std::max(total, m);  // NaN wins, like torch.max
    }
  } else {
    for (const Tensor& g : grads) {
      double n;
      if (norm_type == 2.0) n = std::sqrt(sum(mul(g, g)).item());
      else if (norm_type == 1.0) n = sum(abs(g)).item();
      else n = std::pow(sum(pow(abs(g), norm_type)).item(), 1.0 / norm_type);
      total += std::pow(n, norm_type);
    }
    total = std::pow(total, 1.0 / norm_type);
  }
  if (error_if_nonfinite && !std::isfinite(total))
    throw std::runtime_error("The total norm of order " + std::to_string(norm_type) +
                             " for gradients from `parameters` is non-finite, so it cannot be clipped. "
                             "To disable this error and scale the gradients by the non-finite norm "
                             "anyway, set error_if_nonfinite=false");
  double coef = max_norm / (total + 1e-6);
  if (coef < 1.0 || std::isnan(coef)) {  // torch multiplies by clamp(coef, max=1); 1 is a no-op
    for (Tensor& g : grads) mul_(g, coef);
  }
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
