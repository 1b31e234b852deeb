#include "engine/amp/grad_scaler.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"

namespace dl::amp {

GradScaler::GradScaler(GradScalerOptions options) : options_(options), scale_(static_cast<float>(options.init_scale)) {
  if (!(options_.init_scale > 0) || !std::isfinite(static_cast<float>(options_.init_scale)))
    throw std::invalid_argument("grad_scaler.init_scale must be a finite float32 > 0, got " +
                                std::to_string(options_.init_scale));
  if (!(options_.growth_factor > 1))
    throw std::invalid_argument("grad_scaler.growth_factor must be > 1, got " + std::to_string(options_.growth_factor));
  if (!(options_.backoff_factor > 0 && options_.backoff_factor < 1))
    throw std::invalid_argument("grad_scaler.backoff_factor must be in (0, 1), got " +
                                std::to_string(options_.backoff_factor));
  if (options_.growth_interval < 1)
    throw std::invalid_argument("grad_scaler.growth_interval must be >= 1, got " +
                                std::to_string(options_.growth_interval));
}

Tensor GradScaler::scale_loss(const Tensor& loss) const {
  if (!enabled()) return loss;
  return mul(loss, static_cast<double>(scale_));  // f32 loss * f32 scale, as outputs * self._scale
}

bool GradScaler::unscale_(const std::vector<Tensor>& params) const {
  if (!enabled()) return false;
  // inv_scale = self._scale.double().reciprocal().float()
  const float inv_scale = static_cast<float>(1.0 / static_cast<double>(scale_));
  NoGradGuard ng;
  bool found_inf = false;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    found_inf = found_inf || !isfinite_all(g);
    mul_(g, static_cast<double>(inv_scale));
  }
  return found_inf;
}

void GradScaler::update(bool found_inf) {
  if (!enabled()) return;
  // _amp_update_scale_ (float scale, double factors, the product stored as float).
  if (found_inf) {
    scale_ = static_cast<float>(static_cast<double>(scale_) * options_.backoff_factor);
    growth_tracker_ = 0;
    return;
  }
  const int64_t successful = growth_tracker_ + 1;
  if (successful == options_.growth_interval) {
    const float grown = static_cast<float>(static_cast<double>(scale_) * options_.growth_factor);
    if (std::isfinite(grown)) scale_ = grown;
    growth_tracker_ = 0;
  } else {
    growth_tracker_ = successful;
  }
}

void GradScaler::load_state(float scale, int64_t growth_tracker) {
  if (!(scale > 0) || !std::isfinite(scale))
    throw std::invalid_argument("grad scaler state: scale must be a finite number > 0, got " + std::to_string(scale));
  if (growth_tracker < 0 || growth_tracker >= options_.growth_interval)
    throw std::invalid_argument("grad scaler state: growth_tracker " + std::to_string(growth_tracker) +
                                " is outside [0, growth_interval " + std::to_string(options_.growth_interval) + ")");
  scale_ = scale;
  growth_tracker_ = growth_tracker;
}

}  // namespace dl::amp
