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
#include <stdexcept>
#include <string>

#include "engine/tensor/device.h"

namespace dl {

template <class Fn, class Tag>
struct DispatchStub {
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
    return true;                                                                  \
  }()

}  // namespace dl
