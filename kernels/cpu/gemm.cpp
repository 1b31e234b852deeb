#include <dnnl.h>

#include <stdexcept>
#include <string>

#include "kernels/cpu/loop.h"
#include "kernels/gemm.h"

namespace dl::cpu {
namespace {

void gemm_f64(const GemmArgs& g) {
  const double* A = static_cast<const double*>(g.a);
  const double* B = static_cast<const double*>(g.b);
  double* C = static_cast<double*>(g.c);
  auto a_at = [&](int64_t i, int64_t p) { return g.trans_a ? A[p * g.lda + i] : A[i * g.lda + p]; };
  auto b_at = [&](int64_t p, int64_t j) { return g.trans_b ? B[j * g.ldb + p] : B[p * g.ldb + j]; };
  parallel_for(g.m, 8, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = 0; j < g.n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < g.k; ++p) s += a_at(i, p) * b_at(p, j);
        double& c = C[i * g.ldc + j];
        c = g.alpha * s + (g.beta == 0.0 ? 0.0 : g.beta * c);
      }
  });
}

void cpu_gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  if (g.dtype == DType::F64) return gemm_f64(g);
  if (g.dtype != DType::F32)
    throw std::invalid_argument(std::string("matmul: unsupported dtype ") + dtype_name(g.dtype));
  if (g.k == 0) {  // C = beta * C
    float* C = static_cast<float*>(g.c);
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < g.n; ++j) C[i * g.ldc + j] = g.beta == 0.0 ? 0.f : float(g.beta) * C[i * g.ldc + j];
    return;
  }
  dnnl_status_t st = dnnl_sgemm(g.trans_a ? 'T' : 'N', g.trans_b ? 'T' : 'N', g.m, g.n, g.k,
                                static_cast<float>(g.alpha), static_cast<const float*>(g.a), g.lda,
                                static_cast<const float*>(g.b), g.ldb, static_cast<float>(g.beta),
                                static_cast<float*>(g.c), g.ldc);
  if (st != dnnl_success)
    throw std::runtime_error("oneDNN sgemm failed with status " + std::to_string(static_cast<int>(st)));
}

}  // namespace

DL_REGISTER_KERNEL(gemm_stub, CPU, cpu_gemm);

}  // namespace dl::cpu
