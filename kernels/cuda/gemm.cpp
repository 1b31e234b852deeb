// cuBLAS GEMM on row-major blocks. cuBLAS is column-major, and a row-major [r, c] block with
// leading dimension ld is the column-major [c, r] block (its transpose) with the same ld. So
// C = op(A) op(B) (row-major) is computed as C^T = op(B)^T op(A)^T (column-major): swap the
// operands and the m/n sizes, keep each operand's transpose flag.
//
// Precision and determinism: f32 uses CUBLAS_DEFAULT_MATH (no TF32), so results match the CPU
// to fp32 rounding, unless allow_tf32() (train.precision: tf32) selects
// CUBLAS_TF32_TENSOR_OP_MATH. f16/bf16 (autocast) go through cublasGemmEx with
// CUBLAS_COMPUTE_32F: half inputs, f32 accumulation, C rounded once to the half type, as the CPU
// kernel computes them (kernels/cpu/gemm.cpp). cuBLAS gives bit-identical results run to run on the same
// GPU model and toolkit with one stream (ours). One handle per device, bound to the backend's
// stream; handles are never destroyed (that would race the CUDA runtime's shutdown).
#include <cublas_v2.h>

#include <climits>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/tensor/device.h"
#include "kernels/cuda/runtime.h"
#include "kernels/gemm.h"

namespace dl::cuda {
namespace {

[[noreturn]] void throw_cublas(cublasStatus_t st, const char* call, const char* file, int line) {
  throw std::runtime_error(std::string("cuBLAS error: ") + call + " failed at " + file + ":" +
                           std::to_string(line) + ": " + cublasGetStatusString(st));
}

#define DL_CUBLAS_CHECK(expr)                                                         \
  do {                                                                                \
    cublasStatus_t dl_cublas_st_ = (expr);                                           \
    if (dl_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                       \
      throw_cublas(dl_cublas_st_, #expr, __FILE__, __LINE__);                         \
  } while (0)

cublasHandle_t handle(int device) {
  static std::mutex mu;
  static std::vector<cublasHandle_t> handles;
  check_device(device);
  std::lock_guard<std::mutex> lock(mu);
  if (handles.empty()) handles.assign(static_cast<size_t>(cuda_device_count()), nullptr);
  cublasHandle_t& h = handles[static_cast<size_t>(device)];
  if (!h) {
    DeviceGuard guard(device);
    cublasHandle_t created = nullptr;
    DL_CUBLAS_CHECK(cublasCreate(&created));
    DL_CUBLAS_CHECK(cublasSetStream(created, stream(device)));
    DL_CUBLAS_CHECK(cublasSetMathMode(created, CUBLAS_DEFAULT_MATH));
    h = created;
  }
  return h;
}

int as_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    throw std::invalid_argument(std::string("matmul on cuda: ") + what + " = " + std::to_string(v) +
                                " does not fit cuBLAS's 32-bit sizes");
  return static_cast<int>(v);
}

// C[m, n] = beta * C when k == 0 (no product to add).
template <class T>
void scale_c(cublasHandle_t h, const GemmArgs& g, int m, int n, int ldc, cudaStream_t s) {
  T* c = static_cast<T*>(g.c);
  if (g.beta == 0.0) {
    DL_CUDA_CHECK(cudaMemset2DAsync(c, static_cast<size_t>(ldc) * sizeof(T), 0,
                                    static_cast<size_t>(n) * sizeof(T), static_cast<size_t>(m), s));
    return;
  }
  if (g.beta == 1.0) return;  // C stays (linear's bias rows with no input features)
  if constexpr (sizeof(T) == 2) {
    throw std::invalid_argument("matmul on cuda: float16/bfloat16 with k = 0 and beta other than 0 or 1");
  } else {
    const T beta = static_cast<T>(g.beta), zero = 0;
    // column-major [n, m] view of C: C = beta * C + 0 * C (in place is allowed with op N).
    if constexpr (sizeof(T) == 4)
      DL_CUBLAS_CHECK(cublasSgeam(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, &beta, c, ldc, &zero, c, ldc, c, ldc));
    else
      DL_CUBLAS_CHECK(cublasDgeam(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, &beta, c, ldc, &zero, c, ldc, c, ldc));
  }
}

// cuBLAS's data type of a half-precision GemmArgs::dtype.
cudaDataType_t half_type(DType t) { return t == DType::F16 ? CUDA_R_16F : CUDA_R_16BF; }

void cuda_gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  const bool half = g.dtype == DType::F16 || g.dtype == DType::BF16;
  if (g.dtype != DType::F32 && g.dtype != DType::F64 && !half)
    throw std::invalid_argument(std::string("matmul on cuda: unsupported dtype ") + dtype_name(g.dtype));
  const int m = as_int(g.m, "m"), n = as_int(g.n, "n"), k = as_int(g.k, "k");
  const int lda = as_int(g.lda, "lda"), ldb = as_int(g.ldb, "ldb"), ldc = as_int(g.ldc, "ldc");
  DeviceGuard guard(g.device_index);
  cublasHandle_t h = handle(g.device_index);
  cudaStream_t s = stream(g.device_index);
  if (k == 0) {
    if (g.dtype == DType::F32) scale_c<float>(h, g, m, n, ldc, s);
    else if (half) scale_c<uint16_t>(h, g, m, n, ldc, s);
    else scale_c<double>(h, g, m, n, ldc, s);
    return;
  }
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (half) {
    const float alpha = static_cast<float>(g.alpha), beta = static_cast<float>(g.beta);  // compute type f32
    const cudaDataType_t t = half_type(g.dtype);
    DL_CUBLAS_CHECK(cublasGemmEx(h, op_b, op_a, n, m, k, &alpha, g.b, t, ldb, g.a, t, lda, &beta, g.c, t, ldc,
                                 CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  } else if (g.dtype == DType::F32) {
    DL_CUBLAS_CHECK(cublasSetMathMode(h, allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const float alpha = static_cast<float>(g.alpha), beta = static_cast<float>(g.beta);
    DL_CUBLAS_CHECK(cublasSgemm(h, op_b, op_a, n, m, k, &alpha, static_cast<const float*>(g.b), ldb,
                                static_cast<const float*>(g.a), lda, &beta, static_cast<float*>(g.c), ldc));
  } else {
    const double alpha = g.alpha, beta = g.beta;
    DL_CUBLAS_CHECK(cublasDgemm(h, op_b, op_a, n, m, k, &alpha, static_cast<const double*>(g.b), ldb,
                                static_cast<const double*>(g.a), lda, &beta, static_cast<double*>(g.c), ldc));
  }
}

}  // namespace

DL_REGISTER_KERNEL(gemm_stub, CUDA, cuda_gemm);

}  // namespace dl::cuda
