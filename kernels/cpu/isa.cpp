#include "kernels/cpu/isa.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace dl::cpu {
namespace {

CpuIsa machine_isa() {
#if DL_HAVE_AVX2_BUILD
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) return CpuIsa::Avx2;
#endif
  return CpuIsa::Baseline;
}

CpuIsa env_cap() {
  const char* v = std::getenv("DLTOOL_MAX_CPU_ISA");
  if (!v || !*v) return CpuIsa::Avx2;
  const std::string s(v);
  if (s == "baseline" || s == "BASELINE" || s == "sse2" || s == "SSE2") return CpuIsa::Baseline;
  if (s == "avx2" || s == "AVX2") return CpuIsa::Avx2;
  throw std::invalid_argument("DLTOOL_MAX_CPU_ISA='" + s + "': expected baseline or avx2");
}

std::atomic<int>& cap_slot() {
  static std::atomic<int> cap{static_cast<int>(env_cap())};
  return cap;
}

}  // namespace

CpuIsa cpu_isa() {
  static const CpuIsa machine = machine_isa();
  const int cap = cap_slot().load(std::memory_order_relaxed);
  return static_cast<CpuIsa>(std::min(static_cast<int>(machine), cap));
}

void set_max_cpu_isa(CpuIsa isa) { cap_slot().store(static_cast<int>(isa), std::memory_order_relaxed); }

}  // namespace dl::cpu
