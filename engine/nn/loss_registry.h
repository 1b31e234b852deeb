// The loss registry: every torch.nn loss dltool knows is ONE registration, next to its
// functional form (engine/ops/loss*.cpp), holding the YAML schema (options with docs,
// defaults, ranges), the argument roles and the builder:
//
//   namespace {
//   const RegisterLoss reg({
//       "smooth_l1_loss", "SmoothL1Loss", "torch.nn.SmoothL1Loss",
//       {reduction_attr(), AttrSchema::floating("beta", 1.0).at_least(0).describe("L1/L2 switch point")},
//       /*rule=*/nullptr, {"input", "target"}, ClassTarget::one_hot,
//       [](const AttrMap& a) -> LossFn {
//         Reduction r = parse_reduction(attr_string(a, "reduction"));
//         double beta = attr_float(a, "beta");
//         return [=](const std::vector<Tensor>& x) { return smooth_l1_loss(x[0], x[1], r, beta); };
//       }});
//   }
//
// configs/ reads `loss:` against these schemas, the reference is generated from them and
// tests/engine/test_registries.cpp walks the registry (every entry documented, buildable and
// differentiable on the inputs its roles describe). Adding a loss = its function + this entry.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/graph/attr_schema.h"
#include "engine/ops/loss.h"
#include "engine/tensor/tensor.h"

namespace dl::nn {

// loss(args in the order of LossDef::inputs) -> 0-dim tensor (or per-element for "none").
using LossFn = std::function<Tensor(const std::vector<Tensor>& args)>;

// How the `target` argument is made when the data gives class indices (i64 [N]) and the
// model's output is [N, C]: what a classifier recipe needs to train with this loss.
enum class ClassTarget {
  index,             // the class indices as they are (cross_entropy, nll_loss, multi_margin_loss)
  one_hot,           // float one-hot [N, C] (mse_loss, l1_loss, bce, kl_div, poisson_nll, ...)
  signed_one_hot,    // +1 at the class, -1 elsewhere [N, C] (soft_margin_loss, hinge_embedding)
  multilabel_index,  // i64 [N, C]: the class, then -1 padding (multilabel_margin_loss)
  none,              // the loss has no target role, or needs a target classes cannot give
};

struct LossDef {
  std::string name;        // YAML `loss.type`: torch.nn.functional's name ("cross_entropy")
  std::string torch_name;  // torch.nn class ("CrossEntropyLoss")
  std::string doc;         // one line for the generated reference
  std::vector<AttrSchema> attrs;  // torch's keyword arguments, names and defaults
  std::function<std::string(const AttrMap&)> rule;  // cross-attribute rule; "" when fine
  // Argument roles in torch's order: {"input", "target"}; {"input1", "input2", "target"}
  // (margin_ranking_loss); {"anchor", "positive", "negative"} (triplet_margin_loss). A role
  // named "target" comes from the batch; the others are model outputs (`loss.inputs:`).
  std::vector<std::string> inputs = {"input", "target"};
  ClassTarget class_target = ClassTarget::index;
  std::function<LossFn(const AttrMap& attrs)> make;  // attrs resolved (defaults filled)
  // A sequence loss with torch.nn.CTCLoss's roles (log_probs, targets, input_lengths,
  // target_lengths): the trainer feeds it the model's output [N, T, C] transposed to [T, N, C],
  // the batch's padded targets [N, S] and their target_lengths, and T as every input length.
  bool sequence_target = false;
};

struct RegisterLoss {
  explicit RegisterLoss(LossDef def);  // std::logic_error on a duplicate
};

const std::vector<LossDef>& loss_defs();  // sorted by name
// By YAML name or torch class name, case-insensitive; nullptr when unknown.
const LossDef* find_loss_def(std::string_view name);
const LossDef& loss_def(std::string_view name);  // throws listing the valid names
std::vector<std::string> loss_names();

// Builds the loss `name` with `attrs` (unset ones take their defaults; everything checked,
// std::invalid_argument on a problem).
LossFn make_loss(std::string_view name, const AttrMap& attrs);

// The `reduction` option every loss has: none | mean | sum, default mean.
AttrSchema reduction_attr();

}  // namespace dl::nn
