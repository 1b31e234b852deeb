#include "engine/nn/spatial.h"

#include <stdexcept>

#include "engine/ops.h"

namespace dl::nn {

Tensor AffineGrid::forward(const Tensor& theta) {
  if (!size)
    throw std::invalid_argument("AffineGrid: without a fixed size it takes two inputs (theta and the image whose "
                                "[H, W] the grid covers)");
  return affine_grid(theta, {theta.size(0), 1, size->h, size->w}, align_corners);
}

Tensor AffineGrid::forward(const TensorList& xs) {
  if (xs.size() == 1) return forward(xs[0]);
  if (xs.size() != 2 || size)
    throw std::invalid_argument("AffineGrid: expected theta and, without a fixed size, one image input; got " +
                                std::to_string(xs.size()) + " inputs");
  const Tensor& like = xs[1];
  if (like.dim() < 3)
    throw std::invalid_argument("AffineGrid: the size input must be [N, ..., H, W], got " + shape_str(like.shape()));
  return affine_grid(xs[0], {xs[0].size(0), 1, like.size(-2), like.size(-1)}, align_corners);
}

std::string AffineGrid::extra_repr() const {
  return (size ? "size=" + size->tuple_str() + ", " : std::string()) + "align_corners=" + py_bool(align_corners);
}

GridSample::GridSample(const std::string& mode, const std::string& padding_mode, bool align_corners)
    : mode(mode), padding_mode(padding_mode), align_corners(align_corners) {
  grid_sample_mode(mode);  // refuse unknown spellings now, not at the first forward
  grid_sample_padding(padding_mode);
}

Tensor GridSample::forward(const TensorList& xs) {
  if (xs.size() != 2)
    throw std::invalid_argument("GridSample: expected 2 inputs (input, grid), got " + std::to_string(xs.size()));
  return grid_sample(xs[0], xs[1], mode, padding_mode, align_corners);
}

std::string GridSample::extra_repr() const {
  return "mode='" + mode + "', padding_mode='" + padding_mode + "', align_corners=" + py_bool(align_corners);
}

AffineTheta::AffineTheta(int64_t in_features, Generator& gen) : Linear(in_features, 6, /*bias=*/true, gen) {
  NoGradGuard ng;
  fill_(weight, 0.0);
  bias.copy_(from_vector<float>({1, 0, 0, 0, 1, 0}, {6}));
}

Tensor AffineTheta::forward(const Tensor& x) { return Linear::forward(x).view({x.size(0), 2, 3}); }

}  // namespace dl::nn
