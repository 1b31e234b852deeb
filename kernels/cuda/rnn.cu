// CUDA kernels of one recurrent time step (kernels/rnn.h): the fused gate elementwise work, one
// thread per (row, hidden unit), with the equations of kernels/rnn_gates.h (the CPU kernel's).
// The op layer (engine/ops/rnn.cpp) does the GEMMs through gemm_stub, which is cuBLAS on CUDA
// (kernels/cuda/gemm.cpp), and passes device pointers, `lengths` included. Every output element
// has one writer: deterministic.
#include "kernels/cuda/helpers.cuh"
#include "kernels/cuda/loop.cuh"
#include "kernels/rnn.h"
#include "kernels/rnn_gates.h"

namespace dl::cuda {
namespace {

__device__ __forceinline__ bool active(const int64_t* lengths, int64_t row, int64_t t) {
  return !lengths || t < lengths[row];
}

template <class T>
__global__ void rnn_step_fwd_kernel(RnnStepArgs a) {
  const int64_t H = a.h, GH = rnn_gate_count(a.mode) * H, S = rnn_saved_gates(a.mode) * H;
  const bool lstm = a.mode == RnnMode::LSTM;
  const T* gx = static_cast<const T*>(a.gx);
  const T* gh = static_cast<const T*>(a.gh);
  const T* hp = static_cast<const T*>(a.h_prev);
  const T* cp = static_cast<const T*>(a.c_prev);
  T* hn = static_cast<T*>(a.h_new);
  T* cn = static_cast<T*>(a.c_new);
  T* y = static_cast<T*>(a.y);
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < a.n * H; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / H, j = e - r * H;
    if (!active(a.lengths, r, a.t)) {  // keep h and c, output 0
      hn[e] = hp[e];
      if (lstm) cn[e] = cp[e];
      y[r * a.ldy + j] = T(0);
      continue;
    }
    T c = T(0);
    const T h = rnn_gates::step_forward<T>(a.mode, H, j, gx + r * GH, gh + r * GH, static_cast<const T*>(a.b_ih),
                                           static_cast<const T*>(a.b_hh), hp[e], lstm ? cp[e] : T(0), &c,
                                           static_cast<T*>(a.saved) + r * S);
    hn[e] = h;
    y[r * a.ldy + j] = h;
    if (lstm) cn[e] = c;
  }
}

template <class T>
__global__ void rnn_step_bwd_kernel(RnnStepBackwardArgs a) {
  const int64_t H = a.h, G = rnn_gate_count(a.mode), GH = G * H, S = rnn_saved_gates(a.mode) * H;
  const bool lstm = a.mode == RnnMode::LSTM, gru = a.mode == RnnMode::GRU;
  const T* hp = static_cast<const T*>(a.h_prev);
  const T* cp = static_cast<const T*>(a.c_prev);
  const T* dy = static_cast<const T*>(a.dy);
  const T* dh = static_cast<const T*>(a.dh);
  const T* dc = static_cast<const T*>(a.dc);
  T* dgx = static_cast<T*>(a.dgx);
  T* dgh = static_cast<T*>(a.dgh);
  T* dhp = static_cast<T*>(a.dh_prev);
  T* dcp = static_cast<T*>(a.dc_prev);
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < a.n * H; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / H, j = e - r * H;
    T* gxr = dgx + r * GH;
    T* ghr = dgh + r * GH;
    if (!active(a.lengths, r, a.t)) {  // h, c passed through; the output was a constant 0
      for (int64_t k = 0; k < G; ++k) gxr[k * H + j] = ghr[k * H + j] = T(0);
      dhp[e] = dh[e];
      if (lstm) dcp[e] = dc[e];
      continue;
    }
    T dcp_e = T(0);
    dhp[e] = rnn_gates::step_backward<T>(a.mode, H, j, static_cast<const T*>(a.saved) + r * S, gru ? hp[e] : T(0),
                                         lstm ? cp[e] : T(0), dh[e] + dy[r * a.lddy + j], lstm ? dc[e] : T(0), gxr,
                                         ghr, &dcp_e);
    if (lstm) dcp[e] = dcp_e;
  }
}

template <class Args, class Kernel32, class Kernel64>
void launch_step(const Args& a, Kernel32 k32, Kernel64 k64, const char* what) {
  const int64_t total = a.n * a.h;
  if (total == 0) return;
  DeviceGuard guard(a.device);
  cudaStream_t st = stream(a.device);
  if (a.dtype == DType::F32) k32<<<grid_for(total, kThreads), kThreads, 0, st>>>(a);
  else if (a.dtype == DType::F64) k64<<<grid_for(total, kThreads), kThreads, 0, st>>>(a);
  else throw std::invalid_argument(std::string(what) + ": unsupported dtype " + dtype_name(a.dtype) + " on cuda");
  DL_CUDA_CHECK_LAUNCH();
}

void cuda_rnn_step_fwd(const RnnStepArgs& a) {
  launch_step(a, rnn_step_fwd_kernel<float>, rnn_step_fwd_kernel<double>, "rnn step");
}

void cuda_rnn_step_bwd(const RnnStepBackwardArgs& a) {
  launch_step(a, rnn_step_bwd_kernel<float>, rnn_step_bwd_kernel<double>, "rnn step backward");
}

}  // namespace

DL_REGISTER_KERNEL(rnn_step_fwd_stub, CUDA, cuda_rnn_step_fwd);
DL_REGISTER_KERNEL(rnn_step_bwd_stub, CUDA, cuda_rnn_step_bwd);

}  // namespace dl::cuda
