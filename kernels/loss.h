// Fused class-index loss kernels (cross_entropy = log_softmax + nll with label smoothing,
// nll_loss and multilabel_margin_loss), with PyTorch 1.13's semantics.
//
// Layout: scores (logits or log-probabilities) are a contiguous [N, C, inner] block (inner =
// product of the spatial dims d1...; 1 for [N, C]); targets are contiguous i64 [N, inner];
// weight is a contiguous [C] of the scores' dtype or undefined (all ones).
//
// A position whose target equals ignore_index contributes nothing: loss 0, weight 0, gradient 0.
// Per position p = (n, i) with target t, class weights w (W = sum_c w_c) and eps = smoothing:
//   nll:            loss_p = -w_t * x[n, t, i]
//   cross_entropy:  lse_p = log sum_c exp(x[n, c, i])
//                   loss_p = (1 - eps) * w_t * (lse_p - x_t) + eps / C * sum_c w_c * (lse_p - x_c)
// Reduction None writes loss_p to `out` [N, inner]; Sum writes sum_p loss_p to the 0-dim `out`;
// Mean writes that sum divided by total_weight = sum_p w_t over non-ignored positions (NaN when
// it is 0, like PyTorch). `total_weight` (0-dim) is always written; backward needs it for Mean.
// Totals are accumulated in double in position order (thread-count independent).
//
// Forward kernels first validate every target and, if one is neither ignore_index nor in
// [0, C), return its flat position and write nothing; otherwise they return -1. (CUDA,
// kernels/cuda/loss.cu: the targets are checked on the device and one int64 is read back, so
// each forward call synchronises the stream.)
#pragma once
#include <cstdint>

#include "engine/dispatch.h"
#include "engine/ops/loss.h"
#include "engine/tensor/tensor.h"
#include "kernels/host_device.h"

namespace dl {

struct ClassLossArgs {
  int64_t n = 0, classes = 0, inner = 1;
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;  // cross_entropy only
  Reduction reduction = Reduction::Mean;
  // false: the targets were made valid by sanitize_class_targets_stub (checks deferred): the
  // kernels skip their range check, which reads a device flag back on the GPU.
  bool check_targets = true;
};

// A target the class-index losses refuse: neither ignore_index nor a class in [0, classes).
// One predicate for the CPU and CUDA range checks and for sanitize_class_targets_stub.
DL_HOST_DEVICE inline bool bad_class_target(int64_t t, int64_t classes, int64_t ignore_index) {
  return t != ignore_index && (t < 0 || t >= classes);
}

// lse [N, inner] (scores' dtype) is written for the backward pass.
using cross_entropy_fn = int64_t (*)(const Tensor& logits, const Tensor& target, const Tensor& weight,
                                     const ClassLossArgs& args, Tensor& out, Tensor& total_weight,
                                     Tensor& lse);
// grad_out: [N, inner] for None, else 0-dim (contiguous). grad_in [N, C, inner]:
//   s * ((1 - eps) * w_t * (p_c - [c == t]) + eps / C * (W * p_c - w_c)),  p = softmax(x),
//   s = grad_out[p] (None), grad_out (Sum) or grad_out / total_weight (Mean).
using cross_entropy_backward_fn = void (*)(const Tensor& grad_out, const Tensor& logits,
                                           const Tensor& target, const Tensor& weight,
                                           const Tensor& lse, const Tensor& total_weight,
                                           const ClassLossArgs& args, Tensor& grad_in);
using nll_loss_fn = int64_t (*)(const Tensor& log_probs, const Tensor& target, const Tensor& weight,
                                const ClassLossArgs& args, Tensor& out, Tensor& total_weight);
// grad_in [N, C, inner] = -s * w_t at c == t, 0 elsewhere (s as above).
using nll_loss_backward_fn = void (*)(const Tensor& grad_out, const Tensor& target, const Tensor& weight,
                                      const Tensor& total_weight, const ClassLossArgs& args,
                                      Tensor& grad_in);

// Deferred target checks (engine/tensor/host_reads.h), no host read: `safe` (int64, the
// target's shape) is the target with every position that is neither ignore_index nor in
// [0, classes) replaced by ignore_index; `first_bad` (one int64) is the first such position, or -1.
using sanitize_class_targets_fn = void (*)(const Tensor& target, const ClassLossArgs& args, Tensor& safe,
                                           Tensor& first_bad);

// ---- multilabel_margin_loss (torch.nn.MultiLabelMarginLoss) --------------------------------------
// x [N, C] scores and t [N, C] int64 entries, both contiguous. Row r's target classes are its entries
// up to the first one that is negative (padding, -1 by convention) or >= C (a bad target: the op
// refuses it, at once or at the next host read). With is_target[r, c] = "c is one of them", every
// used slot j and every class c that is not a target give z = (1 - x[t_j]) + x[c] (in x's dtype,
// PyTorch's order), and
//   loss_rows[r] = (sum over (j, c) with z > 0 of z) / C,  summed in double in (j, c) order,
//   d loss_rows[r] / d x[c] = count(r, c) / C   (multilabel_grad_count).
// The same row code runs on both backends (one thread per row / per element on CUDA), so the
// per-row losses and gradients are the same bits on every device.

// The number of target slots a row uses.
DL_HOST_DEVICE inline int64_t multilabel_slots(const int64_t* t, int64_t C) {
  int64_t k = 0;
  while (k < C && t[k] >= 0 && t[k] < C) ++k;
  return k;
}

// Whether the row's slot list ends at a bad target (>= C); its position is then `slots`.
DL_HOST_DEVICE inline bool multilabel_bad_at(const int64_t* t, int64_t slots, int64_t C) {
  return slots < C && t[slots] >= C;
}

template <class T>
DL_HOST_DEVICE inline T multilabel_z(T x_target, T x_other) {
  return (T(1) - x_target) + x_other;
}

// Marks the row's targets in is_target[0, C) and returns its loss times C (in double).
template <class T>
DL_HOST_DEVICE double multilabel_row_sum(const T* x, const int64_t* t, int64_t slots, int64_t C, uint8_t* is_target) {
  for (int64_t c = 0; c < C; ++c) is_target[c] = 0;
  for (int64_t j = 0; j < slots; ++j) is_target[t[j]] = 1;
  double s = 0.0;
  for (int64_t j = 0; j < slots; ++j) {
    const T xt = x[t[j]];
    for (int64_t c = 0; c < C; ++c) {
      if (is_target[c]) continue;
      const T z = multilabel_z(xt, x[c]);
      if (z > T(0)) s += static_cast<double>(z);
    }
  }
  return s;
}

// C times the gradient of the row's loss at class c: for a non-target c, the slots whose
// z(t_j, c) > 0; for a target c, minus the (slot j with t_j == c, non-target c2) pairs with
// z(c, c2) > 0. (A slot repeated in the targets counts each time, like PyTorch.)
template <class T>
DL_HOST_DEVICE int64_t multilabel_grad_count(const T* x, const int64_t* t, int64_t slots, int64_t C,
                                             const uint8_t* is_target, int64_t c) {
  int64_t n = 0;
  if (!is_target[c]) {
    for (int64_t j = 0; j < slots; ++j)
      if (multilabel_z(x[t[j]], x[c]) > T(0)) ++n;
    return n;
  }
  for (int64_t j = 0; j < slots; ++j) {
    if (t[j] != c) continue;
    for (int64_t c2 = 0; c2 < C; ++c2)
      if (!is_target[c2] && multilabel_z(x[c], x[c2]) > T(0)) --n;
  }
  return n;
}

// Forward: loss_rows [N] (x's dtype), is_target u8 [N, C] (for the backward), first_bad (one
// int64): the first flat position of a bad target, or -1. Reads nothing back to the host.
using multilabel_margin_fn = void (*)(const Tensor& x, const Tensor& target, Tensor& loss_rows, Tensor& is_target,
                                      Tensor& first_bad);
// grad_in [N, C] = count(r, c) * (grad_rows[r] / C), in double, rounded once.
using multilabel_margin_backward_fn = void (*)(const Tensor& grad_rows, const Tensor& x, const Tensor& target,
                                               const Tensor& is_target, Tensor& grad_in);

DL_DECLARE_STUB(sanitize_class_targets_stub, sanitize_class_targets_fn);
DL_DECLARE_STUB(multilabel_margin_stub, multilabel_margin_fn);
DL_DECLARE_STUB(multilabel_margin_backward_stub, multilabel_margin_backward_fn);
DL_DECLARE_STUB(cross_entropy_stub, cross_entropy_fn);
DL_DECLARE_STUB(cross_entropy_backward_stub, cross_entropy_backward_fn);
DL_DECLARE_STUB(nll_loss_stub, nll_loss_fn);
DL_DECLARE_STUB(nll_loss_backward_stub, nll_loss_backward_fn);

}  // namespace dl
