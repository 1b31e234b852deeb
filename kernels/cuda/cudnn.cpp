// cuDNN handles per device and the descriptor helpers of kernels/cuda/cudnn.h.
#include "kernels/cuda/cudnn.h"

#include <climits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/tensor/device.h"

namespace dl::cuda {

void throw_cudnn_error(cudnnStatus_t st, const char* call, const char* file, int line) {
  throw std::runtime_error(std::string("cuDNN error: ") + call + " failed at " + file + ":" +
                           std::to_string(line) + ": " + cudnnGetErrorString(st));
}

cudnnHandle_t cudnn_handle(int device) {
  static std::mutex mu;
  static std::vector<cudnnHandle_t> handles;
  check_device(device);
  std::lock_guard<std::mutex> lock(mu);
  if (handles.empty()) handles.assign(static_cast<size_t>(cuda_device_count()), nullptr);
  cudnnHandle_t& h = handles[static_cast<size_t>(device)];
  if (!h) {
    DeviceGuard guard(device);
    cudnnHandle_t created = nullptr;
    DL_CUDNN_CHECK(cudnnCreate(&created));
    DL_CUDNN_CHECK(cudnnSetStream(created, stream(device)));
    h = created;
  }
  return h;
}

cudnnDataType_t cudnn_dtype(DType t, const char* what) {
  switch (t) {
    case DType::F32: return CUDNN_DATA_FLOAT;
    case DType::F64: return CUDNN_DATA_DOUBLE;
    case DType::F16: return CUDNN_DATA_HALF;
    case DType::BF16: return CUDNN_DATA_BFLOAT16;
    default: break;
  }
  throw std::invalid_argument(std::string(what) + ": unsupported dtype " + dtype_name(t) +
                              " on cuda (expected float32, float64, float16 or bfloat16)");
}

int cudnn_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX)
    throw std::invalid_argument(std::string("cuDNN: ") + what + " = " + std::to_string(v) +
                                " does not fit cuDNN's 32-bit sizes");
  return static_cast<int>(v);
}

void TensorDesc::set_nchw(DType t, int64_t n, int64_t c, int64_t h, int64_t w) {
  DL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(get(), CUDNN_TENSOR_NCHW, cudnn_dtype(t, "cuDNN tensor"),
                                            cudnn_int(n, "batch size"), cudnn_int(c, "channels"),
                                            cudnn_int(h, "height"), cudnn_int(w, "width")));
}

void FilterDesc::set(DType t, int64_t o, int64_t c_per_group, int64_t kh, int64_t kw) {
  DL_CUDNN_CHECK(cudnnSetFilter4dDescriptor(get(), cudnn_dtype(t, "cuDNN filter"), CUDNN_TENSOR_NCHW,
                                            cudnn_int(o, "output channels"),
                                            cudnn_int(c_per_group, "input channels per group"),
                                            cudnn_int(kh, "kernel height"), cudnn_int(kw, "kernel width")));
}

}  // namespace dl::cuda
