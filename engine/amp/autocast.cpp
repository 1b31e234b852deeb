#include "engine/amp/autocast.h"

#include <stdexcept>

#ifdef DLTOOL_WITH_CUDA
#include "kernels/cuda/runtime.h"
#endif

namespace dl::amp {
namespace {

struct State {
  bool enabled = false;
  DType dtype = DType::BF16;
};
thread_local State g_state;

bool is_low(DType t) { return t == DType::F16 || t == DType::BF16; }

}  // namespace

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::FP32;
  if (s == "tf32") return Precision::TF32;
  if (s == "bf16") return Precision::BF16;
  if (s == "fp16") return Precision::FP16;
  throw std::invalid_argument("unknown precision '" + s + "' (expected fp32, tf32, bf16 or fp16)");
}

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
    case Precision::FP16: return "fp16";
  }
  return "?";
}

std::optional<DType> autocast_dtype(Precision p) {
  if (p == Precision::BF16) return DType::BF16;
  if (p == Precision::FP16) return DType::F16;
  return std::nullopt;
}

void set_allow_tf32(bool allow) {
#ifdef DLTOOL_WITH_CUDA
  cuda::set_allow_tf32(allow);
#else
  (void)allow;
#endif
}

bool autocast_enabled() { return g_state.enabled; }
DType autocast_dtype() { return g_state.dtype; }

AutocastGuard::AutocastGuard(std::optional<DType> low) : prev_enabled_(g_state.enabled), prev_dtype_(g_state.dtype) {
  if (low && !is_low(*low))
    throw std::invalid_argument(std::string("autocast: the low-precision dtype must be float16 or bfloat16, got ") +
                                dtype_name(*low));
  g_state.enabled = low.has_value();
  if (low) g_state.dtype = *low;
}

AutocastGuard::~AutocastGuard() {
  g_state.enabled = prev_enabled_;
  g_state.dtype = prev_dtype_;
}

Tensor autocast(CastPolicy policy, const Tensor& x) {
  if (!g_state.enabled || !x.defined()) return x;
  switch (policy) {
    case CastPolicy::Lower:  // f32 (or the other low dtype) -> the low dtype; f64 stays
      return (x.dtype() == DType::F32 || (is_low(x.dtype()) && x.dtype() != g_state.dtype)) ? x.to(g_state.dtype) : x;
    case CastPolicy::F32: return is_low(x.dtype()) ? x.to(DType::F32) : x;
  }
  return x;
}

}  // namespace dl::amp
