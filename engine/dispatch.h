// Kernel dispatch: one function-pointer slot per (kernel, device type), like PyTorch's
// DispatchStub and ggml's backend vtable. A kernel family declares its stubs in
// kernels/<family>.h; each backend fills them from its own translation unit:
//
//   // kernels/elementwise.h
//   using binary_fn = void (*)(BinaryOp, const Tensor& a, const Tensor& b, Tensor& out);
//   DL_DECLARE_STUB(binary_stub, binary_fn);
//   // kernels/cpu/elementwise.cpp
//   DL_REGISTER_KERNEL(binary_stub, CPU, cpu_binary);
//   // engine/ops/elementwise.cpp
//   binary_stub(out.device())(op, a, b, out);
//
// A missing kernel is a clear error naming the kernel and the device, and `supports()` tells
// tests which backends to compare.
#pragma once
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/tensor/device.h"

namespace dl {

// Every stub that has at least one kernel registered, by name: tests walk it to compare each
// backend's kernel with the CPU kernel (tests/support/kernel_cases.h), so a new CUDA kernel is
// tested by existing.
struct KernelStubInfo {
  const char* name;
  bool (*supports)(DeviceType);
};
inline std::vector<KernelStubInfo>& kernel_stub_registry() {
  static std::vector<KernelStubInfo> stubs;
  return stubs;
}
inline void note_kernel_stub(const char* name, bool (*supports)(DeviceType)) {
  for (const KernelStubInfo& s : kernel_stub_registry())
    if (std::strcmp(s.name, name) == 0) return;
  kernel_stub_registry().push_back({name, supports});
}

template <class Fn, class Tag>
struct DispatchStub {
  static const char* name() { return Tag::name(); }
  static Fn& slot(DeviceType t) {
    static Fn table[kNumDeviceTypes] = {};
    return table[static_cast<int>(t)];
  }
  static bool supports(DeviceType t) { return slot(t) != nullptr; }
  Fn operator()(const Device& d) const {
    Fn f = slot(d.type);
    if (!f) throw std::runtime_error(std::string("kernel '") + Tag::name() +
                                     "' is not implemented for device " + d.str());
    return f;
  }
};

#define DL_DECLARE_STUB(stub, fn_type)                                   \
  struct stub##_tag { static const char* name() { return #stub; } };    \
  inline constexpr ::dl::DispatchStub<fn_type, stub##_tag> stub {}

#define DL_REGISTER_KERNEL(stub, devtype, fn)                                     \
  static const bool stub##_registered_##devtype = [] {                           \
    decltype(stub)::slot(::dl::DeviceType::devtype) = fn;                        \
    ::dl::note_kernel_stub(decltype(stub)::name(), &decltype(stub)::supports);    \
    return true;                                                                  \
  }()

}  // namespace dl
