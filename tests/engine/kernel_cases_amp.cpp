// Kernel cases of mixed precision (engine/amp): autocast's casts (copy_stub between f32 and
// f16/bf16) and the half-precision GEMM (gemm_stub: cublasGemmEx with f32 accumulation on CUDA,
// f32 sgemm on exact copies on the CPU). Results are rounded to the half type, so a different
// summation order may move one to the neighbouring half value: tolerances of one ulp.
#include "engine/amp/autocast.h"
#include "engine/ops.h"
#include "tests/support/kernel_cases.h"

using namespace dl;
using namespace dl::test;

namespace {

// linear without bias and a batched matmul under autocast, forward + backward to f32 leaves.
std::vector<Tensor> autocast_gemm(const Device& d, DType low, uint64_t seed) {
  Tensor x = case_randn({9, 24}, seed, d, true);
  Tensor w = case_randn({7, 24}, seed + 1, d, true);
  Tensor a = case_randn({2, 5, 8}, seed + 2, d, true);
  Tensor b = case_randn({8, 3}, seed + 3, d, true);
  Tensor y1, y2;
  {
    amp::AutocastGuard ac(low);
    y1 = linear(x, w);
    y2 = matmul(a, b);
  }
  Tensor f1 = y1.to(DType::F32), f2 = y2.to(DType::F32);
  add(sum(mul(f1, f1)), sum(f2)).backward();
  return {f1, f2, x.grad(), w.grad(), a.grad(), b.grad()};
}

}  // namespace

DL_KERNEL_CASE(amp_gemm_bf16, {"gemm_stub", "copy_stub"},
               "bf16 autocast: linear 9x24 -> 7 (no bias) and matmul 2x5x8 @ 8x3, forward + backward",
               [](const Device& d) { return autocast_gemm(d, DType::BF16, 301); }, 1.0 / 64, 1e-2);

DL_KERNEL_CASE(amp_gemm_f16, {"gemm_stub", "copy_stub"},
               "f16 autocast: linear 9x24 -> 7 (no bias) and matmul 2x5x8 @ 8x3, forward + backward",
               [](const Device& d) { return autocast_gemm(d, DType::F16, 311); }, 1.0 / 512, 1e-3);

// What a bf16 activation meets between the GEMMs of an autocast model that is not in the f32
// list: elementwise ops, relu's backward, where, and (through the f32 list's upcast, or
// directly for sum) reductions and softmax on half tensors. Every half kernel computes in f32
// and rounds once (kernels/f32_compute.h), on the CPU and on CUDA.
DL_KERNEL_CASE(half_elementwise_reduce, {"unary_stub", "binary_stub", "where_stub", "sum_stub", "softmax_stub",
                                         "softmax_backward_stub", "arg_reduce_stub", "copy_stub"},
               "bf16 and f16 tensors through relu, add, mul, gelu, where, sum over a dim, softmax and argmax, "
               "forward + backward to f32 leaves",
               [](const Device& d) {
                 std::vector<Tensor> out;
                 for (DType low : {DType::BF16, DType::F16}) {
                   Tensor x = case_randn({6, 10}, 321, d, true);
                   Tensor b = case_randn({10}, 322, d, true);
                   Tensor h = x.to(low), hb = b.to(low);
                   Tensor y = add(mul(relu(h), hb), gelu(h));
                   y = where(gt(h, 0.0), y, hb);
                   Tensor s = sum(y, {1});
                   Tensor p = softmax(y, 1);
                   add(sum(s.to(DType::F32)), sum(mul(p, p).to(DType::F32))).backward();
                   out.insert(out.end(), {y.to(DType::F32), s.to(DType::F32), p.to(DType::F32),
                                          argmax(y, 1).to(DType::F32), x.grad(), b.grad()});
                 }
                 return out;
               },
               1.0 / 64, 1e-2);
