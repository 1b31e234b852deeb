// GEMM stub: C = alpha * op(A) @ op(B) + beta * C on 2-d row-major blocks.
// A is [M, K] (or [K, M] when trans_a), B is [K, N] (or [N, K] when trans_b), C is [M, N].
// Leading dimensions are in elements. Pointers are device pointers of `device`.
//
// Determinism: oneDNN's sgemm is bit-identical run to run at a given thread count, but its
// K-blocking may depend on the number of threads, so results can differ in the last bits
// between OMP_NUM_THREADS=1 and 2. The f64 path (used by gradient checks) is our own loop.
#pragma once
#include <cstdint>

#include "engine/dispatch.h"
#include "engine/tensor/dtype.h"

namespace dl {

struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  double alpha = 1.0, beta = 0.0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  void* c = nullptr;
  int64_t ldc = 0;
  DType dtype = DType::F32;
  int device_index = 0;
};

using gemm_fn = void (*)(const GemmArgs& args);
DL_DECLARE_STUB(gemm_stub, gemm_fn);

}  // namespace dl
