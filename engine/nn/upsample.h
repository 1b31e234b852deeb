// Upsample (torch.nn.Upsample) over [N, C, H, W].
#pragma once
#include <array>
#include <optional>
#include <string>

#include "engine/nn/module.h"

namespace dl::nn {

// interpolate (engine/ops/interpolate.h) as a module: exactly one of size and scale_factor;
// mode "nearest" | "bilinear" | "bicubic"; align_corners only for bilinear/bicubic (unset:
// false). No parameters or buffers.
class Upsample : public Module {
 public:
  Upsample(std::optional<Size2> size, std::optional<std::array<double, 2>> scale_factor,
           std::string mode = "nearest", std::optional<bool> align_corners = std::nullopt);
  using Module::forward;
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Upsample"; }
  std::string extra_repr() const override;

  std::optional<Size2> size;
  std::optional<std::array<double, 2>> scale_factor;
  std::string mode;
  std::optional<bool> align_corners;
};

}  // namespace dl::nn
