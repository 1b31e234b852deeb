// Which x86 vector extensions our own CPU loops may use (oneDNN chooses its own; see
// ONEDNN_MAX_CPU_ISA). The binary is built for the x86-64 baseline (SSE2); hot loops written
// once are compiled a second time for AVX2 and picked at run time. Both builds of a loop give
// the same bits: they do the same operations in the same order on the same lanes, and neither
// may contract a * b + c into an FMA (the AVX2 build does not enable FMA).
//
// DLTOOL_MAX_CPU_ISA=baseline (or avx2, the default) caps the choice, like ONEDNN_MAX_CPU_ISA;
// set_max_cpu_isa does the same from code (tests compare the two builds of a loop).
#pragma once

namespace dl::cpu {

enum class CpuIsa { Baseline, Avx2 };

// The best of the machine's ISA and the cap (DLTOOL_MAX_CPU_ISA, set_max_cpu_isa). The first
// call reads DLTOOL_MAX_CPU_ISA and throws std::invalid_argument for an unknown name.
CpuIsa cpu_isa();
// Caps the ISA of later kernel calls.
void set_max_cpu_isa(CpuIsa isa);

}  // namespace dl::cpu

// A function compiled for AVX2 (without FMA: see above).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define DL_TARGET_AVX2 __attribute__((target("avx2")))
#define DL_HAVE_AVX2_BUILD 1
#else
#define DL_TARGET_AVX2
#define DL_HAVE_AVX2_BUILD 0
#endif
#define DL_ALWAYS_INLINE inline __attribute__((always_inline))
