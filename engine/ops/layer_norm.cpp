// Layer norm: PyTorch's argument checks, dispatch to the fused kernels (kernels/nn.h) and the
// derivative (one fused backward kernel for x, weight and bias).
#include "engine/ops/layer_norm.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "engine/amp/autocast.h"
#include "engine/autograd/autograd.h"
#include "engine/ops/elementwise.h"
#include "kernels/nn.h"

namespace dl {
namespace {

// weight/bias: undefined, or of x's dtype and device and of shape normalized_shape.
void check_affine(const Tensor& x, const Tensor& t, const Shape& normalized_shape, const char* what) {
  if (!t.defined()) return;
  if (t.dtype() != x.dtype() || t.device() != x.device())
    throw std::invalid_argument(std::string("layer_norm: ") + what + " " + t.str() + " does not match input " +
                                x.str() + " (dtype and device)");
  if (t.shape() != normalized_shape)
    throw std::invalid_argument(std::string("layer_norm: expected ") + what +
                                " to be of same shape as normalized_shape, but got " + what + " of shape " +
                                shape_str(t.shape()) + " and normalized_shape = " + shape_str(normalized_shape));
}

}  // namespace

Tensor layer_norm(const Tensor& x_in, const Shape& normalized_shape, const Tensor& weight_in, const Tensor& bias_in,
                  double eps) {
  const auto in = amp::autocast(amp::CastPolicy::F32, x_in, weight_in, bias_in);
  const Tensor &x = in[0], &weight = in[1], &bias = in[2];
  if (!is_floating(x.dtype()))
    throw std::invalid_argument(std::string("layer_norm: input must be a floating tensor, got ") +
                                dtype_name(x.dtype()));
  if (normalized_shape.empty())
    throw std::invalid_argument(
        "layer_norm: expected normalized_shape to be at least 1-dimensional, i.e., containing at least one "
        "element, but got normalized_shape = []");
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  if (x.dim() < k || !std::equal(normalized_shape.begin(), normalized_shape.end(), x.shape().end() - k))
    throw std::invalid_argument("layer_norm: given normalized_shape=" + shape_str(normalized_shape) +
                                ", expected input with shape [*, " + shape_str(normalized_shape).substr(1) +
                                ", but got input of size " + shape_str(x.shape()));
  check_affine(x, weight, normalized_shape, "weight");
  check_affine(x, bias, normalized_shape, "bias");

  const int64_t n = shape_numel(normalized_shape), m = n > 0 ? x.numel() / n : 0;
  Tensor xc = x.detach().contiguous();
  Tensor wc = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor y = empty(x.shape(), x.options());
  const TensorOptions stats = x.options().with_dtype(DType::F64);  // per row, for backward (kernels/nn.h)
  Tensor mean = empty({m}, stats), rstd = empty({m}, stats);
  if (x.numel() > 0) layer_norm_fwd_stub(x.device())(xc, wc, bc, eps, y, mean, rstd);

  if (any_requires_grad({x, weight, bias})) {
    const bool gx_needed = x.requires_grad(), gw_needed = weight.defined() && weight.requires_grad();
    const bool gb_needed = bias.defined() && bias.requires_grad();
    record("NativeLayerNormBackward", y, {x, weight, bias},
           [xc, wc, mean, rstd, normalized_shape, gx_needed, gw_needed, gb_needed](const Tensor& g) -> TensorList {
             Tensor gx = gx_needed ? empty(xc.shape(), xc.options()) : Tensor();
             Tensor gw = gw_needed ? empty(normalized_shape, xc.options()) : Tensor();
             Tensor gb = gb_needed ? empty(normalized_shape, xc.options()) : Tensor();
             if (xc.numel() > 0) {
               layer_norm_bwd_stub(g.device())(xc, g.contiguous(), wc, mean, rstd, gx, gw, gb);
             } else {  // no rows: zero weight/bias gradients
               if (gw.defined()) fill_(gw, 0.0);
               if (gb.defined()) fill_(gb, 0.0);
             }
             return {gx, gw, gb};
           });
  }
  return y;
}

}  // namespace dl
