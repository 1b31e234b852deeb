// cuDNN glue for the CUDA backend (host C++ only): checked calls, one handle per device bound
// to the backend's stream, and RAII descriptors.
//
//   TensorDesc x;
//   x.set_nchw(DType::F32, n, c, h, w);
//   DL_CUDNN_CHECK(cudnnAddTensor(cudnn_handle(dev), &one, b.get(), bias, &one, x.get(), y));
//
// Every failing call becomes a std::runtime_error naming the call, file:line and
// cudnnGetErrorString. Handles are created on first use and never destroyed (that would race
// the CUDA runtime's shutdown, as for cuBLAS in gemm.cpp). The legacy descriptor API
// (cudnnConvolutionForward etc., cudnn_cnn) is still part of cuDNN 9.
#pragma once
#include <cudnn.h>

#include <cstdint>

#include "engine/tensor/tensor.h"
#include "kernels/cuda/runtime.h"

namespace dl::cuda {

[[noreturn]] void throw_cudnn_error(cudnnStatus_t st, const char* call, const char* file, int line);

#define DL_CUDNN_CHECK(expr)                                                       \
  do {                                                                             \
    cudnnStatus_t dl_cudnn_st_ = (expr);                                           \
    if (dl_cudnn_st_ != CUDNN_STATUS_SUCCESS)                                      \
      ::dl::cuda::throw_cudnn_error(dl_cudnn_st_, #expr, __FILE__, __LINE__);      \
  } while (0)

// The cuDNN handle of `device`, bound to stream(device). Call with `device` current.
cudnnHandle_t cudnn_handle(int device);

// The cuDNN data type of f32, f64, f16 and bf16; any other dtype throws naming `what`.
cudnnDataType_t cudnn_dtype(DType t, const char* what);

// A size as cuDNN's int; throws naming `what` when it does not fit.
int cudnn_int(int64_t v, const char* what);

// Owns one cuDNN descriptor (created in the constructor, destroyed in the destructor).
template <class D, cudnnStatus_t (*Create)(D*), cudnnStatus_t (*Destroy)(D)>
class Descriptor {
 public:
  Descriptor() { DL_CUDNN_CHECK(Create(&d_)); }
  ~Descriptor() { Destroy(d_); }  // no throw from a destructor
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  D get() const { return d_; }

 private:
  D d_ = nullptr;
};

// A fully packed NCHW tensor.
class TensorDesc : public Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor,
                                     cudnnDestroyTensorDescriptor> {
 public:
  void set_nchw(DType t, int64_t n, int64_t c, int64_t h, int64_t w);
};

// A filter [o, c / groups, kh, kw], NCHW order.
class FilterDesc : public Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor,
                                     cudnnDestroyFilterDescriptor> {
 public:
  void set(DType t, int64_t o, int64_t c_per_group, int64_t kh, int64_t kw);
};

using ConvDesc = Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                            cudnnDestroyConvolutionDescriptor>;

}  // namespace dl::cuda
