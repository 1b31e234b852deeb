// CPU kernels of one recurrent time step (kernels/rnn.h): PyTorch 1.13's gate equations, written
// once in kernels/rnn_gates.h (shared with the CUDA kernel). Each batch row is computed by one
// thread in a fixed order: results do not depend on the thread count. The f32 LSTM forward (the
// hot one) has its own row loop here with vec_exp.h's vectorised exp (about 2 ulp) for its
// sigmoids and tanhs; the rest calls libm through rnn_gates.h.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kernels/cpu/loop.h"
#include "kernels/cpu/vec_exp.h"
#include "kernels/rnn.h"
#include "kernels/rnn_gates.h"

namespace dl::cpu {
namespace {

template <class T>
inline T sigm(T v) { return T(1) / (T(1) + std::exp(-v)); }

inline bool active(const int64_t* lengths, int64_t row, int64_t t) { return !lengths || t < lengths[row]; }

// Rows per parallel chunk: about 4k gate elements (a step is small; both threads share it).
int64_t row_grain(int64_t gh) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(gh, 1)); }

// f32 LSTM forward of one row with vectorised exp (vec_exp.h): sigmoid(v) = 1 / (1 + e^-v),
// tanh(v) = 2 sigmoid(2v) - 1. `bias` [4H] = b_ih + b_hh; `buf` holds 5H floats. Branch-free
// loops so that GCC vectorises them.
void lstm_row_f32(const float* __restrict x, const float* __restrict h, const float* __restrict bias,
                  const float* __restrict cprev, float* __restrict cout, float* __restrict hout,
                  float* __restrict yrow, float* __restrict s, int64_t H, float* __restrict buf) {
  const int64_t GH = 4 * H;
  for (int64_t j = 0; j < GH; ++j) buf[j] = -(x[j] + h[j] + bias[j]);
  for (int64_t j = 2 * H; j < 3 * H; ++j) buf[j] *= 2.f;  // the g block is a tanh
  exp_sub(buf, 0.f, buf, GH);
  float* cneg = buf + GH;
  for (int64_t j = 0; j < GH; ++j) s[j] = 1.f / (1.f + buf[j]);
  for (int64_t j = 2 * H; j < 3 * H; ++j) s[j] = 2.f * s[j] - 1.f;
  for (int64_t j = 0; j < H; ++j) {
    const float c = s[H + j] * cprev[j] + s[j] * s[2 * H + j];
    cout[j] = c;
    cneg[j] = -2.f * c;
  }
  exp_sub(cneg, 0.f, cneg, H);
  for (int64_t j = 0; j < H; ++j) {
    const float tc = 2.f / (1.f + cneg[j]) - 1.f;
    s[4 * H + j] = tc;
    const float hv = s[3 * H + j] * tc;
    hout[j] = hv;
    yrow[j] = hv;
  }
}

template <class T>
void step_fwd(const RnnStepArgs& a) {
  const int64_t H = a.h, G = rnn_gate_count(a.mode), GH = G * H, S = rnn_saved_gates(a.mode) * H;
  const T* gx = static_cast<const T*>(a.gx);
  const T* gh = static_cast<const T*>(a.gh);
  const T* bi = static_cast<const T*>(a.b_ih);
  const T* bh = static_cast<const T*>(a.b_hh);
  const T* hp = static_cast<const T*>(a.h_prev);
  const T* cp = static_cast<const T*>(a.c_prev);
  T* hn = static_cast<T*>(a.h_new);
  T* cn = static_cast<T*>(a.c_new);
  T* y = static_cast<T*>(a.y);
  T* sv = static_cast<T*>(a.saved);
  parallel_for(a.n, row_grain(GH), [&](int64_t r0, int64_t r1) {
    std::vector<float> buf, bsum;  // f32 LSTM: row scratch and b_ih + b_hh
    if constexpr (std::is_same_v<T, float>) {
      if (a.mode == RnnMode::LSTM) {
        buf.resize(static_cast<size_t>(GH + H));
        bsum.resize(static_cast<size_t>(GH));
        for (int64_t j = 0; j < GH; ++j) bsum[static_cast<size_t>(j)] = (bi ? bi[j] : 0.f) + (bh ? bh[j] : 0.f);
      }
    }
    for (int64_t r = r0; r < r1; ++r) {
      const T* x = gx + r * GH;
      const T* h = gh + r * GH;
      const T* hprev = hp + r * H;
      T* hout = hn + r * H;
      T* yrow = y + r * a.ldy;
      T* s = sv + r * S;
      if (!active(a.lengths, r, a.t)) {
        for (int64_t j = 0; j < H; ++j) {
          hout[j] = hprev[j];
          yrow[j] = T(0);
        }
        if (a.mode == RnnMode::LSTM)
          for (int64_t j = 0; j < H; ++j) cn[r * H + j] = cp[r * H + j];
        continue;
      }
      if constexpr (std::is_same_v<T, float>) {
        if (a.mode == RnnMode::LSTM) {
          lstm_row_f32(x, h, bsum.data(), cp + r * H, cn + r * H, hout, yrow, s, H, buf.data());
          continue;
        }
      }
      for (int64_t j = 0; j < H; ++j) {
        T c = T(0);
        hout[j] = yrow[j] = rnn_gates::step_forward<T>(a.mode, H, j, x, h, bi, bh, hprev[j],
                                                        a.mode == RnnMode::LSTM ? cp[r * H + j] : T(0), &c, s);
        if (a.mode == RnnMode::LSTM) cn[r * H + j] = c;
      }
    }
  });
}

template <class T>
void step_bwd(const RnnStepBackwardArgs& a) {
  const int64_t H = a.h, G = rnn_gate_count(a.mode), GH = G * H, S = rnn_saved_gates(a.mode) * H;
  const T* sv = static_cast<const T*>(a.saved);
  const T* hp = static_cast<const T*>(a.h_prev);
  const T* cp = static_cast<const T*>(a.c_prev);
  const T* dy = static_cast<const T*>(a.dy);
  const T* dh = static_cast<const T*>(a.dh);
  const T* dc = static_cast<const T*>(a.dc);
  T* dgx = static_cast<T*>(a.dgx);
  T* dgh = static_cast<T*>(a.dgh);
  T* dhp = static_cast<T*>(a.dh_prev);
  T* dcp = static_cast<T*>(a.dc_prev);
  parallel_for(a.n, row_grain(GH), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* dhr = dh + r * H;
      T* gxr = dgx + r * GH;
      T* ghr = dgh + r * GH;
      T* dhpr = dhp + r * H;
      if (!active(a.lengths, r, a.t)) {  // h, c passed through; the output was a constant 0
        for (int64_t j = 0; j < GH; ++j) gxr[j] = ghr[j] = T(0);
        for (int64_t j = 0; j < H; ++j) dhpr[j] = dhr[j];
        if (a.mode == RnnMode::LSTM)
          for (int64_t j = 0; j < H; ++j) dcp[r * H + j] = dc[r * H + j];
        continue;
      }
      const T* s = sv + r * S;
      const T* dyr = dy + r * a.lddy;
      const bool lstm = a.mode == RnnMode::LSTM, gru = a.mode == RnnMode::GRU;
      for (int64_t j = 0; j < H; ++j) {
        T dcp_j = T(0);
        const T hprev = gru ? hp[r * H + j] : T(0), cprev = lstm ? cp[r * H + j] : T(0);
        dhpr[j] = rnn_gates::step_backward<T>(a.mode, H, j, s, hprev, cprev, dhr[j] + dyr[j],
                                              lstm ? dc[r * H + j] : T(0), gxr, ghr, &dcp_j);
        if (lstm) dcp[r * H + j] = dcp_j;
      }
    }
  });
}

void cpu_rnn_step_fwd(const RnnStepArgs& a) {
  if (a.dtype == DType::F64) step_fwd<double>(a);
  else step_fwd<float>(a);
}
void cpu_rnn_step_bwd(const RnnStepBackwardArgs& a) {
  if (a.dtype == DType::F64) step_bwd<double>(a);
  else step_bwd<float>(a);
}

}  // namespace

DL_REGISTER_KERNEL(rnn_step_fwd_stub, CPU, cpu_rnn_step_fwd);
DL_REGISTER_KERNEL(rnn_step_bwd_stub, CPU, cpu_rnn_step_bwd);

}  // namespace dl::cpu
