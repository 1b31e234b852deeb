// Loss functions with PyTorch's semantics and `reduction` = "none" | "mean" | "sum".
#pragma once
#include <string>

#include "engine/tensor/tensor.h"

namespace dl {

enum class Reduction { None, Mean, Sum };
Reduction parse_reduction(const std::string& s);  // throws naming the valid values

// logits [N, C] (or [N, C, d1...], or [C]) and a target of
//  - i64 class indices [N] (or [N, d1...]): Mean divides by the sum of the targets' weights;
//  - floating class probabilities of the logits' shape: -sum_c w_c t_c log_softmax(x)_c per
//    position, Mean divides by the number of positions (N * d1 * ...); ignore_index must be
//    negative (unused), label_smoothing mixes t with the uniform distribution (PyTorch 1.13).
// weight [C] or undefined.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight = Tensor(),
                     int64_t ignore_index = -100, Reduction reduction = Reduction::Mean,
                     double label_smoothing = 0.0);
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight = Tensor(),
                int64_t ignore_index = -100, Reduction reduction = Reduction::Mean);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target,
                      Reduction reduction = Reduction::Mean, double beta = 1.0);
// 0.5 d^2 for |d| < delta, else delta (|d| - 0.5 delta); delta > 0 (= delta * smooth_l1).
Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean,
                  double delta = 1.0);
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target,
                            const Tensor& weight = Tensor(), Reduction reduction = Reduction::Mean);
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const Tensor& weight = Tensor(),
                                        const Tensor& pos_weight = Tensor(),
                                        Reduction reduction = Reduction::Mean);

// ---- the rest of torch.nn's losses (engine/ops/loss_more.cpp) --------------------------------
// Shapes broadcast like PyTorch's where PyTorch broadcasts; targets that are labels (+1/-1,
// class indices) carry no gradient.

// log_input: exp(x) - t x, else x - t log(x + eps); full adds the Stirling term
// t log t - t + 0.5 log(2 pi t) where t > 1.
Tensor poisson_nll_loss(const Tensor& input, const Tensor& target, bool log_input = true, bool full = false,
                        double eps = 1e-8, Reduction reduction = Reduction::Mean);
// input: log-probabilities; target: probabilities (log-probabilities with log_target).
// reduction: "none" | "mean" | "sum" | "batchmean" (the sum divided by input.size(0)).
Tensor kl_div(const Tensor& input, const Tensor& target, const std::string& reduction = "mean",
              bool log_target = false);
// max(0, -target (input1 - input2) + margin); all three of the same number of dims.
Tensor margin_ranking_loss(const Tensor& input1, const Tensor& input2, const Tensor& target, double margin = 0.0,
                           Reduction reduction = Reduction::Mean);
// target +1: x; target -1: max(0, margin - x).
Tensor hinge_embedding_loss(const Tensor& input, const Tensor& target, double margin = 1.0,
                            Reduction reduction = Reduction::Mean);
// input [C] or [N, C]; target i64 of the same shape: each row's classes, ended by the first
// negative value. Per row: sum over its classes j and the other classes i of
// max(0, 1 - (x[j] - x[i])), divided by C.
Tensor multilabel_margin_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
// log(1 + exp(-target * input)), target +1/-1.
Tensor soft_margin_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
// input [N, C] (or [C]), target in [0, 1] of that shape, weight [C] or undefined; per row the
// mean over the C classes of -(t log sigmoid(x) + (1 - t) log sigmoid(-x)) w.
Tensor multilabel_soft_margin_loss(const Tensor& input, const Tensor& target, const Tensor& weight = Tensor(),
                                   Reduction reduction = Reduction::Mean);
// input1, input2 [N, D] with target [N] (or [D] with a 0-dim target) of +1/-1:
// 1 - cos(x1, x2) for +1, max(0, cos(x1, x2) - margin) for -1.
Tensor cosine_embedding_loss(const Tensor& input1, const Tensor& input2, const Tensor& target,
                             double margin = 0.0, Reduction reduction = Reduction::Mean);
// input [N, C] (or [C]); target i64 [N] (or 0-dim); p 1 or 2; weight [C] or undefined. Per row:
// sum over i != y of w[y] max(0, margin - x[y] + x[i])^p, divided by C.
Tensor multi_margin_loss(const Tensor& input, const Tensor& target, int64_t p = 1, double margin = 1.0,
                         const Tensor& weight = Tensor(), Reduction reduction = Reduction::Mean);
// max(0, margin + d(a, pos) - d(a, neg)) with d(x, y) = ||x - y + eps||_p over the last dim;
// swap uses min(d(a, neg), d(pos, neg)) as the negative distance.
Tensor triplet_margin_loss(const Tensor& anchor, const Tensor& positive, const Tensor& negative,
                           double margin = 1.0, double p = 2.0, double eps = 1e-6, bool swap = false,
                           Reduction reduction = Reduction::Mean);

}  // namespace dl
