// Valid ctc_loss arguments by role, for the tests that walk the loss registry and build each
// loss's inputs from its roles (tests/engine/test_registries.cpp, test_losses.cpp).
#pragma once
#include <string>
#include <vector>

#include "engine/ops.h"

namespace dl::test {

// log_probs [T = 6, N, C] (a leaf that requires grad), padded targets [N, 2] of labels in
// [1, C) (0 is the blank), input lengths all T, target lengths 1 or 2. Undefined for a role
// that is not one of ctc_loss's ("log_probs", "targets", "input_lengths", "target_lengths").
inline Tensor ctc_role_arg(const std::string& role, int64_t N, int64_t C, Generator& g) {
  const int64_t T = 6;
  if (role == "log_probs") return log_softmax(randn({T, N, C}, g), 2).detach().requires_grad_();
  std::vector<int64_t> targets(static_cast<size_t>(2 * N)), lengths(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) {
    targets[static_cast<size_t>(2 * i)] = 1 + i % (C - 1);
    targets[static_cast<size_t>(2 * i + 1)] = 1 + (i + 1) % (C - 1);
    lengths[static_cast<size_t>(i)] = 1 + i % 2;
  }
  if (role == "targets") return from_vector(targets, {N, 2});
  if (role == "input_lengths") return full({N}, static_cast<double>(T), DType::I64);
  if (role == "target_lengths") return from_vector(lengths, {N});
  return Tensor();
}

}  // namespace dl::test
