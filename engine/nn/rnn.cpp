#include "engine/nn/rnn.h"

#include <cmath>
#include <stdexcept>

#include "engine/nn/init.h"

namespace dl::nn {
namespace {

RnnMode rnn_nonlinearity(const std::string& nonlinearity) {
  if (nonlinearity == "tanh") return RnnMode::RNN_TANH;
  if (nonlinearity == "relu") return RnnMode::RNN_RELU;
  throw std::invalid_argument("Unknown nonlinearity '" + nonlinearity + "'. Select from 'tanh' or 'relu'.");
}

}  // namespace

RNNBase::RNNBase(RnnMode m, int64_t in, int64_t hidden, int64_t layers, bool has_bias, bool bf, double p, bool bidir,
                 Generator& gen)
    : mode(m), input_size(in), hidden_size(hidden), num_layers(layers), bias(has_bias), batch_first(bf), dropout(p),
      bidirectional(bidir) {
  if (in < 0 || hidden <= 0 || layers <= 0)
    throw std::invalid_argument(std::string(rnn_mode_name(m)) + ": input_size must be non-negative, hidden_size and "
                                "num_layers positive (got input_size=" + std::to_string(in) + ", hidden_size=" +
                                std::to_string(hidden) + ", num_layers=" + std::to_string(layers) + ")");
  if (!(p >= 0.0 && p <= 1.0))
    throw std::invalid_argument("dropout should be a number in range [0, 1] representing the probability of an "
                                "element being zeroed, got " + py_float(p));
  const int64_t gh = rnn_gate_count(m) * hidden, dirs = bidir ? 2 : 1;
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t d = 0; d < dirs; ++d) {
      const std::string sfx = "_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
      const int64_t layer_in = l == 0 ? in : dirs * hidden;
      flat_weights.push_back(register_parameter("weight_ih" + sfx, empty({gh, layer_in})));
      flat_weights.push_back(register_parameter("weight_hh" + sfx, empty({gh, hidden})));
      flat_weights.push_back(has_bias ? register_parameter("bias_ih" + sfx, empty({gh})) : Tensor());
      flat_weights.push_back(has_bias ? register_parameter("bias_hh" + sfx, empty({gh})) : Tensor());
    }
  reset_parameters(gen);
}

void RNNBase::reset_parameters(Generator& gen) {
  const double stdv = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  for (Tensor& w : flat_weights)
    if (w.defined()) init::uniform_(w, gen, -stdv, stdv);
}

TensorList RNNBase::forward_full(const Tensor& x, const Tensor& lengths, const Tensor& h0, const Tensor& c0) {
  const char* op = rnn_mode_name(mode);
  if (x.dim() != 2 && x.dim() != 3)
    throw std::invalid_argument(std::string(op) + ": Expected input to be 2D or 3D, got " + std::to_string(x.dim()) +
                                "D instead (shape " + shape_str(x.shape()) + ")");
  const bool unbatched = x.dim() == 2;
  if (unbatched && lengths.defined())
    throw std::invalid_argument(std::string(op) + ": lengths need a batched 3-d input, got " + shape_str(x.shape()));
  Tensor xt = unbatched ? x.unsqueeze(1) : batch_first ? x.transpose(0, 1) : x;
  auto state = [&](const Tensor& s) { return unbatched && s.defined() && s.dim() == 2 ? s.unsqueeze(1) : s; };
  RnnOptions opt;
  opt.mode = mode;
  opt.num_layers = num_layers;
  opt.bidirectional = bidirectional;
  opt.dropout = dropout;
  opt.training = training_;
  opt.generator = &default_generator(x.device());
  TensorList out = rnn(xt, flat_weights, state(h0), state(c0), lengths, opt);
  if (unbatched) {
    for (Tensor& t : out) t = t.squeeze(1);
  } else if (batch_first) {
    out[0] = out[0].transpose(0, 1);
  }
  return out;
}

Tensor RNNBase::forward(const Tensor& x) { return forward_full(x)[0]; }

TensorList RNNBase::forward_tuple(const TensorList& xs) {
  if (xs.empty() || xs.size() > 2)
    throw std::invalid_argument(type_name() + ": expected inputs (x) or (x, lengths), got " +
                                std::to_string(xs.size()) + " inputs");
  TensorList out = forward_full(xs[0], xs.size() == 2 ? xs[1] : Tensor());
  for (size_t i = 1; i < out.size(); ++i) out[i] = out[i].transpose(0, 1);  // [N, L*D, H]
  return out;
}

std::string RNNBase::extra_repr() const {
  std::string s = std::to_string(input_size) + ", " + std::to_string(hidden_size);
  if (num_layers != 1) s += ", num_layers=" + std::to_string(num_layers);
  if (!bias) s += ", bias=False";
  if (batch_first) s += ", batch_first=True";
  if (dropout != 0.0) s += ", dropout=" + py_float(dropout);
  if (bidirectional) s += ", bidirectional=True";
  return s;
}

RNN::RNN(int64_t in, int64_t hidden, int64_t layers, const std::string& nonlinearity, bool has_bias, bool bf, double p,
         bool bidir, Generator& gen)
    : RNNBase(rnn_nonlinearity(nonlinearity), in, hidden, layers, has_bias, bf, p, bidir, gen) {}

Tensor LastStep::forward(const TensorList& xs) {
  if (xs.empty() || xs.size() > 2)
    throw std::invalid_argument("LastStep: expected inputs (x) or (x, lengths), got " + std::to_string(xs.size()) +
                                " inputs");
  return last_step(xs[0], xs.size() == 2 ? xs[1] : Tensor());
}

}  // namespace dl::nn
