// interpolate: argument checks (PyTorch's rules), kernel dispatch (kernels/interpolate.h) and
// the derivative (the kernel's transpose).
#include "engine/ops/interpolate.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/autograd/autograd.h"
#include "engine/ops/nn_checks.h"
#include "kernels/interpolate.h"

namespace dl {

using namespace nn_checks;

int64_t interpolate_out_size(int64_t in, double scale_factor) {
  const double out = std::floor(static_cast<double>(in) * scale_factor);
  if (!(out < 9.2e18))
    throw ShapeOverflowError("interpolate: the output size " + std::to_string(in) + " * " +
                             std::to_string(scale_factor) + " overflows int64");
  return static_cast<int64_t>(out);
}

namespace {

InterpMode parse_mode(const std::string& mode) {
  if (mode == "nearest") return InterpMode::Nearest;
  if (mode == "bilinear") return InterpMode::Bilinear;
  if (mode == "bicubic") return InterpMode::Bicubic;
  throw std::invalid_argument("interpolate: mode must be 'nearest', 'bilinear' or 'bicubic' for a 4-d input, got '" +
                              mode + "'");
}

Interp2dShape interp_shape(const Tensor& x, std::optional<Pair> size, std::optional<std::array<double, 2>> scale_factor,
                           const std::string& mode, std::optional<bool> align_corners) {
  if (x.dim() != 4)
    throw std::invalid_argument("interpolate: expected a 4-d [N, C, H, W] input, got " + shape_str(x.shape()));
  Interp2dShape s;
  s.mode = parse_mode(mode);
  if (align_corners.has_value() && s.mode == InterpMode::Nearest)
    throw std::invalid_argument("interpolate: align_corners option can only be set with the interpolating modes: "
                                "bilinear | bicubic (mode is 'nearest')");
  s.align_corners = align_corners.value_or(false);
  if (size.has_value() == scale_factor.has_value())
    throw std::invalid_argument(size ? "interpolate: only one of size or scale_factor should be defined"
                                     : "interpolate: either size or scale_factor should be defined");
  s.n = x.size(0);
  s.c = x.size(1);
  s.h = x.size(2);
  s.w = x.size(3);
  if (size) {
    s.oh = (*size)[0];
    s.ow = (*size)[1];
  } else {
    for (double f : *scale_factor)
      if (!(f > 0.0) || !std::isfinite(f))
        throw std::invalid_argument("interpolate: scale_factor must be positive and finite, got (" +
                                    std::to_string((*scale_factor)[0]) + ", " + std::to_string((*scale_factor)[1]) +
                                    ")");
    s.scale_h = (*scale_factor)[0];
    s.scale_w = (*scale_factor)[1];
    s.oh = interpolate_out_size(s.h, s.scale_h);
    s.ow = interpolate_out_size(s.w, s.scale_w);
  }
  if (s.h <= 0 || s.w <= 0 || s.oh <= 0 || s.ow <= 0)
    throw std::invalid_argument("interpolate: Input and output sizes should be greater than 0, but got input (H: " +
                                std::to_string(s.h) + ", W: " + std::to_string(s.w) + ") output (H: " +
                                std::to_string(s.oh) + ", W: " + std::to_string(s.ow) + ")");
  return s;
}

}  // namespace

Tensor interpolate(const Tensor& x, std::optional<Pair> size, std::optional<std::array<double, 2>> scale_factor,
                   const std::string& mode, std::optional<bool> align_corners) {
  check_float(x, "interpolate", "input");
  const Interp2dShape s = interp_shape(x, size, scale_factor, mode, align_corners);
  Tensor y = empty({s.n, s.c, s.oh, s.ow}, x.options());
  if (y.numel() > 0) interpolate_fwd_stub(x.device())(s, contig(x), y);
  if (any_requires_grad({x}))
    record("UpsampleBackward", y, {x}, [s, opts = x.options()](const Tensor& g) -> TensorList {
      Tensor gx = empty({s.n, s.c, s.h, s.w}, opts);
      if (gx.numel() > 0) interpolate_bwd_stub(g.device())(s, g.contiguous(), gx);
      return {gx};
    });
  return y;
}

}  // namespace dl
