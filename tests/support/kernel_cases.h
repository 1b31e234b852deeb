// Kernel cases: how tests compare every backend's kernels with the CPU kernels without hand
// lists (ggml's test-backend-ops, PyTorch's OpInfo). A case runs one op (usually forward and
// backward through the public ops API) on a given device, from inputs it builds on the CPU with a
// fixed seed, and returns the tensors that must agree across backends. It names the kernel stubs
// it exercises.
//
//   DL_KERNEL_CASE(conv2d_basic, {"conv2d_fwd_stub", "conv2d_bwd_data_stub", "conv2d_bwd_weights_stub"},
//                  "conv2d 2x3x9x9, 4 filters 3x3, stride 2, padding 1, forward + backward",
//                  [](const dl::Device& d) {
//                    dl::Tensor x = dl::test::case_randn({2, 3, 9, 9}, 1, d, /*requires_grad=*/true);
//                    ...
//                    return std::vector<dl::Tensor>{y, x.grad(), w.grad()};
//                  });
//
// tests/engine/test_kernel_registry.cpp walks engine/dispatch.h's kernel_stub_registry():
//   - every stub with a CUDA kernel in this build has a case (CI checks this without a GPU),
//   - every case names registered stubs and runs on the CPU with finite outputs,
//   - [cuda]: every case whose stubs all have CUDA kernels gives the CPU's results on the GPU
//     within its tolerances.
// Put a family's cases in tests/engine/kernel_cases_<family>.cpp.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/tensor/tensor.h"

namespace dl::test {

struct KernelCase {
  std::vector<std::string> stubs;  // e.g. {"conv2d_fwd_stub"}; all must have a kernel on the device
  std::string name;                // what it runs, shown when it fails
  std::function<std::vector<Tensor>(const Device&)> run;
  double rtol = 1e-5;  // of a device result against the CPU's
  double atol = 1e-6;
  // Outputs compared bit for bit (integer results, random streams defined to match exactly).
  bool exact = false;
};

std::vector<KernelCase>& kernel_cases();

struct KernelCaseRegistrar {
  explicit KernelCaseRegistrar(KernelCase c);
};

// Registers a case at static-initialisation time. Optional trailing fields: rtol, atol, exact.
#define DL_KERNEL_CASE(id, ...) \
  static const ::dl::test::KernelCaseRegistrar dl_kernel_case_##id{::dl::test::KernelCase{__VA_ARGS__}}

// Inputs for cases: deterministic, built on the CPU, then moved to `device` (as leaves that
// require grad when asked).
Tensor case_randn(const Shape& shape, uint64_t seed, const Device& device, bool requires_grad = false,
                  DType dtype = DType::F32);
// Uniform in [lo, hi).
Tensor case_uniform(const Shape& shape, uint64_t seed, double lo, double hi, const Device& device,
                    bool requires_grad = false, DType dtype = DType::F32);
// Integers in [0, high) as int64 (class indices, embedding ids).
Tensor case_randint(const Shape& shape, uint64_t seed, int64_t high, const Device& device);

// A case's results with gradients: y.backward(g) with g a fixed pattern (case_randn of y's
// shape, from `seed`), then `outputs` followed by the gradient of each of `leaves`.
std::vector<Tensor> with_grads(std::vector<Tensor> outputs, const Tensor& y, const std::vector<Tensor>& leaves,
                               uint64_t seed);

}  // namespace dl::test
