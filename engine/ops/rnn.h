// Multi-layer, optionally bidirectional recurrences (torch's _VF.lstm / gru / rnn_tanh /
// rnn_relu) with PyTorch 1.13's equations and gate orders (LSTM i f g o; GRU r z n with b_hn
// inside r * (W_hn h + b_hn)); kernels/rnn.h has the equations.
//
//   x        [T, N, I]   time-major (nn::LSTM transposes for batch_first)
//   weights  per layer l, per direction d (forward, then reverse), PyTorch's order:
//            w_ih [G*H, I_l], w_hh [G*H, H], b_ih [G*H], b_hh [G*H] (biases may be undefined);
//            I_0 = I, I_l = D*H; G = 4 (lstm), 3 (gru), 1 (rnn)
//   h0, c0   [L*D, N, H] or undefined (zeros); c0 for lstm only
//   lengths  i64 [N] on the CPU, or undefined: pack_padded_sequence(enforce_sorted=False)
//            semantics. Sequence n runs only its first lengths[n] steps (the reverse direction
//            starts at step lengths[n] - 1), output rows past lengths[n] are 0 (as
//            pad_packed_sequence gives), h_n/c_n hold each sequence's state at its last valid step.
// Returns {output [T, N, D*H], h_n [L*D, N, H]} plus c_n [L*D, N, H] for lstm, differentiable in
// x, h0, c0 and every weight (backprop through time).
//
// Per layer and direction: the input projection of all T*N rows is one GEMM, each step one
// [N, H] x [H, G*H] GEMM plus a fused gate kernel; backward likewise, with dW_ih, dW_hh and dx
// each one GEMM over all steps. Saved for backward: each layer's input, the hidden (and cell)
// state entering every step and the gate activations.
#pragma once
#include <string>

#include "engine/autograd/autograd.h"
#include "kernels/rnn.h"

namespace dl {

class Generator;

struct RnnOptions {
  RnnMode mode = RnnMode::LSTM;
  int64_t num_layers = 1;
  bool bidirectional = false;
  double dropout = 0.0;      // between layers (not after the last), training only
  bool training = false;
  Generator* generator = nullptr;  // for dropout; the CPU default generator when null
};

// "lstm", "gru", "rnn_tanh", "rnn_relu" (torch's mode names); parse throws on others.
const char* rnn_mode_name(RnnMode m);
RnnMode parse_rnn_mode(const std::string& name);

TensorList rnn(const Tensor& x, const TensorList& weights, const Tensor& h0, const Tensor& c0,
               const Tensor& lengths, const RnnOptions& opt);

// The output at each sequence's last valid step: x [N, T, F] (batch-first), lengths i64 [N] in
// [1, T] or undefined (every sequence ends at T - 1) -> [N, F]. Differentiable in x.
Tensor last_step(const Tensor& x, const Tensor& lengths = Tensor());

}  // namespace dl
