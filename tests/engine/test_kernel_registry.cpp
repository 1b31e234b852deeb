// Walks the kernel stub registry (engine/dispatch.h) and the kernel cases
// (tests/support/kernel_cases.h): every CUDA kernel is compared with the CPU kernel on the same
// inputs, forward and backward, without a hand-kept list. A new CUDA kernel needs only a case.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

#include "engine/dispatch.h"
#include "engine/ops.h"
#include "tests/support/fixtures.h"
#include "tests/support/kernel_cases.h"

using namespace dl;
using dl::test::kernel_cases;
using dl::test::KernelCase;

namespace {

const KernelStubInfo* find_stub(const std::string& name) {
  for (const KernelStubInfo& s : kernel_stub_registry())
    if (name == s.name) return &s;
  return nullptr;
}

bool case_supported_on(const KernelCase& c, DeviceType t) {
  for (const std::string& s : c.stubs) {
    const KernelStubInfo* info = find_stub(s);
    if (!info || !info->supports(t)) return false;
  }
  return true;
}

bool all_finite_values(const Tensor& t) {
  if (!is_floating(t.dtype())) return true;
  return isfinite_all(t.cpu());
}

template <class T>
size_t bit_mismatches(const Tensor& a, const Tensor& b) {
  std::vector<T> x = a.contiguous().to_vector<T>(), y = b.contiguous().to_vector<T>();
  if (x.size() != y.size()) return std::max(x.size(), y.size());
  size_t n = 0;
  for (size_t i = 0; i < x.size(); ++i) n += std::memcmp(&x[i], &y[i], sizeof(T)) != 0;
  return n;
}

size_t bit_mismatches_any(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype()) return std::max<size_t>(1, a.numel());
  switch (a.dtype()) {
    case DType::F64: return bit_mismatches<double>(a, b);
    case DType::I64: return bit_mismatches<int64_t>(a, b);
    case DType::U8: case DType::Bool: return bit_mismatches<uint8_t>(a.to(DType::U8), b.to(DType::U8));
    default: return bit_mismatches<float>(a.to(DType::F32), b.to(DType::F32));  // f16/bf16 -> f32 is exact
  }
}

}  // namespace

TEST_CASE("kernel registry: every stub with a kernel is registered by name, and every case names real stubs",
          "[kernel_registry]") {
  REQUIRE(find_stub("gemm_stub") != nullptr);
  REQUIRE(find_stub("conv2d_fwd_stub") != nullptr);
  CHECK(find_stub("gemm_stub")->supports(DeviceType::CPU));
  REQUIRE_FALSE(kernel_cases().empty());
  std::set<std::string> names;
  for (const KernelCase& c : kernel_cases()) {
    INFO("case '" << c.name << "'");
    CHECK_FALSE(c.stubs.empty());
    CHECK(names.insert(c.name).second);  // names are unique: failures are reported by name
    for (const std::string& s : c.stubs) {
      INFO("stub '" << s << "'");
      CHECK(find_stub(s) != nullptr);
    }
  }
}

TEST_CASE("kernel registry: every CUDA kernel of this build has a kernel case", "[kernel_registry]") {
  // Runs without a GPU: a CUDA build (CI) fails here when a CUDA kernel has nothing comparing it
  // with the CPU kernel.
  std::set<std::string> covered;
  for (const KernelCase& c : kernel_cases()) covered.insert(c.stubs.begin(), c.stubs.end());
  std::string missing_case, cpu_only;
  for (const KernelStubInfo& s : kernel_stub_registry()) {
    if (s.supports(DeviceType::CUDA) && !covered.count(s.name)) missing_case += std::string(" ") + s.name;
    if (!s.supports(DeviceType::CUDA)) cpu_only += std::string(" ") + s.name;
  }
  INFO("stubs without a CUDA kernel in this build:" << cpu_only);
  INFO("CUDA kernels without a case (add one to tests/engine/kernel_cases_*.cpp):" << missing_case);
  CHECK(missing_case.empty());
}

TEST_CASE("kernel registry: every kernel case runs on the CPU with finite results", "[kernel_registry]") {
  for (const KernelCase& c : kernel_cases()) {
    INFO("case '" << c.name << "'");
    REQUIRE(case_supported_on(c, DeviceType::CPU));
    std::vector<Tensor> out = c.run(Device::cpu());
    REQUIRE_FALSE(out.empty());
    for (size_t i = 0; i < out.size(); ++i) {
      INFO("output " << i);
      REQUIRE(out[i].defined());
      CHECK(all_finite_values(out[i]));
      // Deterministic: a second run gives the same bits (cases build their inputs from seeds).
      CHECK(bit_mismatches_any(out[i], c.run(Device::cpu())[i]) == 0);
    }
  }
}

TEST_CASE("cuda: every CUDA kernel matches the CPU kernel (kernel registry walk)", "[cuda]") {
  REQUIRE_CUDA_DEVICE();
  const Device cuda = Device::cuda(0);
  size_t ran = 0;
  for (const KernelCase& c : kernel_cases()) {
    if (!case_supported_on(c, DeviceType::CUDA)) continue;
    INFO("case '" << c.name << "' (rtol " << c.rtol << ", atol " << c.atol << (c.exact ? ", exact" : "") << ")");
    std::vector<Tensor> want = c.run(Device::cpu());
    std::vector<Tensor> got = c.run(cuda);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO("output " << i);
      REQUIRE(got[i].defined());
      CHECK(got[i].dtype() == want[i].dtype());
      CHECK(got[i].shape() == want[i].shape());
      Tensor g = got[i].cpu();
      if (c.exact) {
        CHECK(bit_mismatches_any(g, want[i]) == 0);
      } else {
        CHECK_CLOSE(g, want[i], c.rtol, c.atol);
      }
    }
    ++ran;
  }
  CHECK(ran > 0);
}
