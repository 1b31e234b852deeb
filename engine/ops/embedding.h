// Embedding lookup (torch.nn.functional.embedding) and max_norm renormalisation.
//
//   Tensor tokens = ...;                      // i64 [N, T], each in [0, V)
//   Tensor y = embedding(tokens, weight, 0);  // weight [V, D] -> y [N, T, D]; row 0 gets no grad
//
// Indices must be int64; one outside [0, V) is std::invalid_argument naming the value, its
// position and V (checked before any row is read). Backward reaches the weight only, and is
// deterministic: repeated indices accumulate in position order (kernels/embedding.h).
#pragma once
#include <cstdint>
#include <optional>

#include "engine/tensor/tensor.h"

namespace dl {

// indices [*] (i64), weight [V, D] (f32/f64) -> [*, D]: weight's rows at the indices.
// padding_idx: the row that receives no gradient; negative counts from the end as in torch
// (-1 is V - 1); must lie in [-V, V). max_norm: before the lookup, each row looked up whose
// norm_type-norm exceeds max_norm is scaled down in place to max_norm (embedding_renorm_),
// as torch does in training and in eval.
Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx = std::nullopt,
                 std::optional<double> max_norm = std::nullopt, double norm_type = 2.0);

// torch.embedding_renorm_: in place, without gradient, rows of weight [V, D] at the distinct
// `indices` whose norm_type-norm is above max_norm are multiplied by max_norm / (norm + 1e-7).
// max_norm and norm_type must be positive (norm_type may be infinity: the max-abs norm).
void embedding_renorm_(Tensor& weight, const Tensor& indices, double max_norm, double norm_type = 2.0);

// padding_idx as a row in [0, V), or -1 for none; throws std::invalid_argument (naming `op`)
// when it lies outside [-V, V). torch.nn.Embedding and F.embedding resolve it this way.
int64_t resolve_padding_idx(std::optional<int64_t> padding_idx, int64_t num_embeddings,
                            const char* op = "embedding");

}  // namespace dl
