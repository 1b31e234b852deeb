// Connectionist Temporal Classification loss: torch.nn.functional.ctc_loss (PyTorch 1.13).
#pragma once
#include <cstdint>
#include <vector>

#include "engine/ops/loss.h"
#include "engine/tensor/tensor.h"

namespace dl {

// log_probs: [T, N, C] log-probabilities over C classes (log_softmax over the last dim),
//            time-major; or [T, C] for one unbatched sequence.
// targets:   i64, either padded [N, S] (sample b's labels are targets[b, :target_lengths[b]];
//            the padding after them is ignored, any value) or the labels of all samples
//            concatenated, [sum(target_lengths)].
// input_lengths, target_lengths: i64 [N] (0-dim or [1] for unbatched input); each input length
//            in [0, T], each target length >= 0 (and <= S when padded). Labels lie in [0, C) and
//            are never `blank`.
// Per sample b the loss is -log p(target_b | log_probs[:input_lengths[b], b]): inf when no
// alignment fits (the target needs T_b >= L_b + the number of repeated neighbours), 0 instead
// with zero_infinity (and no gradient from that sample). Input length 0 gives 0 for an empty
// target, else inf (torch 2.x defines this; 1.13 reads uninitialised memory there).
// reduction: None -> [N] (0-dim unbatched); Sum -> sum over b; Mean -> mean over b of
// loss_b / max(target_lengths[b], 1) (torch's rule).
// Gradient: w.r.t. log_probs only, torch's formula (kernels/ctc.h): exact after log_softmax,
// zero at padded time steps t >= input_lengths[b].
// Bad input (wrong dtypes or shapes, lengths out of range, labels out of range or == blank) is
// std::invalid_argument naming the sample and the values; nothing is read out of bounds.
Tensor ctc_loss(const Tensor& log_probs, const Tensor& targets, const Tensor& input_lengths,
                const Tensor& target_lengths, int64_t blank = 0, Reduction reduction = Reduction::Mean,
                bool zero_infinity = false);

// Best-path (greedy) decoding of CTC outputs, for metrics such as sequence accuracy: per sample
// b, the argmax label of each of the first input_lengths[b] steps of log_probs [T, N, C]
// (the first maximum on ties, like torch.argmax), repeats merged, blanks dropped. Same checks
// of log_probs, input_lengths and blank as ctc_loss; no gradient.
std::vector<std::vector<int64_t>> ctc_greedy_decode(const Tensor& log_probs, const Tensor& input_lengths,
                                                    int64_t blank = 0);

}  // namespace dl
