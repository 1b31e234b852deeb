// torch.nn.Dropout.
#include "engine/graph/layers/common.h"
#include "engine/nn/activation.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

const RegisterLayer dropout({
    .type = "dropout",
    .doc = "torch.nn.Dropout: zero elements with probability p while training",
    .attrs = {A::floating("p", 0.5).range(0, 1, /*hi_open=*/true).describe("probability of an element to be zeroed")},
    .family = LayerFamily::Dropout,
    .shapes = same_shape,
    .build = from_attrs([](const LayerSpec& s) { return make<nn::Dropout>(s.get_float("p")); }),
    .onnx = onnx_op("Identity"),  // inference
    .saved_copies = 2,
    .example = {{{5}}, {}},
});

}  // namespace
}  // namespace dl::layers
