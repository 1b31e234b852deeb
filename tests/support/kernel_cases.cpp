#include "tests/support/kernel_cases.h"

#include <algorithm>
#include <cmath>

#include "engine/ops.h"

namespace dl::test {

std::vector<KernelCase>& kernel_cases() {
  static std::vector<KernelCase> cases;
  return cases;
}

KernelCaseRegistrar::KernelCaseRegistrar(KernelCase c) { kernel_cases().push_back(std::move(c)); }

namespace {
Tensor place(Tensor cpu, const Device& device, bool requires_grad) {
  Tensor t = device.is_cpu() ? cpu : cpu.to(device).detach();
  if (requires_grad) t.requires_grad_();
  return t;
}
}  // namespace

Tensor case_randn(const Shape& shape, uint64_t seed, const Device& device, bool requires_grad, DType dtype) {
  Generator g(seed);
  return place(randn(shape, g, TensorOptions(dtype)), device, requires_grad);
}

Tensor case_uniform(const Shape& shape, uint64_t seed, double lo, double hi, const Device& device,
                    bool requires_grad, DType dtype) {
  Generator g(seed);
  return place(rand(shape, g, TensorOptions(dtype)) * (hi - lo) + lo, device, requires_grad);
}

Tensor case_randint(const Shape& shape, uint64_t seed, int64_t high, const Device& device) {
  Generator g(seed);
  std::vector<double> u = rand(shape, g, TensorOptions(DType::F64)).to_vector<double>();
  std::vector<int64_t> idx(u.size());
  for (size_t i = 0; i < u.size(); ++i)
    idx[i] = std::min<int64_t>(high - 1, static_cast<int64_t>(std::floor(u[i] * static_cast<double>(high))));
  return place(from_vector<int64_t>(idx, shape), device, false);
}

std::vector<Tensor> with_grads(std::vector<Tensor> outputs, const Tensor& y, const std::vector<Tensor>& leaves,
                               uint64_t seed) {
  y.backward(case_randn(y.shape(), seed, y.device(), false, y.dtype()));  // in y's dtype (f64 cases)
  for (const Tensor& l : leaves) outputs.push_back(l.grad());
  return outputs;
}

}  // namespace dl::test
