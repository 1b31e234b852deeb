// The gate equations of one recurrent time step (kernels/rnn.h) for one element (row r,
// hidden unit j) of an active sequence, forward and backward. Shared by the CPU kernel
// (kernels/cpu/rnn.cpp, which keeps a vectorised f32 LSTM forward beside it) and the CUDA kernel
// (kernels/cuda/rnn.cu), so both backends compute PyTorch 1.13's equations from one definition:
//   LSTM: i = s(x_i + h_i), f = s(x_f + h_f), g = tanh(x_g + h_g), o = s(x_o + h_o)
//         c_t = f c_{t-1} + i g, h_t = o tanh(c_t)
//   GRU:  r = s(x_r + h_r), z = s(x_z + h_z), n = tanh(x_n + r (W_hn h + b_hn))
//         h_t = (1 - z) n + z h_{t-1}
//   RNN:  h_t = tanh|relu(x + h)
// Pointers are the row's blocks: x, h [G*H] (gx, gh rows), bi, bh [G*H] or null, s [S*H] (saved),
// gx / gh [G*H] gradient rows (gh may equal gx).
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/host_device.h"
#include "kernels/rnn.h"

namespace dl::rnn_gates {

template <class T>
DL_HOST_DEVICE T sigmoid(T v) {
  return T(1) / (T(1) + std::exp(-v));
}

template <class T>
DL_HOST_DEVICE T bias_at(const T* b, int64_t k) {
  return b ? b[k] : T(0);
}

// Forward of element j: returns h_t, writes c_t (lstm) and the saved gates s[k*H + j].
template <class T>
DL_HOST_DEVICE T step_forward(RnnMode mode, int64_t H, int64_t j, const T* x, const T* h, const T* bi, const T* bh,
                              T hprev, T cprev, T* c_out, T* s) {
  auto pre = [&](int64_t k) { return x[k] + bias_at(bi, k) + h[k] + bias_at(bh, k); };
  switch (mode) {
    case RnnMode::LSTM: {
      const T i = sigmoid(pre(j)), f = sigmoid(pre(H + j)), g = std::tanh(pre(2 * H + j)), o = sigmoid(pre(3 * H + j));
      const T c = f * cprev + i * g;
      const T tc = std::tanh(c);
      *c_out = c;
      s[j] = i;
      s[H + j] = f;
      s[2 * H + j] = g;
      s[3 * H + j] = o;
      s[4 * H + j] = tc;
      return o * tc;
    }
    case RnnMode::GRU: {
      const T r = sigmoid(pre(j)), z = sigmoid(pre(H + j));
      const T hn_lin = h[2 * H + j] + bias_at(bh, 2 * H + j);
      const T n = std::tanh(x[2 * H + j] + bias_at(bi, 2 * H + j) + r * hn_lin);
      s[j] = r;
      s[H + j] = z;
      s[2 * H + j] = n;
      s[3 * H + j] = hn_lin;
      return (T(1) - z) * n + z * hprev;
    }
    case RnnMode::RNN_TANH:
      return s[j] = std::tanh(pre(j));
    case RnnMode::RNN_RELU: {
      const T v = pre(j);
      return s[j] = v > T(0) ? v : T(0);
    }
  }
  return T(0);
}

// Backward of element j: dht = dL/dh_t (from later steps plus this step's output), dct = dL/dc_t
// from later steps (lstm). Writes the gate gradients gx[k*H + j] (and gh, which differs from gx
// only in GRU's n gate), dc_{t-1} (lstm) and returns the direct part of dh_{t-1} (the op adds
// dgh W_hh).
template <class T>
DL_HOST_DEVICE T step_backward(RnnMode mode, int64_t H, int64_t j, const T* s, T hprev, T cprev, T dht, T dct_in,
                               T* gx, T* gh, T* dc_prev) {
  switch (mode) {
    case RnnMode::LSTM: {
      const T i = s[j], f = s[H + j], g = s[2 * H + j], o = s[3 * H + j], tc = s[4 * H + j];
      const T dct = dct_in + dht * o * (T(1) - tc * tc);
      const T d[4] = {dct * g * i * (T(1) - i), dct * cprev * f * (T(1) - f), dct * i * (T(1) - g * g),
                      dht * tc * o * (T(1) - o)};
      for (int k = 0; k < 4; ++k) gx[k * H + j] = gh[k * H + j] = d[k];
      *dc_prev = dct * f;
      return T(0);
    }
    case RnnMode::GRU: {
      const T r = s[j], z = s[H + j], n = s[2 * H + j], hn_lin = s[3 * H + j];
      const T dn = dht * (T(1) - z) * (T(1) - n * n);
      const T dz = dht * (hprev - n) * z * (T(1) - z);
      const T dr = dn * hn_lin * r * (T(1) - r);
      gx[j] = gh[j] = dr;
      gx[H + j] = gh[H + j] = dz;
      gx[2 * H + j] = dn;
      gh[2 * H + j] = dn * r;
      return dht * z;
    }
    case RnnMode::RNN_TANH: {
      const T hv = s[j];
      gx[j] = gh[j] = dht * (T(1) - hv * hv);
      return T(0);
    }
    case RnnMode::RNN_RELU:
      gx[j] = gh[j] = s[j] > T(0) ? dht : T(0);
      return T(0);
  }
  return T(0);
}

}  // namespace dl::rnn_gates
