// The deterministic forms of the image transforms (torchvision.transforms.functional on tensors,
// torchvision 0.14 / PyTorch 1.13), for geometry.cpp and color.cpp and for the tests that check
// them against torchvision fixtures (tests/fixtures/gen_transforms.py).
//
// Images are [C, H, W] contiguous cpu tensors, u8 or f32, and keep their dtype: a u8 image is
// computed in float32 and converted back as torchvision does (interpolations round half to even,
// colour operations truncate), an f32 image stays float (colour operations clamp it to [0, 1]).
// Every function returns a new tensor (or x itself where torchvision returns its input) and
// throws std::invalid_argument naming the function and the value it cannot take.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/ops/random.h"
#include "engine/tensor/tensor.h"

namespace dl::data::fn {

enum class Interp { Nearest, Bilinear, Bicubic };
enum class PadMode { Constant, Edge, Reflect, Symmetric };
Interp parse_interp(std::string_view name);     // "nearest", "bilinear", "bicubic"
PadMode parse_pad_mode(std::string_view name);  // "constant", "edge", "reflect", "symmetric"

// x must be [C, H, W], contiguous, on the cpu, u8 or f32; `what` names the caller in the error.
void check_image(const Tensor& x, const char* what);

// ---- geometry (geometry.cpp) ----------------------------------------------------------------
// Crops, pads, flips and nearest resizing are separable index maps: output row y reads source
// row rows[y] (column likewise), -1 reads `fill`. remap applies them in one pass (row copies
// where the columns are a plain run).
using AxisMap = std::vector<int64_t>;
Tensor remap(const Tensor& x, const AxisMap& rows, const AxisMap& cols, double fill = 0);

// Rows top..top+height-1, columns left..left+width-1; outside the image reads 0 (F.crop pads).
Tensor crop(const Tensor& x, int64_t top, int64_t left, int64_t height, int64_t width);
// F.center_crop: the central height x width window; a crop larger than the image pads with 0.
Tensor center_crop(const Tensor& x, int64_t height, int64_t width);
// F.pad: padding as torchvision (1 value: all sides; 2: [left/right, top/bottom]; 4: [left,
// top, right, bottom]), each >= 0. `fill` is used by Constant (truncated to 0..255 on u8).
Tensor pad(const Tensor& x, const std::vector<int64_t>& padding, double fill = 0, PadMode mode = PadMode::Constant);
Tensor hflip(const Tensor& x);
Tensor vflip(const Tensor& x);

// torchvision's output size of resize: size {s} matches the shorter side to s (the longer one
// scaled, truncated; then at most max_size when max_size > 0), size {h, w} is exact.
std::pair<int64_t, int64_t> resized_size(int64_t h, int64_t w, const std::vector<int64_t>& size, int64_t max_size = 0);
// F.resize to out_h x out_w (interpolate with align_corners=False, antialias=False).
Tensor resize(const Tensor& x, int64_t out_h, int64_t out_w, Interp mode = Interp::Bilinear);
// F.resized_crop: crop(top, left, height, width) inside the image, then resize (one pass).
Tensor resized_crop(const Tensor& x, int64_t top, int64_t left, int64_t height, int64_t width, int64_t out_h,
                    int64_t out_w, Interp mode = Interp::Bilinear);

// F.rotate by `angle` degrees counter-clockwise around `center` ((x, y) pixels; default the
// image centre), Nearest or Bilinear; `fill` for pixels from outside (one value or one per
// channel); `expand` enlarges the output to hold the whole rotated image.
Tensor rotate(const Tensor& x, double angle, Interp mode = Interp::Nearest, bool expand = false,
              std::optional<std::pair<double, double>> center = std::nullopt, const std::vector<double>& fill = {0.0});
// The (height, width) rotate(expand = true) gives an h x w image.
std::pair<int64_t, int64_t> rotated_size(int64_t h, int64_t w, double angle,
                                         std::optional<std::pair<double, double>> center = std::nullopt);

// ---- colour (color.cpp); 1 or 3 channels ----------------------------------------------------
// 0.2989 r + 0.587 g + 0.114 b, as 1 or 3 channels (a 1-channel image is copied).
Tensor rgb_to_grayscale(const Tensor& x, int64_t num_output_channels = 1);
Tensor adjust_brightness(const Tensor& x, double factor);  // factor >= 0
Tensor adjust_contrast(const Tensor& x, double factor);    // factor >= 0, blends with the mean grey
Tensor adjust_saturation(const Tensor& x, double factor);  // factor >= 0, blends with the grey image
Tensor adjust_hue(const Tensor& x, double factor);         // factor in [-0.5, 0.5], via HSV

// ---- random parameters (torchvision's get_params, drawn from the sample's generator) --------
int64_t randint(Generator& rng, int64_t n);               // uniform in [0, n), n >= 1
double uniform(Generator& rng, double low, double high);  // uniform in [low, high)
struct Box {
  int64_t top = 0, left = 0, height = 0, width = 0;
};
// RandomCrop.get_params: a th x tw window of an h x w image at a uniform position.
Box random_crop_box(int64_t h, int64_t w, int64_t th, int64_t tw, Generator& rng);
// RandomResizedCrop.get_params: 10 tries of an area fraction in `scale` and a log-uniform
// aspect ratio in `ratio`, then the central crop clamped to `ratio`.
Box random_resized_crop_box(int64_t h, int64_t w, const std::vector<double>& scale, const std::vector<double>& ratio,
                            Generator& rng);

}  // namespace dl::data::fn
