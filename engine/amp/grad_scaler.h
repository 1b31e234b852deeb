// Dynamic loss scaling for fp16 training: torch.cuda.amp.GradScaler's algorithm.
//
//   loss * scale -> backward -> unscale_(params): grads *= 1/scale, found_inf = any non-finite
//   -> (clip on the true gradients) -> optimizer step unless found_inf -> update(found_inf)
//
// update(): an inf/NaN step multiplies the scale by backoff_factor and resets the growth
// tracker; otherwise the tracker counts up and after growth_interval clean steps in a row the
// scale grows by growth_factor (when the result is finite) and the tracker restarts. The scale
// is a float32 like PyTorch's _scale tensor, the reciprocal is taken in double and rounded to
// float (GradScaler.unscale_), and the arithmetic is _amp_update_scale_'s, so a run here gives
// the scale sequence PyTorch's gives for the same found_inf sequence.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl::amp {

struct GradScalerOptions {
  double init_scale = 65536.0;   // 2^16
  double growth_factor = 2.0;    // > 1
  double backoff_factor = 0.5;   // in (0, 1)
  int64_t growth_interval = 2000;  // >= 1
  bool enabled = true;
};

class GradScaler {
 public:
  // Throws std::invalid_argument for options outside the ranges above (init_scale must be > 0).
  explicit GradScaler(GradScalerOptions options = {});

  bool enabled() const { return options_.enabled; }
  const GradScalerOptions& options() const { return options_; }
  float scale() const { return scale_; }
  int64_t growth_tracker() const { return growth_tracker_; }

  // loss * scale (differentiable); the loss itself when disabled.
  Tensor scale_loss(const Tensor& loss) const;
  // Divides every defined gradient of `params` by the scale in place; returns whether any
  // gradient element is inf or NaN (found_inf). Disabled: returns false, touches nothing.
  bool unscale_(const std::vector<Tensor>& params) const;
  // The scale after a step with this found_inf (no-op when disabled).
  void update(bool found_inf);

  // Checkpoint state (/trainer attrs grad_scaler.scale, grad_scaler.growth_tracker).
  void load_state(float scale, int64_t growth_tracker);

 private:
  GradScalerOptions options_;
  float scale_;
  int64_t growth_tracker_ = 0;
};

}  // namespace dl::amp
