// Spatial transformer ops (torch.nn.functional.affine_grid / grid_sample, 2-D): sample an
// [N, C, H, W] input at arbitrary points given in normalised coordinates [-1, 1] (x = width,
// y = height). Both are differentiable: grid_sample in its input and its grid, affine_grid in
// theta, so a localisation network can learn where to look.
#pragma once
#include <string>

#include "engine/tensor/tensor.h"

namespace dl {

enum class GridSampleMode { Bilinear, Nearest };
enum class GridSamplePadding { Zeros, Border, Reflection };

// "bilinear" / "nearest" and "zeros" / "border" / "reflection" (PyTorch's spellings); anything
// else is std::invalid_argument naming the option and the value.
GridSampleMode grid_sample_mode(const std::string& mode);
GridSamplePadding grid_sample_padding(const std::string& padding_mode);

// input [N, C, H, W], grid [N, Ho, Wo, 2] -> [N, C, Ho, Wo]. grid[n, i, j] = (x, y): -1 is the
// left/top edge and +1 the right/bottom one; with align_corners they are the centres of the
// corner pixels, without it the outer edges of those pixels. Points outside the input read 0
// (Zeros), the nearest edge pixel (Border) or the input mirrored at its edges (Reflection).
// Bilinear backward reaches input and grid; Nearest gives the grid a zero gradient (as torch).
// Backward is deterministic on the CPU (each sample's gradient is accumulated by one thread, in
// order); on CUDA the input gradient is summed with atomics (equal to rounding, not bit for bit).
Tensor grid_sample(const Tensor& input, const Tensor& grid, GridSampleMode mode = GridSampleMode::Bilinear,
                   GridSamplePadding padding_mode = GridSamplePadding::Zeros, bool align_corners = false);
Tensor grid_sample(const Tensor& input, const Tensor& grid, const std::string& mode,
                   const std::string& padding_mode, bool align_corners);

// theta [N, 2, 3] (affine maps of output to input coordinates), size {N, C, H, W} -> the
// sampling grid [N, H, W, 2] = base [H * W, 3] x theta^T, where base holds (x, y, 1) of every
// output pixel (affine_grid_base). Differentiable in theta.
Tensor affine_grid(const Tensor& theta, const Shape& size, bool align_corners = false);
// The constant [H * W, 3] of affine_grid in `opt`'s dtype: rows (x_j, y_i, 1) in row-major
// pixel order, x_j = linspace(-1, 1, W)[j] (scaled by (W - 1) / W without align_corners; 0 when
// W == 1), likewise y_i. The ONNX export writes it as a constant.
Tensor affine_grid_base(int64_t h, int64_t w, bool align_corners, TensorOptions opt = {});

}  // namespace dl
