#include <dnnl.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cpu/half.h"
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

void cpu_gemm(const GemmArgs& g);

// f16/bf16 operands: exact f32 copies, sgemm (f32 accumulation), C rounded once to the half
// type (what cuBLAS's GemmEx with CUBLAS_COMPUTE_32F gives, up to summation order).
template <class H>
void gemm_half(const GemmArgs& g) {
  // A stored block of rows x cols with leading dimension ld, as a dense f32 copy.
  auto widen = [](const void* p, int64_t rows, int64_t cols, int64_t ld) {
    std::vector<float> v(static_cast<size_t>(rows * cols));
    const H* h = static_cast<const H*>(p);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) v[static_cast<size_t>(i * cols + j)] = h[i * ld + j].to_float();
    return v;
  };
  const int64_t ar = g.trans_a ? g.k : g.m, ac = g.trans_a ? g.m : g.k;
  const int64_t br = g.trans_b ? g.n : g.k, bc = g.trans_b ? g.k : g.n;
  std::vector<float> a = widen(g.a, ar, ac, g.lda), b = widen(g.b, br, bc, g.ldb);
  std::vector<float> c = g.beta == 0.0 ? std::vector<float>(static_cast<size_t>(g.m * g.n)) : widen(g.c, g.m, g.n, g.ldc);
  GemmArgs f = g;
  f.dtype = DType::F32;
  f.a = a.data();
  f.lda = std::max<int64_t>(ac, 1);
  f.b = b.data();
  f.ldb = std::max<int64_t>(bc, 1);
  f.c = c.data();
  f.ldc = std::max<int64_t>(g.n, 1);
  cpu_gemm(f);
  H* out = static_cast<H*>(g.c);
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) out[i * g.ldc + j] = H::from_float(c[static_cast<size_t>(i * g.n + j)]);
}

void cpu_gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  if (g.dtype == DType::F64) return gemm_f64(g);
  if (g.dtype == DType::F16) return gemm_half<Half>(g);
  if (g.dtype == DType::BF16) return gemm_half<BFloat16>(g);
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
