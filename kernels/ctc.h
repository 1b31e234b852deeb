// CTC loss kernels (Graves et al. 2006, "Connectionist Temporal Classification"), with PyTorch
// 1.13's CPU semantics (aten/src/ATen/native/LossCTC.cpp).
//
// Layout: log_probs is a contiguous [T, N, C] block (time-major, like torch); targets is a
// contiguous i64 buffer where sample b's labels are targets[offsets[b] + k], k < target_len[b].
// The op (engine/ops/ctc.cpp) has checked every length and label before a kernel runs: input_len
// in [0, T], labels in [0, C) and != blank, offsets + target_len inside the buffer.
//
// With l' = the target with a blank before, between and after its labels (length 2L + 1):
//   forward:  log_alpha [N, T, 2 Lmax + 1] (log_probs' dtype; rows t < input_len[b] and columns
//             s <= 2 L_b are written), nll [N] = -log(alpha[T_b - 1, 2L] + alpha[T_b - 1, 2L - 1]);
//             inf when no alignment exists; input_len 0 gives 0 (L = 0) or inf.
//   backward: grad [T, N, C] = (exp(lp) - exp(log(sum_{s: l'_s = c} alpha_t(s) beta_t(s)) + nll - lp))
//             * grad_nll[b] for t < input_len[b], 0 for the padded steps t >= input_len[b], and 0
//             for a whole sample when zero_infinity and its nll is inf. Like torch, this is the
//             gradient the loss passes to log_probs = log_softmax(x): the exp(lp) term cancels
//             in log_softmax's backward (sum_c of the gradient is 0), so x gets p - posterior.
// Samples run in parallel, each on one thread in a fixed order: results do not depend on the
// thread count. CUDA (kernels/cuda/ctc.cu): one block per sample, no atomics, deterministic too.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/dispatch.h"
#include "engine/tensor/tensor.h"

namespace dl {

struct CtcArgs {
  int64_t max_time = 0, batch = 0, classes = 0;  // T, N, C
  int64_t blank = 0;
  int64_t max_target_len = 0;                    // Lmax = max_b target_len[b]
  std::vector<int64_t> input_len, target_len;    // [N] each
  std::vector<int64_t> target_offset;            // [N], element offsets into targets
  bool zero_infinity = false;
};

using ctc_loss_fn = void (*)(const Tensor& log_probs, const Tensor& targets, const CtcArgs& args,
                             Tensor& nll, Tensor& log_alpha);
// grad_nll: contiguous [N] of log_probs' dtype; grad: contiguous [T, N, C], fully written.
using ctc_loss_backward_fn = void (*)(const Tensor& grad_nll, const Tensor& log_probs, const Tensor& targets,
                                      const Tensor& nll, const Tensor& log_alpha, const CtcArgs& args,
                                      Tensor& grad);

DL_DECLARE_STUB(ctc_loss_stub, ctc_loss_fn);
DL_DECLARE_STUB(ctc_loss_backward_stub, ctc_loss_backward_fn);

}  // namespace dl
