// Fused multi-tensor optimizer updates: one pass over every parameter of a list per step
// instead of ~6 engine ops per parameter, and on CUDA one launch for the whole list (a
// param group, usually) instead of one per parameter, like torch's fused/foreach optimizers.
//
// A call updates a list of rows {param, grad, state slots...} (OptimRow, the roles each kernel
// reads are listed with its arguments). The tensors of a row are contiguous, of one floating
// dtype, on one device, with the same number of elements; every row of a call has that dtype
// and device and the same arguments (engine/optim/fused.h builds the lists). Each element is
// updated independently (any thread count or launch shape gives the same bits). Scalars are
// rounded to the tensor dtype first, and the per-element arithmetic follows the op sequence of
// torch 1.13's single-tensor optimizers (engine/optim/*.cpp, kernels/optim_update.h), so a
// device without these kernels falls back to engine ops with the same results.
#pragma once
#include <array>
#include <tuple>
#include <vector>

#include "engine/dispatch.h"
#include "engine/tensor/tensor.h"

namespace dl {

constexpr int kOptimRoles = 5;  // param, grad and up to three state slots
using OptimRow = std::array<Tensor, kOptimRoles>;
using OptimList = std::vector<OptimRow>;

// The arguments of one call; tie() compares them (equal arguments share a call).
// Rows: {param, grad, momentum_buffer (undefined when momentum == 0)}.
struct SgdArgs {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool init_buffer = false;  // first step: momentum_buffer = d_p (torch.clone)
  auto tie() const { return std::tie(lr, momentum, dampening, weight_decay, nesterov, init_buffer); }
};

// Rows: {param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq (undefined unless amsgrad)}.
struct AdamArgs {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  bool decoupled = false;  // AdamW: param *= 1 - lr * weight_decay before the update
  bool amsgrad = false;
  double step_size = 0;              // lr / (1 - beta1^step)
  double bias_correction2_sqrt = 0;  // sqrt(1 - beta2^step)
  auto tie() const {
    return std::tie(lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step_size, bias_correction2_sqrt);
  }
};

// Rows: {param, grad, square_avg, momentum_buffer (momentum > 0), grad_avg (centered)}.
struct RmspropArgs {
  double lr = 0, alpha = 0, eps = 0, weight_decay = 0, momentum = 0;
  bool centered = false;
  auto tie() const { return std::tie(lr, alpha, eps, weight_decay, momentum, centered); }
};

// Rows: {param, grad, sum}. clr = lr / (1 + (step - 1) * lr_decay).
struct AdagradArgs {
  double clr = 0, eps = 0, weight_decay = 0;
  auto tie() const { return std::tie(clr, eps, weight_decay); }
};

// Rows: {param, grad, square_avg, acc_delta}.
struct AdadeltaArgs {
  double lr = 0, rho = 0, eps = 0, weight_decay = 0;
  auto tie() const { return std::tie(lr, rho, eps, weight_decay); }
};

// Rows: {param, grad, exp_avg, exp_inf}. clr = lr / (1 - beta1^step).
struct AdamaxArgs {
  double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0, clr = 0;
  auto tie() const { return std::tie(beta1, beta2, eps, weight_decay, clr); }
};

// Rows: {param, grad, exp_avg, exp_avg_sq}. The step's coefficients of the gradient and of
// exp_avg: -lr (1 - mu) / (1 - mu_product) and -lr mu_next / (1 - mu_product mu_next).
struct NadamArgs {
  double beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  double bias_correction2 = 0, grad_coef = 0, exp_avg_coef = 0;
  auto tie() const { return std::tie(beta1, beta2, eps, weight_decay, bias_correction2, grad_coef, exp_avg_coef); }
};

// Rows: {param, grad, exp_avg, exp_avg_sq}. rect = 0: rho_t <= 5, the unadapted step.
struct RadamArgs {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  double bias_correction1 = 0, bias_correction2_sqrt = 0, rect = 0;
  bool rectified = false;
  auto tie() const {
    return std::tie(lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2_sqrt, rect, rectified);
  }
};

// Rows: {param, grad, ax}. eta and mu: the float32 state scalars before the step.
struct AsgdArgs {
  double lambd = 0, weight_decay = 0, eta = 0, mu = 0;
  auto tie() const { return std::tie(lambd, weight_decay, eta, mu); }
};

// Rows: {param, grad, prev, step_size}.
struct RpropArgs {
  double etaminus = 0, etaplus = 0, step_size_min = 0, step_size_max = 0;
  auto tie() const { return std::tie(etaminus, etaplus, step_size_min, step_size_max); }
};

using sgd_step_fn = void (*)(const OptimList& rows, const SgdArgs& a);
using adam_step_fn = void (*)(const OptimList& rows, const AdamArgs& a);
using rmsprop_step_fn = void (*)(const OptimList& rows, const RmspropArgs& a);
using adagrad_step_fn = void (*)(const OptimList& rows, const AdagradArgs& a);
using adadelta_step_fn = void (*)(const OptimList& rows, const AdadeltaArgs& a);
using adamax_step_fn = void (*)(const OptimList& rows, const AdamaxArgs& a);
using nadam_step_fn = void (*)(const OptimList& rows, const NadamArgs& a);
using radam_step_fn = void (*)(const OptimList& rows, const RadamArgs& a);
using asgd_step_fn = void (*)(const OptimList& rows, const AsgdArgs& a);
using rprop_step_fn = void (*)(const OptimList& rows, const RpropArgs& a);

DL_DECLARE_STUB(sgd_step_stub, sgd_step_fn);
DL_DECLARE_STUB(adam_step_stub, adam_step_fn);
DL_DECLARE_STUB(rmsprop_step_stub, rmsprop_step_fn);
DL_DECLARE_STUB(adagrad_step_stub, adagrad_step_fn);
DL_DECLARE_STUB(adadelta_step_stub, adadelta_step_fn);
DL_DECLARE_STUB(adamax_step_stub, adamax_step_fn);
DL_DECLARE_STUB(nadam_step_stub, nadam_step_fn);
DL_DECLARE_STUB(radam_step_stub, radam_step_fn);
DL_DECLARE_STUB(asgd_step_stub, asgd_step_fn);
DL_DECLARE_STUB(rprop_step_stub, rprop_step_fn);

}  // namespace dl
