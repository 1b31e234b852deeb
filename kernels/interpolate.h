// Kernel stubs of interpolate (engine/ops/interpolate.h): resizing NCHW planes by nearest,
// bilinear or bicubic interpolation with PyTorch 1.13's source-index rules:
//   scale (per dim) = align_corners ? (in - 1) / (out - 1) (0 when out == 1)
//                     : scale_factor given ? 1 / scale_factor : in / out
//   nearest:  src = min(floor(dst * scale), in - 1) (torch's legacy 'nearest'); out == in copies,
//             out == 2 * in takes dst / 2
//   bilinear: src = align_corners ? dst * scale : max(scale * (dst + 0.5) - 0.5, 0); taps
//             floor(src) and the next one (clamped), weights 1 - l, l; out == in copies
//   bicubic:  src as bilinear but not clamped at 0; taps floor(src) - 1 .. + 2 clamped to the
//             input, Keys' cubic convolution with A = -0.75
// Coordinates and weights are computed in the tensor's dtype (float for f32, like torch).
// Tensors are contiguous; y / gx are allocated by the op and fully written by the kernel.
// Determinism: the CPU backward scatters into each (n, c) input plane from one thread in a fixed
// order, so results do not depend on the thread count. The CUDA backward
// (kernels/cuda/interpolate.cu) scatters with atomicAdd: equal to rounding, not bit-deterministic.
#pragma once
#include <cstdint>

#include "engine/dispatch.h"
#include "engine/tensor/tensor.h"

namespace dl {

enum class InterpMode { Nearest, Bilinear, Bicubic };

// x [n, c, h, w] -> y [n, c, oh, ow]. scale_h/scale_w: the user's scale_factor, or 0 when the
// output size was given (the kernel then uses in / out).
struct Interp2dShape {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t oh = 0, ow = 0;
  InterpMode mode = InterpMode::Nearest;
  bool align_corners = false;
  double scale_h = 0.0, scale_w = 0.0;
};

using interpolate_fwd_fn = void (*)(const Interp2dShape& s, const Tensor& x, Tensor& y);
// gx [n, c, h, w] = d(sum(y * gy)) / dx.
using interpolate_bwd_fn = void (*)(const Interp2dShape& s, const Tensor& gy, Tensor& gx);

DL_DECLARE_STUB(interpolate_fwd_stub, interpolate_fwd_fn);
DL_DECLARE_STUB(interpolate_bwd_stub, interpolate_bwd_fn);

}  // namespace dl
