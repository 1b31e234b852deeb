// Neural-network ops on NCHW tensors. CPU: oneDNN primitives (forward and backward).
#pragma once
#include <array>

#include "engine/tensor/tensor.h"

namespace dl {

class Generator;

using Pair = std::array<int64_t, 2>;  // (height, width)

// x [N, C, H, W], weight [O, C/groups, kh, kw], bias [O] or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              Pair stride = {1, 1}, Pair padding = {0, 0}, Pair dilation = {1, 1},
              int64_t groups = 1);
Tensor max_pool2d(const Tensor& x, Pair kernel, Pair stride, Pair padding = {0, 0},
                  bool ceil_mode = false);
Tensor avg_pool2d(const Tensor& x, Pair kernel, Pair stride, Pair padding = {0, 0},
                  bool ceil_mode = false, bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& x, Pair output_size);
// Output size of one spatial dim by PyTorch's rules, shared by the ops and the model graph's
// shape inference; int64 overflow throws ShapeOverflowError instead of wrapping.
// conv: floor((in + 2 pad - dilation (k - 1) - 1) / stride) + 1, <= 0 when the input is
// smaller than the dilated kernel. pool: the same with dilation 1; with ceil_mode the last
// window must start inside the input or the left padding.
int64_t conv_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation);
int64_t pool_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, bool ceil_mode);
// Batch norm over dim 1 of [N, C] or [N, C, *]. In training mode the batch statistics are used
// and running_mean/running_var (if defined) are updated in place:
//   running = (1 - momentum) * running + momentum * batch_stat   (unbiased var, like PyTorch).
// weight/bias may be undefined (affine=False).
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                  Tensor running_mean, Tensor running_var, bool training, double momentum,
                  double eps);
// relu(batch_norm(...)) in one pass forward and backward, bit-identical to the two ops (the
// graph runs a batch_norm2d node whose value only a relu node reads this way, engine/graph/fuse.h).
Tensor batch_norm_relu(const Tensor& x, const Tensor& weight, const Tensor& bias,
                       Tensor running_mean, Tensor running_var, bool training, double momentum,
                       double eps);
// Inverted dropout: zeroes with probability p and scales by 1/(1-p) in training; identity in eval.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);
// torch.nn.functional.dropout2d: zeroes whole channels of [N, C, H, W] (or unbatched [C, H, W])
// with probability p and scales the rest by 1/(1-p) in training; identity in eval. The mask is
// drawn like dropout's, one Philox counter per (n, c) channel. (torch 1.13 reads a 3-d input as
// [N, C, L] with a warning, pytorch#77081; dltool follows the documented [C, H, W], as conv2d.)
Tensor dropout2d(const Tensor& x, double p, bool training, Generator& gen);

}  // namespace dl
