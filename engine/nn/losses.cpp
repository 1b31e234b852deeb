// Registrations of the losses (engine/nn/loss_registry.h): one entry per torch.nn loss, its
// functional form in engine/ops/loss.h.
#include <memory>

#include "engine/nn/loss_registry.h"

namespace dl::nn {
namespace {

using A = AttrSchema;
using Args = std::vector<Tensor>;

Reduction red(const AttrMap& a) { return parse_reduction(attr_string(a, "reduction")); }

// An optional per-class weight list as a tensor on the device and dtype of the loss input
// (undefined when the list is empty). The device copy is cached.
class ClassWeight {
 public:
  explicit ClassWeight(const std::vector<double>& w) {
    if (!w.empty()) cpu_ = from_vector(std::vector<float>(w.begin(), w.end()), {static_cast<int64_t>(w.size())});
  }
  Tensor on(const Tensor& like) const {
    if (!cpu_.defined()) return Tensor();
    if (like.device() == cpu_.device() && like.dtype() == cpu_.dtype()) return cpu_;
    if (!cached_.defined() || cached_.device() != like.device() || cached_.dtype() != like.dtype())
      cached_ = cpu_.to(like.dtype()).to(like.device());
    return cached_;
  }

 private:
  Tensor cpu_;
  mutable Tensor cached_;
};

A weight_attr() {
  return A::float_list("weight").def(std::vector<double>{}).at_least(0).length(0, 1 << 20)
      .describe("per-class rescaling weight ([] = none)");
}
A ignore_index_attr() { return A::integer("ignore_index", -100).describe("target value that is ignored"); }

const RegisterLoss kCrossEntropy({
    "cross_entropy", "CrossEntropyLoss", "torch.nn.CrossEntropyLoss on logits and class indices",
    {weight_attr(), ignore_index_attr(), reduction_attr(),
     A::floating("label_smoothing", 0.0).range(0, 1).describe("mix targets with the uniform distribution")},
    nullptr, {"input", "target"}, ClassTarget::index,
    [](const AttrMap& a) -> LossFn {
      auto w = std::make_shared<ClassWeight>(attr_floats(a, "weight"));
      const int64_t ii = attr_int(a, "ignore_index");
      const Reduction r = red(a);
      const double ls = attr_float(a, "label_smoothing");
      return [=](const Args& x) { return cross_entropy(x[0], x[1], w->on(x[0]), ii, r, ls); };
    }});

const RegisterLoss kNll({
    "nll_loss", "NLLLoss", "torch.nn.NLLLoss on log-probabilities and class indices",
    {weight_attr(), ignore_index_attr(), reduction_attr()}, nullptr, {"input", "target"}, ClassTarget::index,
    [](const AttrMap& a) -> LossFn {
      auto w = std::make_shared<ClassWeight>(attr_floats(a, "weight"));
      const int64_t ii = attr_int(a, "ignore_index");
      const Reduction r = red(a);
      return [=](const Args& x) { return nll_loss(x[0], x[1], w->on(x[0]), ii, r); };
    }});

const RegisterLoss kMse({"mse_loss", "MSELoss", "torch.nn.MSELoss (class labels: one-hot targets)",
                         {reduction_attr()}, nullptr, {"input", "target"}, ClassTarget::one_hot,
                         [](const AttrMap& a) -> LossFn {
                           const Reduction r = red(a);
                           return [=](const Args& x) { return mse_loss(x[0], x[1], r); };
                         }});

const RegisterLoss kL1({"l1_loss", "L1Loss", "torch.nn.L1Loss (class labels: one-hot targets)", {reduction_attr()},
                        nullptr, {"input", "target"}, ClassTarget::one_hot, [](const AttrMap& a) -> LossFn {
                          const Reduction r = red(a);
                          return [=](const Args& x) { return l1_loss(x[0], x[1], r); };
                        }});

const RegisterLoss kSmoothL1({
    "smooth_l1_loss", "SmoothL1Loss", "torch.nn.SmoothL1Loss (class labels: one-hot targets)",
    {reduction_attr(), A::floating("beta", 1.0).at_least(0).describe("L1/L2 switch point")}, nullptr,
    {"input", "target"}, ClassTarget::one_hot, [](const AttrMap& a) -> LossFn {
      const Reduction r = red(a);
      const double beta = attr_float(a, "beta");
      return [=](const Args& x) { return smooth_l1_loss(x[0], x[1], r, beta); };
    }});

const RegisterLoss kBce({
    "binary_cross_entropy", "BCELoss", "torch.nn.BCELoss on probabilities (class labels: one-hot targets)",
    {weight_attr(), reduction_attr()}, nullptr, {"input", "target"}, ClassTarget::one_hot,
    [](const AttrMap& a) -> LossFn {
      auto w = std::make_shared<ClassWeight>(attr_floats(a, "weight"));
      const Reduction r = red(a);
      return [=](const Args& x) { return binary_cross_entropy(x[0], x[1], w->on(x[0]), r); };
    }});

const RegisterLoss kBceLogits({
    "binary_cross_entropy_with_logits", "BCEWithLogitsLoss",
    "torch.nn.BCEWithLogitsLoss on logits (class labels: one-hot targets)",
    {weight_attr(), reduction_attr(),
     A::float_list("pos_weight").def(std::vector<double>{}).at_least(0).length(0, 1 << 20)
         .describe("weight of positive examples per class ([] = none)")},
    nullptr, {"input", "target"}, ClassTarget::one_hot, [](const AttrMap& a) -> LossFn {
      auto w = std::make_shared<ClassWeight>(attr_floats(a, "weight"));
      auto pw = std::make_shared<ClassWeight>(attr_floats(a, "pos_weight"));
      const Reduction r = red(a);
      return [=](const Args& x) { return binary_cross_entropy_with_logits(x[0], x[1], w->on(x[0]), pw->on(x[0]), r); };
    }});

}  // namespace
}  // namespace dl::nn
