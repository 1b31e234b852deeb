// torch.nn.Dropout, Dropout2d.
#include "engine/graph/layers/common.h"
#include "engine/nn/activation.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

AttrSchema p_attr(const std::string& what) {
  return A::floating("p", 0.5).range(0, 1, /*hi_open=*/true).describe("probability of " + what + " to be zeroed");
}

const RegisterLayer dropout({
    .type = "dropout",
    .doc = "torch.nn.Dropout: zero elements with probability p while training",
    .attrs = {p_attr("an element")},
    .family = LayerFamily::Dropout,
    .shapes = same_shape,
    .build = from_attrs([](const LayerSpec& s) { return make<nn::Dropout>(s.get_float("p")); }),
    .onnx = onnx_op("Identity"),  // inference
    .saved_copies = 2,
    .example = {{{5}}, {}},
});

const RegisterLayer dropout2d({
    .type = "dropout2d",
    .doc = "torch.nn.Dropout2d: zero whole channels of [N, C, H, W] with probability p while training",
    .attrs = {p_attr("a channel")},
    .family = LayerFamily::Dropout,
    .shapes = [](const LayerSpec& s, const std::vector<Shape>& in) { return same_shape(s, {image_input(s, in)}); },
    .build = from_attrs([](const LayerSpec& s) { return make<nn::Dropout2d>(s.get_float("p")); }),
    .onnx = onnx_op("Identity"),  // inference
    .example = {{{3, 4, 4}}, {}},
});

}  // namespace
}  // namespace dl::layers
