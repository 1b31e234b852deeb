// conv_transpose2d through conv2d's kernel stubs (kernels/nn.h). The transposed convolution
// x [N, Cin, H, W] -> y [N, Cout, H_out, W_out] is the adjoint of the convolution
// "adj": y-space [N, Cout, H_out, W_out] -> x-space [N, Cin, H, W] whose weight is ours,
// [Cin, Cout/g, kh, kw] = [adj.o, adj.c/g, kh, kw]. So:
//   y  = adj backward-data(gy = x)
//   gx = adj forward(g)                      (no bias)
//   gw = adj backward-weights(x = g, gy = x)
//   gb = sum of g over N, H_out, W_out
// oneDNN checks adj's sizes for consistency ((H_out + 2p - d(kh - 1) - 1) / s + 1 == H), which
// holds whenever output_padding < stride; output_padding >= stride (allowed when it is below the
// dilation) makes oneDNN refuse the primitive and the CPU backend runs its reference loops.
#include "engine/ops/conv_transpose.h"

#include <stdexcept>
#include <string>

#include "engine/amp/autocast.h"
#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/nn_checks.h"
#include "kernels/nn.h"

namespace dl {

using namespace nn_checks;

int64_t conv_transpose_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation,
                                int64_t output_padding) {
  const char* what = "the transposed convolution's output size";
  int64_t out = checked_mul(in - 1, stride, what);
  out = checked_add(out, -checked_mul(pad, 2, what), what);
  out = checked_add(out, checked_mul(dilation, k - 1, what), what);
  return checked_add(out, output_padding + 1, what);
}

namespace {

// Checks the arguments (PyTorch's rules and messages) and returns the adjoint convolution.
Conv2dShape adjoint_shape(const Tensor& x4, const Tensor& weight, const Tensor& bias, Pair stride, Pair padding,
                          Pair output_padding, int64_t groups, Pair dilation) {
  const char* op = "conv_transpose2d";
  if (weight.dim() != 4)
    throw std::invalid_argument("conv_transpose2d: weight must be 4-d [in, out/groups, kh, kw], got " +
                                shape_str(weight.shape()));
  if (groups <= 0)
    throw std::invalid_argument("conv_transpose2d: groups must be positive, got " + std::to_string(groups));
  for (int i = 0; i < 2; ++i)
    if (stride[i] <= 0 || dilation[i] <= 0 || padding[i] < 0 || output_padding[i] < 0)
      throw std::invalid_argument("conv_transpose2d: stride " + pair_str(stride) + " and dilation " +
                                  pair_str(dilation) + " must be positive, padding " + pair_str(padding) +
                                  " and output_padding " + pair_str(output_padding) + " non-negative");
  for (int i = 0; i < 2; ++i)
    if (output_padding[i] >= stride[i] && output_padding[i] >= dilation[i])
      throw std::invalid_argument(
          "conv_transpose2d: output padding must be smaller than either stride or dilation, but got "
          "output_padding_height: " + std::to_string(output_padding[0]) +
          " output_padding_width: " + std::to_string(output_padding[1]) +
          " stride_height: " + std::to_string(stride[0]) + " stride_width: " + std::to_string(stride[1]) +
          " dilation_height: " + std::to_string(dilation[0]) + " dilation_width: " + std::to_string(dilation[1]));
  if (weight.size(0) % groups != 0)
    throw std::invalid_argument("conv_transpose2d: Given groups=" + std::to_string(groups) +
                                ", expected weight to be divisible by " + std::to_string(groups) +
                                " at dimension 0, but got weight of size " + shape_str(weight.shape()));
  if (x4.size(1) != weight.size(0))
    throw std::invalid_argument("conv_transpose2d: weight of size " + shape_str(weight.shape()) + ", expected input" +
                                shape_str(x4.shape()) + " to have " + std::to_string(weight.size(0)) +
                                " channels, but got " + std::to_string(x4.size(1)) + " channels instead");
  Conv2dShape s;
  s.n = x4.size(0);
  s.o = x4.size(1);  // the adjoint convolution's output is our input
  s.oh = x4.size(2);
  s.ow = x4.size(3);
  s.c = weight.size(1) * groups;
  set_conv_window(s, weight, stride, padding, dilation, groups);
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != s.c))
    throw std::invalid_argument("conv_transpose2d: weight of size " + shape_str(weight.shape()) +
                                ", expected bias to be 1-dimensional with " + std::to_string(s.c) +
                                " elements, but got bias of size " + shape_str(bias.shape()));
  if (s.oh == 0 || s.ow == 0)
    throw std::invalid_argument(std::string(op) + ": input " + shape_str(x4.shape()) + " has an empty spatial dim");
  s.h = conv_transpose_out_size(s.oh, s.kh, s.ph, s.sh, s.dh, output_padding[0]);
  s.w = conv_transpose_out_size(s.ow, s.kw, s.pw, s.sw, s.dw, output_padding[1]);
  if (s.h <= 0 || s.w <= 0)
    throw std::invalid_argument("conv_transpose2d: Given input size per channel: (" + std::to_string(s.oh) + " x " +
                                std::to_string(s.ow) + "). Calculated output size per channel: (" +
                                std::to_string(s.h) + " x " + std::to_string(s.w) + "). Output size is too small");
  return s;
}

}  // namespace

Tensor conv_transpose2d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, Pair stride, Pair padding,
                        Pair output_padding, int64_t groups, Pair dilation) {
  const auto in = amp::autocast(amp::CastPolicy::Lower, x_in, weight_in, bias_in);
  const Tensor &x = in[0], &weight = in[1], &bias = in[2];
  const char* op = "conv_transpose2d";
  check_float(x, op, "input");
  check_match(x, weight, op, "weight");
  check_match(x, bias, op, "bias");
  Tensor x4 = as_batched(x, op);
  const Conv2dShape s = adjoint_shape(x4, weight, bias, stride, padding, output_padding, groups, dilation);

  Tensor xc = contig(x4), wc = contig(weight);
  Tensor y = empty({s.n, s.c, s.h, s.w}, x.options());  // [N, Cout, H_out, W_out]
  if (y.numel() > 0) {
    NoGradGuard ng;
    if (s.o > 0) conv2d_bwd_data_stub(x.device())(s, xc, wc, y);
    else fill_(y, 0.0);  // no input channels
    if (bias.defined()) add_(y, bias.detach().view({1, s.c, 1, 1}));
  }
  if (any_requires_grad({x4, weight, bias})) {
    const bool gx_needed = x4.requires_grad(), gw_needed = weight.requires_grad();
    const bool gb_needed = bias.defined() && bias.requires_grad();
    record("ConvolutionBackward", y, {x4, weight, bias},
           [s, xc, wc, gx_needed, gw_needed, gb_needed](const Tensor& g_in) -> TensorList {
             Tensor g = g_in.contiguous();
             Tensor gx, gw, gb;
             // Every kernel below needs non-empty y-space and x-space tensors.
             const bool work = g.numel() > 0 && xc.numel() > 0;
             if (gx_needed) {
               gx = empty(xc.shape(), xc.options());
               if (work) conv2d_fwd_stub(g.device())(s, g, wc, Tensor(), gx);
               else fill_(gx, 0.0);
             }
             if (gw_needed) {
               gw = empty(wc.shape(), wc.options());
               Tensor no_bias;
               if (work) conv2d_bwd_weights_stub(g.device())(s, g, xc, gw, no_bias);
               else fill_(gw, 0.0);
             }
             if (gb_needed) gb = sum_to(g, {1, s.c, 1, 1}).view({s.c});
             return {gx, gw, gb};
           });
  }
  return unbatch_like(y, x);
}

}  // namespace dl
