// Element-wise activations, softmax and torch.nn.Identity: layers whose output has their
// input's shape and that own no tensors.
#include <cmath>

#include "engine/graph/layers/common.h"
#include "engine/nn/activation.h"
#include "engine/nn/linear.h"

namespace dl::layers {
namespace {

using A = AttrSchema;

LayerShapes softmax_shapes(const LayerSpec& s, const std::vector<Shape>& in) {
  const Shape& x = single(s, in);
  try {
    wrap_dim(s.get_int("dim"), static_cast<int64_t>(x.size()) + 1, "dim");
  } catch (const std::out_of_range& e) {
    fail(s, std::string(e.what()) + " (the input per sample is " + shape_str(x) + ", plus the batch dim)");
  }
  return {x, {}, {}};
}

// GELU has no ONNX operator before opset 20: written out with Erf, or Tanh when approximated.
void gelu_onnx(OnnxGraph& g, const OnnxLayer& io) {
  const std::string& x = io.inputs[0];
  const std::string one = g.scalar(io.sub("one"), 1.f), half = g.scalar(io.sub("half"), 0.5f);
  const std::string inner = io.sub("inner"), act = io.sub("activation"), plus = io.sub("one_plus"),
                    hx = io.sub("half_x");
  if (io.spec.get_string("approximate") == "tanh") {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    const std::string x2 = io.sub("x2"), x3 = io.sub("x3"), cx3 = io.sub("c_x3"), sum = io.sub("x_plus");
    g.node("Mul", {x, x}, x2, x2);
    g.node("Mul", {x2, x}, x3, x3);
    g.node("Mul", {x3, g.scalar(io.sub("c"), 0.044715f)}, cx3, cx3);
    g.node("Add", {x, cx3}, sum, sum);
    g.node("Mul", {sum, g.scalar(io.sub("sqrt_2_over_pi"), static_cast<float>(std::sqrt(2.0 / M_PI)))}, inner, inner);
    g.node("Tanh", {inner}, act, act);
  } else {  // 0.5 x (1 + erf(x / sqrt(2)))
    g.node("Mul", {x, g.scalar(io.sub("rsqrt2"), static_cast<float>(M_SQRT1_2))}, inner, inner);
    g.node("Erf", {inner}, act, act);
  }
  g.node("Add", {act, one}, plus, plus);
  g.node("Mul", {x, half}, hx, hx);
  g.node("Mul", {hx, plus}, io.output, io.spec.name);
}

// torch.nn.Softplus: x where beta*x > threshold, else log(1 + exp(beta*x)) / beta.
void softplus_onnx(OnnxGraph& g, const OnnxLayer& io) {
  const std::string& x = io.inputs[0];
  const float beta = static_cast<float>(io.spec.get_float("beta"));
  const float threshold = static_cast<float>(io.spec.get_float("threshold"));
  std::string bx = x, sp = io.sub("softplus");
  if (beta != 1.f) {
    bx = io.sub("beta_x");
    g.node("Mul", {x, g.scalar(io.sub("beta"), beta)}, bx, bx);
  }
  g.node("Softplus", {bx}, sp, sp);
  if (beta != 1.f) {
    const std::string d = io.sub("softplus_over_beta");
    g.node("Div", {sp, g.scalar(io.sub("beta_div"), beta)}, d, d);
    sp = d;
  }
  const std::string over = io.sub("over_threshold");
  g.node("Greater", {bx, g.scalar(io.sub("threshold"), threshold)}, over, over);
  g.node("Where", {over, x, sp}, io.output, io.spec.name);
}

const LayerExample kVector = {{{5}}, {}};

const RegisterLayer relu({
    .type = "relu",
    .doc = "torch.nn.ReLU",
    .family = LayerFamily::Activation,
    .shapes = same_shape,
    .build = from_attrs([](const LayerSpec&) { return make<nn::ReLU>(); }),
    .onnx = onnx_op("Relu"),
    .example = kVector,
});

const RegisterLayer leaky_relu({
    .type = "leaky_relu",
    .doc = "torch.nn.LeakyReLU",
    .attrs = {A::floating("negative_slope", 0.01).describe("slope for negative inputs")},
    .family = LayerFamily::Activation,
    .shapes = same_shape,
    .build = from_attrs([](const LayerSpec& s) { return make<nn::LeakyReLU>(s.get_float("negative_slope")); }),
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      g.op(io, "LeakyRelu", {{"alpha", static_cast<float>(io.spec.get_float("negative_slope"))}});
    },
    .example = kVector,
});

const RegisterLayer elu({
    .type = "elu",
    .doc = "torch.nn.ELU",
    .attrs = {A::floating("alpha", 1.0).describe("scale of the negative part")},
    .family = LayerFamily::Activation,
    .shapes = same_shape,
    .build = from_attrs([](const LayerSpec& s) { return make<nn::ELU>(s.get_float("alpha")); }),
    .onnx = [](OnnxGraph& g, const OnnxLayer& io) {
      g.op(io, "Elu", {{"alpha", static_cast<float>(io.spec.get_float("alpha"))}});
    },
    .example = kVector,
});

const RegisterLayer gelu({
    .type = "gelu",
    .doc = "torch.nn.GELU",
    .attrs = {A::choice("approximate", {"none", "tanh"}, "none").describe("tanh approximation")},
    .family = LayerFamily::Activation,
    .shapes = same_shape,
    .build = from_attrs([](const LayerSpec& s) { return make<nn::GELU>(s.get_string("approximate")); }),
    .onnx = gelu_onnx,
    .example = kVector,
});

const RegisterLayer sigmoid({
    .type = "sigmoid",
    .doc = "torch.nn.Sigmoid",
    .family = LayerFamily::Activation,
    .shapes = same_shape,
    .build = from_attrs([](const LayerSpec&) { return make<nn::Sigmoid>(); }),
    .onnx = onnx_op("Sigmoid"),
    .example = kVector,
});

const RegisterLayer tanh_layer({
    .type = "tanh",
    .doc = "torch.nn.Tanh",
    .family = LayerFamily::Activation,
    .shapes = same_shape,
    .build = from_attrs([](const LayerSpec&) { return make<nn::Tanh>(); }),
    .onnx = onnx_op("Tanh"),
    .example = kVector,
});

const RegisterLayer softplus({
    .type = "softplus",
    .doc = "torch.nn.Softplus: log(1 + exp(beta x)) / beta",
    .attrs = {A::floating("beta", 1.0).above(0).describe("sharpness"),
              A::floating("threshold", 20.0).describe("linear above beta*x > threshold")},
    .family = LayerFamily::Activation,
    .shapes = same_shape,
    .build = from_attrs([](const LayerSpec& s) {
      return make<nn::Softplus>(s.get_float("beta"), s.get_float("threshold"));
    }),
    .onnx = softplus_onnx,
    .example = kVector,
});

const RegisterLayer softmax({
    .type = "softmax",
    .doc = "torch.nn.Softmax",
    .attrs = {A::integer("dim", 1).describe("dim to normalise over")},
    .family = LayerFamily::Activation,
    .shapes = softmax_shapes,
    .build = from_attrs([](const LayerSpec& s) { return make<nn::Softmax>(s.get_int("dim")); }),
    .onnx = onnx_op_along_dim("Softmax"),
    .example = kVector,
});

const RegisterLayer log_softmax({
    .type = "log_softmax",
    .doc = "torch.nn.LogSoftmax",
    .attrs = {A::integer("dim", 1).describe("dim to normalise over")},
    .family = LayerFamily::Activation,
    .shapes = softmax_shapes,
    .build = from_attrs([](const LayerSpec& s) { return make<nn::LogSoftmax>(s.get_int("dim")); }),
    .onnx = onnx_op_along_dim("LogSoftmax"),
    .example = kVector,
});

const RegisterLayer identity({
    .type = "identity",
    .doc = "torch.nn.Identity",
    .family = LayerFamily::Activation,
    .shapes = same_shape,
    .build = from_attrs([](const LayerSpec&) { return make<nn::Identity>(); }),
    .onnx = onnx_op("Identity"),
    .saved_copies = 0,  // returns its input
    .example = kVector,
});

}  // namespace
}  // namespace dl::layers
