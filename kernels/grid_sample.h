// Kernel stubs of grid_sample (engine/ops/grid_sample.h). CPU: kernels/cpu/grid_sample.cpp.
//
// Conventions (as kernels/nn.h): contiguous tensors of one floating dtype, outputs allocated by
// the op layer and fully written by the kernel. Coordinates follow PyTorch 1.13's CPU kernel
// (aten/src/ATen/native/cpu/GridSamplerKernel.cpp): unnormalise, reflect, clip; the clip's
// gradient is 0 on the borders themselves.
#pragma once
#include <cstdint>

#include "engine/dispatch.h"
#include "engine/ops/grid_sample.h"
#include "engine/tensor/tensor.h"

namespace dl {

// input [n, c, h, w], grid [n, oh, ow, 2], output [n, c, oh, ow].
struct GridSampleShape {
  int64_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
  GridSampleMode mode = GridSampleMode::Bilinear;
  GridSamplePadding padding = GridSamplePadding::Zeros;
  bool align_corners = false;
};

using grid_sample_fwd_fn = void (*)(const GridSampleShape& s, const Tensor& input, const Tensor& grid, Tensor& y);
// Gradients of sum(y * gy): g_input [n, c, h, w] and g_grid [n, oh, ow, 2], each skipped when
// undefined. Deterministic on the CPU: sample n is accumulated by one thread in output-pixel
// order. CUDA (kernels/cuda/grid_sample.cu) scatters g_input with atomicAdd: equal to rounding,
// not bit-deterministic; g_grid has one writer per point.
using grid_sample_bwd_fn = void (*)(const GridSampleShape& s, const Tensor& gy, const Tensor& input,
                                    const Tensor& grid, Tensor& g_input, Tensor& g_grid);

DL_DECLARE_STUB(grid_sample_fwd_stub, grid_sample_fwd_fn);
DL_DECLARE_STUB(grid_sample_bwd_stub, grid_sample_bwd_fn);

}  // namespace dl
