// NCHW neural-network ops: argument checks and output shapes (PyTorch's rules), kernel
// dispatch (kernels/nn.h) and derivatives. Conv and pooling backward use the backend's own
// backward kernels (oneDNN / cuDNN); batch norm and dropout backward are fused kernels too.
#include "engine/ops/nn.h"

#include <stdexcept>
#include <string>

#include "engine/amp/autocast.h"
#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/nn_checks.h"
#include "engine/ops/random.h"
#include "kernels/nn.h"

namespace dl {

using namespace nn_checks;

namespace {

Pool2dShape pool_shape(const Tensor& x4, Pair kernel, Pair stride, Pair padding, bool ceil_mode,
                       PoolKind kind, const char* op) {
  for (int i = 0; i < 2; ++i) {
    if (kernel[i] <= 0 || stride[i] <= 0 || padding[i] < 0)
      throw std::invalid_argument(std::string(op) + ": kernel " + pair_str(kernel) + " and stride " +
                                  pair_str(stride) + " must be positive, padding " + pair_str(padding) +
                                  " non-negative");
    if (padding[i] > kernel[i] / 2)
      throw std::invalid_argument(std::string(op) + ": padding " + pair_str(padding) +
                                  " should be at most half of the kernel size " + pair_str(kernel));
  }
  Pool2dShape s;
  s.n = x4.size(0);
  s.c = x4.size(1);
  s.h = x4.size(2);
  s.w = x4.size(3);
  s.kh = kernel[0];
  s.kw = kernel[1];
  s.sh = stride[0];
  s.sw = stride[1];
  s.ph = padding[0];
  s.pw = padding[1];
  s.kind = kind;
  s.oh = pool_out_size(s.h, s.kh, s.ph, s.sh, ceil_mode);
  s.ow = pool_out_size(s.w, s.kw, s.pw, s.sw, ceil_mode);
  if (s.c == 0 || s.h == 0 || s.w == 0)
    throw std::invalid_argument(std::string(op) + ": input " + shape_str(x4.shape()) +
                                " has an empty non-batch dimension");
  if (s.oh <= 0 || s.ow <= 0)
    throw std::invalid_argument(std::string(op) + ": input " + shape_str(x4.shape()) + " is too small for kernel " +
                                pair_str(kernel) + " with padding " + pair_str(padding) +
                                " (output " + std::to_string(s.oh) + "x" + std::to_string(s.ow) + ")");
  return s;
}

Tensor pool2d(const Tensor& x, Pair kernel, Pair stride, Pair padding, bool ceil_mode, PoolKind kind,
              const char* op, const char* backward_name) {
  check_float(x, op, "input");
  Tensor x4 = as_batched(x, op);
  Pool2dShape s = pool_shape(x4, kernel, stride, padding, ceil_mode, kind, op);
  Tensor xc = contig(x4);
  Tensor y = empty({s.n, s.c, s.oh, s.ow}, x.options());
  const bool need_grad = any_requires_grad({x4});
  Tensor ws;
  if (y.numel() > 0) pool2d_fwd_stub(x.device())(s, xc, y, need_grad ? &ws : nullptr);
  if (need_grad)
    record(backward_name, y, {x4}, [s, ws, opts = x.options()](const Tensor& g) -> TensorList {
      Tensor gx = empty({s.n, s.c, s.h, s.w}, opts);
      if (gx.numel() > 0) pool2d_bwd_stub(g.device())(s, g.contiguous(), ws, gx);
      return {gx};
    });
  return unbatch_like(y, x);
}

}  // namespace

// ---- output sizes --------------------------------------------------------------------------
namespace {
// Rounds toward minus infinity (den > 0) without an intermediate that can overflow: -num +
// den - 1 did for a kernel near the int64 maximum, so max_pool2d kernel_size 2^63-1 on a
// 28x28 input came out 1x1 instead of empty.
int64_t floor_div(int64_t num, int64_t den) {
  const int64_t q = num / den;
  return num % den != 0 && num < 0 ? q - 1 : q;
}

// in + 2 pad - span, where span is the (dilated) kernel extent.
int64_t padded_minus(int64_t in, int64_t pad, int64_t span) {
  const char* what = "the padded input size";
  return checked_add(checked_add(in, checked_mul(pad, 2, what), what), -span, what);
}
}  // namespace

int64_t conv_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation) {
  int64_t span = checked_add(checked_mul(dilation, k - 1, "the dilated kernel size"), 1, "the dilated kernel size");
  return floor_div(padded_minus(in, pad, span), stride) + 1;
}

// PyTorch's pooling_output_shape.
int64_t pool_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, bool ceil_mode) {
  int64_t num = checked_add(padded_minus(in, pad, k), ceil_mode ? stride - 1 : 0, "the padded input size");
  int64_t out = floor_div(num, stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// ---- convolution ---------------------------------------------------------------------------
Tensor conv2d(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, Pair stride, Pair padding,
              Pair dilation, int64_t groups) {
  const auto in = amp::autocast(amp::CastPolicy::Lower, x_in, weight_in, bias_in);
  const Tensor &x = in[0], &weight = in[1], &bias = in[2];
  const char* op = "conv2d";
  check_float(x, op, "input");
  check_match(x, weight, op, "weight");
  check_match(x, bias, op, "bias");
  Tensor x4 = as_batched(x, op);
  if (weight.dim() != 4)
    throw std::invalid_argument("conv2d: weight must be 4-d [out, in/groups, kh, kw], got " + shape_str(weight.shape()));
  if (groups <= 0) throw std::invalid_argument("conv2d: groups must be positive, got " + std::to_string(groups));
  for (int i = 0; i < 2; ++i)
    if (stride[i] <= 0 || dilation[i] <= 0 || padding[i] < 0)
      throw std::invalid_argument("conv2d: stride " + pair_str(stride) + " and dilation " + pair_str(dilation) +
                                  " must be positive, padding " + pair_str(padding) + " non-negative");
  Conv2dShape s;
  s.n = x4.size(0);
  s.c = x4.size(1);
  s.h = x4.size(2);
  s.w = x4.size(3);
  s.o = weight.size(0);
  set_conv_window(s, weight, stride, padding, dilation, groups);
  if (s.c != weight.size(1) * groups || s.o % groups != 0)
    throw std::invalid_argument("conv2d: input " + shape_str(x.shape()) + " does not match weight " +
                                shape_str(weight.shape()) + " with groups=" + std::to_string(groups) +
                                " (expected " + std::to_string(weight.size(1) * groups) +
                                " input channels and out channels divisible by groups)");
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != s.o))
    throw std::invalid_argument("conv2d: bias " + shape_str(bias.shape()) + " does not match " +
                                std::to_string(s.o) + " output channels");
  s.oh = conv_out_size(s.h, s.kh, s.ph, s.sh, s.dh);
  s.ow = conv_out_size(s.w, s.kw, s.pw, s.sw, s.dw);
  if (s.oh <= 0 || s.ow <= 0)
    throw std::invalid_argument("conv2d: input " + shape_str(x.shape()) + " with padding " + pair_str(padding) +
                                " is smaller than the dilated kernel " + shape_str(weight.shape()));

  Tensor xc = contig(x4), wc = contig(weight), bc = contig(bias);
  Tensor y = empty({s.n, s.o, s.oh, s.ow}, x.options());
  if (y.numel() > 0 && s.c > 0) {
    conv2d_fwd_stub(x.device())(s, xc, wc, bc, y);
  } else if (y.numel() > 0) {  // no input channels: y = bias
    NoGradGuard ng;
    if (bc.defined()) y.copy_(bc.view({1, s.o, 1, 1}));
    else fill_(y, 0.0);
  }
  if (any_requires_grad({x4, weight, bias})) {
    const bool gx_needed = x4.requires_grad(), gw_needed = weight.requires_grad();
    const bool gb_needed = bias.defined() && bias.requires_grad();
    record("ConvolutionBackward", y, {x4, weight, bias},
           [s, xc, wc, gx_needed, gw_needed, gb_needed](const Tensor& g_in) -> TensorList {
             Tensor g = g_in.contiguous();
             Tensor gx, gw, gb;
             const bool work = g.numel() > 0 && s.c > 0;
             if (gx_needed) {
               gx = empty(xc.shape(), xc.options());
               if (work) conv2d_bwd_data_stub(g.device())(s, g, wc, gx);
               else fill_(gx, 0.0);
             }
             if (gw_needed || gb_needed) {
               gw = empty(wc.shape(), wc.options());
               Tensor gb_out = gb_needed ? empty({s.o}, wc.options()) : Tensor();
               if (work) {
                 conv2d_bwd_weights_stub(g.device())(s, xc, g, gw, gb_out);
               } else {
                 fill_(gw, 0.0);
                 if (gb_out.defined()) gb_out.copy_(sum_to(g, {1, s.o, 1, 1}).view({s.o}));
               }
               gb = gb_out;
               if (!gw_needed) gw = Tensor();
             }
             return {gx, gw, gb};
           });
  }
  return unbatch_like(y, x);
}

// ---- pooling -------------------------------------------------------------------------------
Tensor max_pool2d(const Tensor& x, Pair kernel, Pair stride, Pair padding, bool ceil_mode) {
  return pool2d(x, kernel, stride, padding, ceil_mode, PoolKind::Max, "max_pool2d", "MaxPool2DBackward");
}

Tensor avg_pool2d(const Tensor& x, Pair kernel, Pair stride, Pair padding, bool ceil_mode,
                  bool count_include_pad) {
  return pool2d(x, kernel, stride, padding, ceil_mode,
                count_include_pad ? PoolKind::AvgIncludePad : PoolKind::AvgExcludePad, "avg_pool2d",
                "AvgPool2DBackward");
}

Tensor adaptive_avg_pool2d(const Tensor& x, Pair output_size) {
  const char* op = "adaptive_avg_pool2d";
  check_float(x, op, "input");
  Tensor x4 = as_batched(x, op);
  if (output_size[0] <= 0 || output_size[1] <= 0)
    throw std::invalid_argument("adaptive_avg_pool2d: output size " + pair_str(output_size) + " must be positive");
  if (x4.size(1) == 0 || x4.size(2) == 0 || x4.size(3) == 0)
    throw std::invalid_argument("adaptive_avg_pool2d: input " + shape_str(x.shape()) +
                                " has an empty non-batch dimension");
  Pool2dShape s;
  s.n = x4.size(0);
  s.c = x4.size(1);
  s.h = x4.size(2);
  s.w = x4.size(3);
  s.oh = output_size[0];
  s.ow = output_size[1];
  Tensor y = empty({s.n, s.c, s.oh, s.ow}, x.options());
  if (y.numel() > 0) adaptive_avg_pool2d_fwd_stub(x.device())(s, contig(x4), y);
  if (any_requires_grad({x4}))
    record("AdaptiveAvgPool2DBackward", y, {x4}, [s, opts = x.options()](const Tensor& g) -> TensorList {
      Tensor gx = empty({s.n, s.c, s.h, s.w}, opts);
      if (gx.numel() > 0) adaptive_avg_pool2d_bwd_stub(g.device())(s, g.contiguous(), gx);
      return {gx};
    });
  return unbatch_like(y, x);
}

// ---- batch norm ----------------------------------------------------------------------------
namespace {

// batch_norm, and with relu batch_norm followed by relu as one op (one output, one backward
// node that saves x and the output, whose > 0 mask is relu's backward).
Tensor batch_norm_impl(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in, Tensor running_mean,
                       Tensor running_var, bool training, double momentum, double eps, bool relu) {
  const auto in = amp::autocast(amp::CastPolicy::F32, x_in, weight_in, bias_in);
  const Tensor &x = in[0], &weight = in[1], &bias = in[2];
  const int64_t C = check_batch_norm_args("batch_norm", x, weight, bias, running_mean, running_var);
  const int64_t per_channel = C > 0 ? x.numel() / C : 0;
  if (training && per_channel <= 1)
    throw std::invalid_argument("batch_norm: expected more than 1 value per channel when training, got input " +
                                shape_str(x.shape()));
  if (!training && (!running_mean.defined() || !running_var.defined()))
    throw std::invalid_argument("batch_norm: running_mean and running_var must be defined in eval mode");

  Tensor xc = contig(x), wc = contig(weight), bc = contig(bias);
  Tensor y = empty(x.shape(), x.options());
  Tensor mean, var;  // [C], x's dtype; biased variance
  if (training) {
    mean = empty({C}, x.options());
    var = empty({C}, x.options());
  } else {
    mean = running_mean.detach().to(x.dtype()).contiguous();
    var = running_var.detach().to(x.dtype()).contiguous();
  }
  if (x.numel() > 0) batch_norm_fwd_stub(x.device())(xc, wc, bc, mean, var, training, eps, relu, y);

  if (training) update_running_stats(running_mean, running_var, mean, var, momentum, per_channel);

  if (any_requires_grad({x, weight, bias})) {
    const bool gx_needed = x.requires_grad(), gw_needed = weight.defined() && weight.requires_grad();
    const bool gb_needed = bias.defined() && bias.requires_grad();
    Tensor relu_y = relu ? y.detach() : Tensor();
    record(relu ? "BatchNormReluBackward" : "NativeBatchNormBackward", y, {x, weight, bias},
           [xc, wc, mean, var, relu_y, training, eps, gx_needed, gw_needed, gb_needed](const Tensor& g_in) -> TensorList {
             Tensor g = g_in.contiguous();
             const int64_t C = xc.size(1);
             Tensor gx = gx_needed ? empty(xc.shape(), xc.options()) : Tensor();
             Tensor gw = gw_needed ? empty({C}, xc.options()) : Tensor();
             Tensor gb = gb_needed ? empty({C}, xc.options()) : Tensor();
             if (xc.numel() > 0) {
               batch_norm_bwd_stub(g.device())(xc, g, relu_y, wc, mean, var, training, eps, gx, gw, gb);
             } else {
               if (gw.defined()) fill_(gw, 0.0);
               if (gb.defined()) fill_(gb, 0.0);
             }
             return {gx, gw, gb};
           });
  }
  return y;
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                  Tensor running_var, bool training, double momentum, double eps) {
  return batch_norm_impl(x, weight, bias, running_mean, running_var, training, momentum, eps, false);
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, bool training, double momentum, double eps) {
  return batch_norm_impl(x, weight, bias, running_mean, running_var, training, momentum, eps, true);
}

// ---- dropout -------------------------------------------------------------------------------
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  if (!(p >= 0.0 && p <= 1.0))
    throw std::invalid_argument("dropout: probability has to be between 0 and 1, but got " + std::to_string(p));
  if (!training || p == 0.0 || x.numel() == 0) return x;  // identity, no random draw (PyTorch)
  check_float(x, "dropout", "input");
  if (p == 1.0) return mul(x, 0.0);
  Tensor xc = contig(x);
  Tensor y = empty(x.shape(), x.options());
  Tensor mask = empty(x.shape(), x.options());  // 0 or 1 / (1 - p)
  const uint64_t offset = gen.advance(static_cast<uint64_t>(x.numel()));
  dropout_stub(x.device())(xc, p, gen.seed(), offset, y, mask);
  if (any_requires_grad({x}))
    record("DropoutBackward", y, {x}, [mask](const Tensor& g) -> TensorList { return {mul(g, mask)}; });
  return y;
}

// Channel dropout: a [N, C] mask drawn as dropout() draws one for a [N, C] tensor (Philox
// counter per channel), broadcast over H and W; the product's derivative is g * mask.
Tensor dropout2d(const Tensor& x, double p, bool training, Generator& gen) {
  if (!(p >= 0.0 && p <= 1.0))
    throw std::invalid_argument("dropout2d: probability has to be between 0 and 1, but got " + std::to_string(p));
  Tensor x4 = as_batched(x, "dropout2d");
  if (!training || p == 0.0 || x.numel() == 0) return x;  // identity, no random draw (PyTorch)
  check_float(x, "dropout2d", "input");
  if (p == 1.0) return mul(x, 0.0);
  const int64_t n = x4.size(0), c = x4.size(1);
  Tensor keep = ones({n, c}, x.options()), mask = empty({n, c}, x.options()), unused = empty({n, c}, x.options());
  const uint64_t offset = gen.advance(static_cast<uint64_t>(n * c));
  dropout_stub(x.device())(keep, p, gen.seed(), offset, unused, mask);  // mask: 0 or 1 / (1 - p)
  return mul(x, x.dim() == 4 ? mask.view({n, c, 1, 1}) : mask.view({c, 1, 1}));
}

}  // namespace dl
