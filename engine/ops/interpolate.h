// torch.nn.functional.interpolate on [N, C, H, W]: nearest, bilinear and bicubic resizing.
#pragma once
#include <array>
#include <optional>
#include <string>

#include "engine/ops/nn.h"

namespace dl {

// Exactly one of `size` (output height, width) and `scale_factor` (height, width; output size
// floor(in * scale)) is given. mode: "nearest" (torch's legacy rule: src = floor(dst * in/out),
// or dst / scale_factor), "bilinear" or "bicubic" (A = -0.75; may overshoot the input range).
// align_corners (bilinear/bicubic only; default false) maps the corner pixels' centres onto
// each other. With scale_factor the coordinates use 1 / scale_factor (PyTorch's default
// recompute_scale_factor=None), with size they use in / out. Differentiable in x.
Tensor interpolate(const Tensor& x, std::optional<Pair> size,
                   std::optional<std::array<double, 2>> scale_factor = std::nullopt,
                   const std::string& mode = "nearest", std::optional<bool> align_corners = std::nullopt);
// floor(in * scale_factor), PyTorch's output size for a scale factor (0 or less: refused).
int64_t interpolate_out_size(int64_t in, double scale_factor);

}  // namespace dl
