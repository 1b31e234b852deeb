// Spatial transformer modules: AffineGrid, GridSample (torch.nn.functional.affine_grid /
// grid_sample as graph nodes) and AffineTheta, the identity-initialised last linear layer of a
// localisation network (PyTorch's spatial transformer tutorial, fc_loc[2]).
#pragma once
#include <optional>

#include "engine/nn/linear.h"
#include "engine/ops/grid_sample.h"

namespace dl::nn {

// theta [N, 2, 3] -> sampling grid [N, H, W, 2]. The output size (H, W) is fixed (`size`) or
// read from a second input: the trailing two dims of xs[1] (the image to be sampled).
class AffineGrid : public Module {
 public:
  explicit AffineGrid(bool align_corners = false, std::optional<Size2> size = std::nullopt)
      : align_corners(align_corners), size(size) {}
  Tensor forward(const Tensor& theta) override;
  Tensor forward(const TensorList& xs) override;
  std::string type_name() const override { return "AffineGrid"; }
  std::string extra_repr() const override;

  bool align_corners;
  std::optional<Size2> size;
};

// (input [N, C, H, W], grid [N, Ho, Wo, 2]) -> [N, C, Ho, Wo].
class GridSample : public Module {
 public:
  GridSample(const std::string& mode = "bilinear", const std::string& padding_mode = "zeros",
             bool align_corners = false);
  Tensor forward(const TensorList& xs) override;
  std::string type_name() const override { return "GridSample"; }
  std::string extra_repr() const override;

  std::string mode, padding_mode;
  bool align_corners;
};

// Linear(in_features, 6) whose output is viewed as theta [N, 2, 3], initialised to the identity
// transform: weight 0, bias [1, 0, 0, 0, 1, 0] (so training starts from the untransformed image).
// Parameters "weight" [6, in_features] and "bias" [6], as the Linear it replaces; `gen` draws
// Linear's default initialisation first (then overwritten), as torch's tutorial does.
class AffineTheta : public Linear {
 public:
  explicit AffineTheta(int64_t in_features, Generator& gen = default_generator());
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "AffineTheta"; }
};

}  // namespace dl::nn
