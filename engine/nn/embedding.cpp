#include "engine/nn/embedding.h"

#include <stdexcept>

#include "engine/nn/init.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/embedding.h"

namespace dl::nn {

Embedding::Embedding(int64_t num, int64_t dim, std::optional<int64_t> pad, std::optional<double> max_norm_,
                     double norm_type_, Generator& gen)
    : num_embeddings(num), embedding_dim(dim), max_norm(max_norm_), norm_type(norm_type_) {
  if (num < 0 || dim < 0)
    throw std::invalid_argument("Embedding: negative size (num_embeddings=" + std::to_string(num) +
                                ", embedding_dim=" + std::to_string(dim) + ")");
  if (pad) padding_idx = resolve_padding_idx(pad, num, "Embedding");
  if (max_norm && !(*max_norm > 0.0))
    throw std::invalid_argument("Embedding: max_norm must be positive, got " + py_float(*max_norm));
  if (!(norm_type > 0.0))
    throw std::invalid_argument("Embedding: norm_type must be positive, got " + py_float(norm_type));
  weight = register_parameter("weight", empty({num, dim}));
  reset_parameters(gen);
}

void Embedding::reset_parameters(Generator& gen) {
  init::normal_(weight, gen);
  if (padding_idx) {
    NoGradGuard ng;
    Tensor row = weight.select(0, *padding_idx);
    fill_(row, 0.0);
  }
}

Tensor Embedding::forward(const Tensor& indices) {
  return embedding(indices, weight, padding_idx, max_norm, norm_type);
}

std::string Embedding::extra_repr() const {
  std::string s = std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim);
  if (padding_idx) s += ", padding_idx=" + std::to_string(*padding_idx);
  if (max_norm) s += ", max_norm=" + py_float(*max_norm);
  if (norm_type != 2.0) s += ", norm_type=" + py_float(norm_type);
  return s;
}

}  // namespace dl::nn
