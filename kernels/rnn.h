// Kernel stubs of the recurrent layers (engine/ops/rnn.h): the fused gate elementwise work of
// one time step, forward and backward. The op layer does every matrix product (gemm_stub) and
// calls these once per step and direction; a CUDA backend fills the same slots.
//
// Layouts (all row-major, one dtype per call: f32 or f64; pointers are device pointers):
//   G = gates per mode (lstm 4: i f g o; gru 3: r z n; rnn 1), H = hidden size, N = batch.
//   gx    [N, G*H]  x_t W_ih^T            (no bias: the kernel adds b_ih)
//   gh    [N, G*H]  h_{t-1} W_hh^T        (no bias: the kernel adds b_hh; GRU keeps b_hn inside r*(.))
//   saved [N, S*H]  what backward needs, S per mode (rnn_saved_gates):
//                   lstm i f g o tanh(c_t); gru r z n (W_hn h + b_hn); rnn h_t
// A sequence n is active at time t when lengths is null or t < lengths[n] (packed-sequence
// semantics). An inactive step keeps h and c, writes output 0 and saves nothing meaningful;
// its backward passes dh/dc through and gives zero gate gradients.
#pragma once
#include <cstdint>

#include "engine/dispatch.h"
#include "engine/tensor/dtype.h"
#include "kernels/host_device.h"

namespace dl {

enum class RnnMode { LSTM, GRU, RNN_TANH, RNN_RELU };

DL_HOST_DEVICE inline int64_t rnn_gate_count(RnnMode m) {
  return m == RnnMode::LSTM ? 4 : m == RnnMode::GRU ? 3 : 1;
}
DL_HOST_DEVICE inline int64_t rnn_saved_gates(RnnMode m) {
  return m == RnnMode::LSTM ? 5 : m == RnnMode::GRU ? 4 : 1;
}

struct RnnStepArgs {
  RnnMode mode = RnnMode::LSTM;
  DType dtype = DType::F32;
  int device = 0;                     // the GPU the pointers are on (its index; CUDA kernels)
  int64_t n = 0, h = 0;
  int64_t t = 0;                      // time index, compared with lengths
  const int64_t* lengths = nullptr;   // [N] or null (every sequence active)
  const void* gx = nullptr;           // [N, G*H]
  const void* gh = nullptr;           // [N, G*H]
  const void* b_ih = nullptr;         // [G*H] or null
  const void* b_hh = nullptr;         // [G*H] or null
  const void* h_prev = nullptr;       // [N, H]
  const void* c_prev = nullptr;       // [N, H] (lstm)
  void* h_new = nullptr;              // [N, H]
  void* c_new = nullptr;              // [N, H] (lstm)
  void* y = nullptr;                  // [N, ldy]: columns 0..H-1 get h_t (0 when inactive)
  int64_t ldy = 0;
  void* saved = nullptr;              // [N, S*H]
};

struct RnnStepBackwardArgs {
  RnnMode mode = RnnMode::LSTM;
  DType dtype = DType::F32;
  int device = 0;                // as in RnnStepArgs
  int64_t n = 0, h = 0;
  int64_t t = 0;
  const int64_t* lengths = nullptr;
  const void* saved = nullptr;   // [N, S*H] of this step (forward)
  const void* h_prev = nullptr;  // [N, H]   (gru: dz needs h_{t-1})
  const void* c_prev = nullptr;  // [N, H]   (lstm)
  const void* dy = nullptr;      // [N, lddy] gradient of this step's output
  int64_t lddy = 0;
  const void* dh = nullptr;      // [N, H]   gradient flowing into h_t from later steps / h_n
  const void* dc = nullptr;      // [N, H]   same for c_t (lstm)
  void* dgx = nullptr;           // [N, G*H] gradient of the x-side pre-activations
  void* dgh = nullptr;           // [N, G*H] h-side (== dgx for lstm/rnn; may alias it)
  void* dh_prev = nullptr;       // [N, H]   the direct part (the op adds dgh W_hh)
  void* dc_prev = nullptr;       // [N, H]   (lstm)
};

using rnn_step_fwd_fn = void (*)(const RnnStepArgs& a);
using rnn_step_bwd_fn = void (*)(const RnnStepBackwardArgs& a);
DL_DECLARE_STUB(rnn_step_fwd_stub, rnn_step_fwd_fn);
DL_DECLARE_STUB(rnn_step_bwd_stub, rnn_step_bwd_fn);

}  // namespace dl
