// Recurrent modules: torch.nn.RNN, LSTM and GRU (engine/ops/rnn.h does the work).
// Parameters, in PyTorch's registration order, for each layer k and direction (forward, then
// "_reverse"): weight_ih_l{k} [G*H, in], weight_hh_l{k} [G*H, H], bias_ih_l{k} [G*H],
// bias_hh_l{k} [G*H] (G = 4 lstm i f g o, 3 gru r z n, 1 rnn); in = input_size for layer 0,
// D*H above it. Init (PyTorch): every parameter U(-1/sqrt(H), 1/sqrt(H)), in that order.
#pragma once
#include <string>

#include "engine/nn/module.h"
#include "engine/ops/rnn.h"

namespace dl::nn {

class RNNBase : public Module {
 public:
  RNNBase(RnnMode mode, int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, bool bias = true,
          bool batch_first = false, double dropout = 0.0, bool bidirectional = false,
          Generator& gen = default_generator());

  // x [T, N, I] ([N, T, I] when batch_first; unbatched [T, I] too), lengths i64 [N] or
  // undefined, h0/c0 [L*D, N, H] or undefined. Returns PyTorch's layout:
  // {output [T, N, D*H] ([N, T, D*H] when batch_first), h_n [L*D, N, H], c_n (lstm)}.
  TensorList forward_full(const Tensor& x, const Tensor& lengths = Tensor(), const Tensor& h0 = Tensor(),
                          const Tensor& c0 = Tensor());
  using Module::forward;
  Tensor forward(const Tensor& x) override;  // the output alone
  // xs = {x} or {x, lengths}; returns {output, h_n, c_n (lstm)} with h_n/c_n batch-first
  // [N, L*D, H] like every graph value.
  TensorList forward_tuple(const TensorList& xs) override;
  std::string extra_repr() const override;
  void reset_parameters(Generator& gen);

  RnnMode mode;
  int64_t input_size, hidden_size, num_layers;
  bool bias, batch_first;
  double dropout;
  bool bidirectional;
  TensorList flat_weights;  // 4 per layer and direction (w_ih, w_hh, b_ih, b_hh; biases may be undefined)
};

class LSTM : public RNNBase {
 public:
  LSTM(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, bool bias = true, bool batch_first = false,
       double dropout = 0.0, bool bidirectional = false, Generator& gen = default_generator())
      : RNNBase(RnnMode::LSTM, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, gen) {}
  std::string type_name() const override { return "LSTM"; }
};

class GRU : public RNNBase {
 public:
  GRU(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, bool bias = true, bool batch_first = false,
      double dropout = 0.0, bool bidirectional = false, Generator& gen = default_generator())
      : RNNBase(RnnMode::GRU, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, gen) {}
  std::string type_name() const override { return "GRU"; }
};

// nonlinearity "tanh" | "relu".
class RNN : public RNNBase {
 public:
  RNN(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1, const std::string& nonlinearity = "tanh",
      bool bias = true, bool batch_first = false, double dropout = 0.0, bool bidirectional = false,
      Generator& gen = default_generator());
  std::string type_name() const override { return "RNN"; }
};

// The output at each sequence's last valid step (engine/ops/rnn.h last_step): xs = {x [N, T, F]}
// or {x, lengths i64 [N]} -> [N, F]. What "classify from the last step" reads after an RNN.
class LastStep : public Module {
 public:
  using Module::forward;
  Tensor forward(const Tensor& x) override { return last_step(x); }
  Tensor forward(const TensorList& xs) override;
  std::string type_name() const override { return "LastStep"; }
};

}  // namespace dl::nn
