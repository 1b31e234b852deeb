// Kernel cases (tests/support/kernel_cases.h) for interpolate, grid_sample, the CTC loss and the
// recurrent step kernels: each op run forward and backward through its public API.
//
// Tolerances: interpolate's and grid_sample's CUDA backwards scatter into the input gradient with
// f32/f64 atomicAdd, so the summation order differs from the CPU's (and from run to run): those
// cases compare within rtol 1e-5, atol 1e-6. The f32 recurrent cases chain exp/tanh over steps and
// layers (the CPU's f32 LSTM uses vec_exp.h, about 2 ulp; CUDA its own libm) and sum weight
// gradients over every step, so they allow rtol 1e-4, atol 1e-5.
#include <array>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "engine/ops.h"
#include "tests/support/kernel_cases.h"

using namespace dl;
using dl::test::case_randn;
using dl::test::case_uniform;
using dl::test::with_grads;

namespace {

// sum_k sum(outs[k] * r_k) with r_k fixed patterns: one scalar whose backward reaches every output.
Tensor weighted_sum(const std::vector<Tensor>& outs, uint64_t seed) {
  Tensor total;
  for (size_t k = 0; k < outs.size(); ++k) {
    Tensor term = (outs[k] * case_randn(outs[k].shape(), seed + k, outs[k].device())).sum();
    total = total.defined() ? total + term : term;
  }
  return total;
}

// x [2, 3, 5, 7] resized by `mode` to 9x12 (up) and 3x4 (down), with align_corners false and true
// (nearest: unset), and by scale factors (2, 1.5) (nearest's out == 2 * in rule; 7 * 1.5 -> 10).
std::vector<Tensor> interpolate_case(const Device& d, const std::string& mode, uint64_t seed) {
  Tensor x = case_randn({2, 3, 5, 7}, seed, d, true);
  std::vector<Tensor> outs;
  std::vector<std::optional<bool>> aligns = {std::nullopt};
  if (mode != "nearest") aligns = {false, true};
  for (const std::optional<bool>& ac : aligns) {
    outs.push_back(interpolate(x, Pair{9, 12}, std::nullopt, mode, ac));
    outs.push_back(interpolate(x, Pair{3, 4}, std::nullopt, mode, ac));
  }
  outs.push_back(interpolate(x, std::nullopt, std::array<double, 2>{2.0, 1.5}, mode, aligns[0]));
  return with_grads(outs, weighted_sum(outs, seed + 1), {x}, seed + 100);
}

// input [2, 3, 6, 5] and a grid [2, 4, 7, 2] reaching outside [-1, 1] (to +-1.6: padding and
// reflection matter), sampled bilinear and nearest with align_corners false and true.
std::vector<Tensor> grid_sample_case(const Device& d, GridSamplePadding padding, uint64_t seed) {
  Tensor input = case_randn({2, 3, 6, 5}, seed, d, true);
  Tensor grid = case_uniform({2, 4, 7, 2}, seed + 1, -1.6, 1.6, d, true);
  std::vector<Tensor> outs;
  for (GridSampleMode mode : {GridSampleMode::Bilinear, GridSampleMode::Nearest})
    for (bool ac : {false, true}) outs.push_back(grid_sample(input, grid, mode, padding, ac));
  return with_grads(outs, weighted_sum(outs, seed + 2), {input, grid}, seed + 100);
}

// Weights of a `layers`-layer, D-direction recurrence with G gates: PyTorch's order per layer and
// direction (w_ih [G*H, in], w_hh [G*H, H], b_ih, b_hh), uniform in +-1/sqrt(H), leaves on d.
TensorList rnn_weights(const Device& d, RnnMode mode, int64_t input, int64_t hidden, int64_t layers, bool bidir,
                       DType dtype, uint64_t seed) {
  const int64_t D = bidir ? 2 : 1, GH = rnn_gate_count(mode) * hidden;
  const double k = 1.0 / std::sqrt(static_cast<double>(hidden));
  TensorList w;
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t dir = 0; dir < D; ++dir)
      for (const Shape& s : {Shape{GH, l == 0 ? input : D * hidden}, Shape{GH, hidden}, Shape{GH}, Shape{GH}})
        w.push_back(case_uniform(s, seed++, -k, k, d, true, dtype));
  return w;
}

// x [T = 5, N = 4, I = 3] with unsorted packed lengths {5, 3, 5, 1} (or none), h0 (and c0 for
// lstm) given: outputs y, h_n (c_n), gradients of x, h0, c0 and every weight.
std::vector<Tensor> rnn_case(const Device& d, RnnMode mode, int64_t layers, bool bidir, bool packed, DType dtype,
                             uint64_t seed) {
  const int64_t T = 5, N = 4, I = 3, H = 6, D = bidir ? 2 : 1;
  const bool lstm = mode == RnnMode::LSTM;
  Tensor x = case_randn({T, N, I}, seed, d, true, dtype);
  Tensor h0 = case_randn({layers * D, N, H}, seed + 1, d, true, dtype);
  Tensor c0 = lstm ? case_randn({layers * D, N, H}, seed + 2, d, true, dtype) : Tensor();
  TensorList w = rnn_weights(d, mode, I, H, layers, bidir, dtype, seed + 10);
  Tensor lengths = packed ? from_vector<int64_t>({5, 3, 5, 1}, {N}) : Tensor();
  RnnOptions opt;
  opt.mode = mode;
  opt.num_layers = layers;
  opt.bidirectional = bidir;
  TensorList outs = rnn(x, w, h0, c0, lengths, opt);
  std::vector<Tensor> leaves = {x, h0};
  if (lstm) leaves.push_back(c0);
  leaves.insert(leaves.end(), w.begin(), w.end());
  return with_grads(outs, weighted_sum(outs, seed + 3), leaves, seed + 100);
}

}  // namespace

DL_KERNEL_CASE(interpolate_nearest, {"interpolate_fwd_stub", "interpolate_bwd_stub"},
               "interpolate nearest 2x3x5x7 -> 9x12, 3x4 and scale (2, 1.5), forward and backward",
               [](const Device& d) { return interpolate_case(d, "nearest", 201); });

DL_KERNEL_CASE(interpolate_bilinear, {"interpolate_fwd_stub", "interpolate_bwd_stub"},
               "interpolate bilinear 2x3x5x7 -> 9x12 and 3x4, align_corners false and true, scale (2, 1.5), "
               "forward and backward",
               [](const Device& d) { return interpolate_case(d, "bilinear", 211); });

DL_KERNEL_CASE(interpolate_bicubic, {"interpolate_fwd_stub", "interpolate_bwd_stub"},
               "interpolate bicubic 2x3x5x7 -> 9x12 and 3x4, align_corners false and true, scale (2, 1.5), "
               "forward and backward",
               [](const Device& d) { return interpolate_case(d, "bicubic", 221); });

DL_KERNEL_CASE(grid_sample_zeros, {"grid_sample_fwd_stub", "grid_sample_bwd_stub"},
               "grid_sample zeros padding, bilinear and nearest, align_corners both, grads of input and grid",
               [](const Device& d) { return grid_sample_case(d, GridSamplePadding::Zeros, 231); });

DL_KERNEL_CASE(grid_sample_border, {"grid_sample_fwd_stub", "grid_sample_bwd_stub"},
               "grid_sample border padding, bilinear and nearest, align_corners both, grads of input and grid",
               [](const Device& d) { return grid_sample_case(d, GridSamplePadding::Border, 241); });

DL_KERNEL_CASE(grid_sample_reflection, {"grid_sample_fwd_stub", "grid_sample_bwd_stub"},
               "grid_sample reflection padding, bilinear and nearest, align_corners both, grads of input and grid",
               [](const Device& d) { return grid_sample_case(d, GridSamplePadding::Reflection, 251); });

DL_KERNEL_CASE(ctc_loss_lengths, {"ctc_loss_stub", "ctc_loss_backward_stub", "softmax_stub", "softmax_backward_stub"},
               "ctc_loss on log_softmax of a 12x4x6: unequal input/target lengths, repeated labels, an empty "
               "target, an infeasible sample under zero_infinity (mean), blank 5 with concatenated targets (sum), "
               "per-sample losses; gradient of the logits",
               [](const Device& d) {
                 Tensor x = case_randn({12, 4, 6}, 261, d, true);
                 Tensor lp = log_softmax(x, 2);
                 // Sample 3 needs 7 steps for "3 3 3 3" but has 5: infinite, zeroed.
                 Tensor padded = from_vector<int64_t>({1, 1, 2, 0, 2, 3, 4, 1, 0, 0, 0, 0, 3, 3, 3, 3}, {4, 4}).to(d);
                 Tensor in_len = from_vector<int64_t>({12, 9, 12, 5}, {4});
                 Tensor tg_len = from_vector<int64_t>({3, 4, 0, 4}, {4});
                 Tensor mean_zi = ctc_loss(lp, padded, in_len, tg_len, 0, Reduction::Mean, true);
                 Tensor per_sample = ctc_loss(lp, padded, in_len, tg_len, 0, Reduction::None, true);
                 // blank 5: labels in [0, 5); concatenated targets of lengths 2, 3, 1, 2.
                 Tensor concat = from_vector<int64_t>({0, 0, 1, 2, 1, 4, 3, 0}, {8}).to(d);
                 Tensor sum_b5 = ctc_loss(lp, concat, from_vector<int64_t>({10, 12, 3, 7}, {4}),
                                          from_vector<int64_t>({2, 3, 1, 2}, {4}), 5, Reduction::Sum, false);
                 Tensor y = mean_zi + sum_b5 * 0.3 + (per_sample * case_randn({4}, 262, d)).sum();
                 return with_grads({mean_zi, per_sample, sum_b5}, y, {x}, 263);
               });

DL_KERNEL_CASE(rnn_lstm_packed, {"rnn_step_fwd_stub", "rnn_step_bwd_stub", "gemm_stub"},
               "lstm 2 layers bidirectional, packed unsorted lengths, h0/c0: outputs, h_n, c_n and gradients of "
               "x, h0, c0 and every weight (f32)",
               [](const Device& d) { return rnn_case(d, RnnMode::LSTM, 2, true, true, DType::F32, 271); },
               1e-4, 1e-5);

DL_KERNEL_CASE(rnn_gru_packed, {"rnn_step_fwd_stub", "rnn_step_bwd_stub", "gemm_stub"},
               "gru 2 layers bidirectional, packed unsorted lengths, h0: outputs, h_n and gradients of x, h0 and "
               "every weight (f64)",
               [](const Device& d) { return rnn_case(d, RnnMode::GRU, 2, true, true, DType::F64, 281); });

DL_KERNEL_CASE(rnn_tanh_relu, {"rnn_step_fwd_stub", "rnn_step_bwd_stub", "gemm_stub"},
               "rnn_tanh 2 layers bidirectional packed, rnn_relu 1 layer unpacked: outputs, h_n and gradients "
               "(f32)",
               [](const Device& d) {
                 std::vector<Tensor> out = rnn_case(d, RnnMode::RNN_TANH, 2, true, true, DType::F32, 291);
                 std::vector<Tensor> relu = rnn_case(d, RnnMode::RNN_RELU, 1, false, false, DType::F32, 301);
                 out.insert(out.end(), relu.begin(), relu.end());
                 return out;
               },
               1e-4, 1e-5);
