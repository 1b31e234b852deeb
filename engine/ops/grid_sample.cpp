// affine_grid and grid_sample: argument checks with PyTorch's messages, kernel dispatch
// (kernels/grid_sample.h) and derivatives. affine_grid is a matmul of a constant base grid with
// theta^T, so its backward comes from matmul's.
#include "engine/ops/grid_sample.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "engine/autograd/autograd.h"
#include "engine/ops/linalg.h"
#include "kernels/grid_sample.h"

namespace dl {

GridSampleMode grid_sample_mode(const std::string& mode) {
  if (mode == "bilinear") return GridSampleMode::Bilinear;
  if (mode == "nearest") return GridSampleMode::Nearest;
  throw std::invalid_argument("grid_sample(): expected mode to be 'bilinear' or 'nearest', but got: '" + mode +
                              "'" + (mode == "bicubic" ? " (bicubic is not supported by dltool)" : ""));
}

GridSamplePadding grid_sample_padding(const std::string& padding_mode) {
  if (padding_mode == "zeros") return GridSamplePadding::Zeros;
  if (padding_mode == "border") return GridSamplePadding::Border;
  if (padding_mode == "reflection") return GridSamplePadding::Reflection;
  throw std::invalid_argument("grid_sample(): expected padding_mode to be 'zeros', 'border', or 'reflection', "
                              "but got: '" + padding_mode + "'");
}

Tensor grid_sample(const Tensor& input, const Tensor& grid, GridSampleMode mode, GridSamplePadding padding_mode,
                   bool align_corners) {
  const std::string sizes = "input with sizes " + shape_str(input.shape()) + " and grid with sizes " +
                            shape_str(grid.shape());
  if (!is_floating(input.dtype()) || grid.dtype() != input.dtype())
    throw std::invalid_argument(std::string("grid_sampler(): expected input and grid to be floating tensors of the "
                                            "same dtype, but got input ") + dtype_name(input.dtype()) + " and grid " +
                                dtype_name(grid.dtype()));
  if (grid.device() != input.device())
    throw std::invalid_argument("grid_sampler(): expected input and grid to be on the same device, but got input on " +
                                input.device().str() + " and grid on " + grid.device().str());
  if (input.dim() != 4 || grid.dim() != 4)
    throw std::invalid_argument("grid_sampler(): expected a 4-d input [N, C, H, W] and a 4-d grid [N, H_out, W_out, "
                                "2] (dltool samples 2-d inputs only), but got " + sizes);
  if (grid.size(0) != input.size(0))
    throw std::invalid_argument("grid_sampler(): expected grid and input to have same batch size, but got " + sizes);
  if (grid.size(3) != 2)
    throw std::invalid_argument("grid_sampler(): expected grid to have size 2 in last dimension, but got " + sizes);
  if (input.size(2) == 0 || input.size(3) == 0)
    throw std::invalid_argument("grid_sampler(): expected input to have non-empty spatial dimensions, but got " +
                                sizes);

  GridSampleShape s;
  s.n = input.size(0);
  s.c = input.size(1);
  s.h = input.size(2);
  s.w = input.size(3);
  s.oh = grid.size(1);
  s.ow = grid.size(2);
  s.mode = mode;
  s.padding = padding_mode;
  s.align_corners = align_corners;
  Tensor xc = input.detach().contiguous(), gc = grid.detach().contiguous();
  Tensor y = empty({s.n, s.c, s.oh, s.ow}, input.options());
  if (y.numel() > 0) grid_sample_fwd_stub(input.device())(s, xc, gc, y);
  if (any_requires_grad({input, grid})) {
    const bool gi_needed = input.requires_grad(), gg_needed = grid.requires_grad();
    record("GridSampler2DBackward", y, {input, grid}, [s, xc, gc, gi_needed, gg_needed](const Tensor& g) -> TensorList {
      Tensor gi = gi_needed ? empty(xc.shape(), xc.options()) : Tensor();
      Tensor gg = gg_needed ? empty(gc.shape(), gc.options()) : Tensor();
      if (xc.numel() > 0 || gc.numel() > 0) grid_sample_bwd_stub(g.device())(s, g.contiguous(), xc, gc, gi, gg);
      return {gi, gg};
    });
  }
  return y;
}

Tensor grid_sample(const Tensor& input, const Tensor& grid, const std::string& mode, const std::string& padding_mode,
                   bool align_corners) {
  return grid_sample(input, grid, grid_sample_mode(mode), grid_sample_padding(padding_mode), align_corners);
}

namespace {
// torch.linspace(-1, 1, steps) in T (its halfway rule), scaled by (steps - 1) / steps without
// align_corners; {0} for a single step (PyTorch's linspace_from_neg_one).
template <class T>
std::vector<T> linspace_from_neg_one(int64_t steps, bool align_corners) {
  if (steps <= 1) return std::vector<T>(static_cast<size_t>(steps), T(0));
  const T step = T(2) / static_cast<T>(steps - 1);
  std::vector<T> v(static_cast<size_t>(steps));
  for (int64_t i = 0; i < steps; ++i) {
    T x = i < steps / 2 ? T(-1) + step * static_cast<T>(i) : T(1) - step * static_cast<T>(steps - i - 1);
    if (!align_corners) x = x * static_cast<T>(steps - 1) / static_cast<T>(steps);
    v[static_cast<size_t>(i)] = x;
  }
  return v;
}

template <class T>
Tensor base_grid(int64_t h, int64_t w, bool align_corners, TensorOptions opt) {
  const std::vector<T> xs = linspace_from_neg_one<T>(w, align_corners), ys = linspace_from_neg_one<T>(h, align_corners);
  std::vector<T> base(static_cast<size_t>(checked_numel({h, w, 3})));
  size_t k = 0;
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j) {
      base[k++] = xs[static_cast<size_t>(j)];
      base[k++] = ys[static_cast<size_t>(i)];
      base[k++] = T(1);
    }
  return from_vector<T>(base, {h * w, 3}, opt);
}
}  // namespace

Tensor affine_grid_base(int64_t h, int64_t w, bool align_corners, TensorOptions opt) {
  return DL_DISPATCH_FLOAT(opt.dtype, "affine_grid", [&] { return base_grid<scalar_t>(h, w, align_corners, opt); });
}

Tensor affine_grid(const Tensor& theta, const Shape& size, bool align_corners) {
  if (size.size() != 4)
    throw std::invalid_argument("affine_grid(): dltool supports 2-d grids only: expected size [N, C, H, W], got " +
                                shape_str(size));
  for (int64_t d : size)
    if (d <= 0)
      throw std::invalid_argument("affine_grid(): expected non-zero, positive output size. Got " + shape_str(size));
  if (!is_floating(theta.dtype()))
    throw std::invalid_argument(std::string("affine_grid(): expected theta to have floating point type, but got ") +
                                dtype_name(theta.dtype()));
  if (theta.dim() != 3 || theta.size(0) != size[0] || theta.size(1) != 2 || theta.size(2) != 3)
    throw std::invalid_argument("affine_grid(): expected a batch of 2D affine matrices of shape Nx2x3 for size " +
                                shape_str(size) + ". Got " + shape_str(theta.shape()) + ".");
  const int64_t h = size[2], w = size[3];
  Tensor base = affine_grid_base(h, w, align_corners, theta.options());  // [H * W, 3]
  return matmul(base, theta.transpose(1, 2)).view({size[0], h, w, 2});  // [N, H * W, 2] -> [N, H, W, 2]
}

}  // namespace dl
