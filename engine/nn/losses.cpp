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
// (undefined when the list is empty). Kept in float64 so a float64 loss sees the exact values;
// the copy on the input's device and dtype is cached.
class ClassWeight {
 public:
  explicit ClassWeight(const std::vector<double>& w) {
    if (!w.empty()) cpu_ = from_vector(w, {static_cast<int64_t>(w.size())});
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
    "cross_entropy", "CrossEntropyLoss",
    "torch.nn.CrossEntropyLoss on logits, with class indices or class probabilities (float targets)",
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

const RegisterLoss kHuber({
    "huber_loss", "HuberLoss", "torch.nn.HuberLoss (class labels: one-hot targets)",
    {reduction_attr(), A::floating("delta", 1.0).above(0).describe("L2/L1 switch point")}, nullptr,
    {"input", "target"}, ClassTarget::one_hot, [](const AttrMap& a) -> LossFn {
      const Reduction r = red(a);
      const double delta = attr_float(a, "delta");
      return [=](const Args& x) { return huber_loss(x[0], x[1], r, delta); };
    }});

const RegisterLoss kPoissonNll({
    "poisson_nll_loss", "PoissonNLLLoss", "torch.nn.PoissonNLLLoss (class labels: one-hot targets)",
    {A::boolean("log_input", true).describe("the input is log(rate): exp(input) - target * input"),
     A::boolean("full", false).describe("add the Stirling approximation term of log(target!)"),
     A::floating("eps", 1e-8).at_least(0).describe("added to the input before the log when log_input is false"),
     reduction_attr()},
    nullptr, {"input", "target"}, ClassTarget::one_hot, [](const AttrMap& a) -> LossFn {
      const bool log_input = attr_bool(a, "log_input"), full = attr_bool(a, "full");
      const double eps = attr_float(a, "eps");
      const Reduction r = red(a);
      return [=](const Args& x) { return poisson_nll_loss(x[0], x[1], log_input, full, eps, r); };
    }});

const RegisterLoss kKlDiv({
    "kl_div", "KLDivLoss", "torch.nn.KLDivLoss on log-probabilities (class labels: one-hot targets)",
    {A::choice("reduction", {"none", "batchmean", "sum", "mean"}, "mean")
         .describe("how per-element losses combine; batchmean = sum / batch size (the KL divergence)"),
     A::boolean("log_target", false).describe("the target is given as log-probabilities")},
    nullptr, {"input", "target"}, ClassTarget::one_hot, [](const AttrMap& a) -> LossFn {
      const std::string r = attr_string(a, "reduction");
      const bool log_target = attr_bool(a, "log_target");
      return [=](const Args& x) { return kl_div(x[0], x[1], r, log_target); };
    }});

A margin_attr(double def) { return A::floating("margin", def).describe("the margin"); }

const RegisterLoss kMarginRanking({
    "margin_ranking_loss", "MarginRankingLoss",
    "torch.nn.MarginRankingLoss: max(0, -target * (input1 - input2) + margin), target +1/-1",
    {margin_attr(0.0), reduction_attr()}, nullptr, {"input1", "input2", "target"}, ClassTarget::none,
    [](const AttrMap& a) -> LossFn {
      const double m = attr_float(a, "margin");
      const Reduction r = red(a);
      return [=](const Args& x) { return margin_ranking_loss(x[0], x[1], x[2], m, r); };
    }});

const RegisterLoss kHingeEmbedding({
    "hinge_embedding_loss", "HingeEmbeddingLoss",
    "torch.nn.HingeEmbeddingLoss, target +1/-1 (class labels: +1 at the class, -1 elsewhere)",
    {margin_attr(1.0), reduction_attr()}, nullptr, {"input", "target"}, ClassTarget::signed_one_hot,
    [](const AttrMap& a) -> LossFn {
      const double m = attr_float(a, "margin");
      const Reduction r = red(a);
      return [=](const Args& x) { return hinge_embedding_loss(x[0], x[1], m, r); };
    }});

const RegisterLoss kMultilabelMargin({
    "multilabel_margin_loss", "MultiLabelMarginLoss",
    "torch.nn.MultiLabelMarginLoss, target class indices ended by -1 (class labels: the class, then -1)",
    {reduction_attr()}, nullptr, {"input", "target"}, ClassTarget::multilabel_index, [](const AttrMap& a) -> LossFn {
      const Reduction r = red(a);
      return [=](const Args& x) { return multilabel_margin_loss(x[0], x[1], r); };
    }});

const RegisterLoss kSoftMargin({
    "soft_margin_loss", "SoftMarginLoss",
    "torch.nn.SoftMarginLoss, target +1/-1 (class labels: +1 at the class, -1 elsewhere)",
    {reduction_attr()}, nullptr, {"input", "target"}, ClassTarget::signed_one_hot, [](const AttrMap& a) -> LossFn {
      const Reduction r = red(a);
      return [=](const Args& x) { return soft_margin_loss(x[0], x[1], r); };
    }});

const RegisterLoss kMultilabelSoftMargin({
    "multilabel_soft_margin_loss", "MultiLabelSoftMarginLoss",
    "torch.nn.MultiLabelSoftMarginLoss on logits, multi-hot targets (class labels: one-hot targets)",
    {weight_attr(), reduction_attr()}, nullptr, {"input", "target"}, ClassTarget::one_hot,
    [](const AttrMap& a) -> LossFn {
      auto w = std::make_shared<ClassWeight>(attr_floats(a, "weight"));
      const Reduction r = red(a);
      return [=](const Args& x) { return multilabel_soft_margin_loss(x[0], x[1], w->on(x[0]), r); };
    }});

const RegisterLoss kCosineEmbedding({
    "cosine_embedding_loss", "CosineEmbeddingLoss",
    "torch.nn.CosineEmbeddingLoss: 1 - cos(input1, input2) for target +1, max(0, cos - margin) for -1",
    {A::floating("margin", 0.0).range(-1, 1).describe("the margin (-1 to 1, 0 to 0.5 suggested)"), reduction_attr()},
    nullptr, {"input1", "input2", "target"}, ClassTarget::none, [](const AttrMap& a) -> LossFn {
      const double m = attr_float(a, "margin");
      const Reduction r = red(a);
      return [=](const Args& x) { return cosine_embedding_loss(x[0], x[1], x[2], m, r); };
    }});

const RegisterLoss kMultiMargin({
    "multi_margin_loss", "MultiMarginLoss", "torch.nn.MultiMarginLoss (multi-class hinge) on class indices",
    {A::integer("p", 1).range(1, 2).describe("exponent of the hinge: 1 or 2"), margin_attr(1.0), weight_attr(),
     reduction_attr()},
    nullptr, {"input", "target"}, ClassTarget::index, [](const AttrMap& a) -> LossFn {
      const int64_t p = attr_int(a, "p");
      const double m = attr_float(a, "margin");
      auto w = std::make_shared<ClassWeight>(attr_floats(a, "weight"));
      const Reduction r = red(a);
      return [=](const Args& x) { return multi_margin_loss(x[0], x[1], p, m, w->on(x[0]), r); };
    }});

const RegisterLoss kTripletMargin({
    "triplet_margin_loss", "TripletMarginLoss",
    "torch.nn.TripletMarginLoss: max(0, d(anchor, positive) - d(anchor, negative) + margin)",
    {margin_attr(1.0), A::floating("p", 2.0).above(0).describe("norm degree of the pairwise distance"),
     A::floating("eps", 1e-6).at_least(0).describe("added to the differences before the norm"),
     A::boolean("swap", false).describe("distance swap: use min(d(a, n), d(p, n)) as the negative distance"),
     reduction_attr()},
    nullptr, {"anchor", "positive", "negative"}, ClassTarget::none, [](const AttrMap& a) -> LossFn {
      const double m = attr_float(a, "margin"), p = attr_float(a, "p"), eps = attr_float(a, "eps");
      const bool swap = attr_bool(a, "swap");
      const Reduction r = red(a);
      return [=](const Args& x) { return triplet_margin_loss(x[0], x[1], x[2], m, p, eps, swap, r); };
    }});

}  // namespace
}  // namespace dl::nn
