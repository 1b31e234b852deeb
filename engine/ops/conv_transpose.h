// Transposed 2-d convolution (torch.nn.functional.conv_transpose2d), the gradient of conv2d
// with respect to its input used as a layer: decoders and learned upsampling.
#pragma once
#include "engine/ops/nn.h"

namespace dl {

// x [N, Cin, H, W] (or unbatched [Cin, H, W]), weight [Cin, Cout/groups, kh, kw], bias [Cout]
// or undefined -> [N, Cout, H_out, W_out] with
//   H_out = (H - 1) * stride - 2 * padding + dilation * (kh - 1) + output_padding + 1.
// output_padding adds rows/columns at the bottom/right; each dim's must be smaller than its
// stride or its dilation (PyTorch). The weight is exactly conv2d's weight of the convolution
// that maps the output back to the input, so the CPU path runs conv2d's kernels (oneDNN):
// forward = conv2d backward-data, input gradient = conv2d forward, weight gradient = conv2d
// backward-weights with input and output swapped.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        Pair stride = {1, 1}, Pair padding = {0, 0}, Pair output_padding = {0, 0},
                        int64_t groups = 1, Pair dilation = {1, 1});
// One dim of the output size above (int64 overflow throws ShapeOverflowError); shared with the
// model graph's shape rule. May be <= 0: the caller refuses such inputs.
int64_t conv_transpose_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation,
                                int64_t output_padding);

}  // namespace dl
