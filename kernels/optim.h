// Fused optimizer update kernels: one pass over a parameter per step instead of ~6 engine ops.
// All tensors of one call are contiguous, of one floating dtype, on one device, with the same
// number of elements. Each element is updated independently (any thread count gives the same
// bits). Scalars are rounded to the tensor dtype first, and the per-element arithmetic follows
// the op sequence of torch 1.13's single-tensor optimizers (see engine/optim/*.cpp), so a
// device without these kernels can fall back to engine ops with the same results.
#pragma once
#include "engine/dispatch.h"
#include "engine/tensor/tensor.h"

namespace dl {

struct SgdArgs {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool init_buffer = false;  // first step: momentum_buffer = d_p (torch.clone)
};
// momentum_buffer is undefined when momentum == 0.
using sgd_step_fn = void (*)(Tensor& param, const Tensor& grad, Tensor& momentum_buffer,
                             const SgdArgs& a);

struct AdamArgs {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  bool decoupled = false;  // AdamW: param *= 1 - lr * weight_decay before the update
  double step_size = 0;              // lr / (1 - beta1^step)
  double bias_correction2_sqrt = 0;  // sqrt(1 - beta2^step)
};
// max_exp_avg_sq is undefined unless amsgrad.
using adam_step_fn = void (*)(Tensor& param, const Tensor& grad, Tensor& exp_avg,
                              Tensor& exp_avg_sq, Tensor& max_exp_avg_sq, const AdamArgs& a);

DL_DECLARE_STUB(sgd_step_stub, sgd_step_fn);
DL_DECLARE_STUB(adam_step_stub, adam_step_fn);

}  // namespace dl
