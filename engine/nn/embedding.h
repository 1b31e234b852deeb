// Embedding (torch.nn.Embedding): a lookup table of num_embeddings vectors of embedding_dim.
#pragma once
#include <optional>

#include "engine/nn/module.h"

namespace dl::nn {

// Input: int64 indices of any shape [*], each in [0, num_embeddings); output [*, embedding_dim]
// (engine/ops/embedding.h). State: weight [num_embeddings, embedding_dim], initialised N(0, 1)
// with the padding_idx row zeroed, as torch. padding_idx may be negative (counts from the end,
// stored resolved, as torch); that row receives no gradient. With max_norm, each forward first
// renormalises the rows it looks up (in place, in training and in eval, as torch).
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, std::optional<int64_t> padding_idx = std::nullopt,
            std::optional<double> max_norm = std::nullopt, double norm_type = 2.0,
            Generator& gen = default_generator());
  using Module::forward;
  Tensor forward(const Tensor& indices) override;
  std::string type_name() const override { return "Embedding"; }
  std::string extra_repr() const override;
  // Re-draws the weight: N(0, 1), padding row zero.
  void reset_parameters(Generator& gen);

  int64_t num_embeddings, embedding_dim;
  std::optional<int64_t> padding_idx;  // resolved: in [0, num_embeddings)
  std::optional<double> max_norm;
  double norm_type;
  Tensor weight;  // [num_embeddings, embedding_dim]
};

}  // namespace dl::nn
