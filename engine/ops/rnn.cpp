// Recurrent layers (engine/ops/rnn.h): argument checks, the per-layer GEMMs (kernels/gemm.h),
// the per-step gate kernels (kernels/rnn.h) and backprop through time.
#include "engine/ops/rnn.h"

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine/amp/autocast.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/random.h"
#include "engine/ops/shape.h"
#include "kernels/gemm.h"
#include "kernels/nn.h"

namespace dl {
namespace {

// Element `off` of contiguous `t` as a raw pointer.
void* at(const Tensor& t, int64_t off) {
  return static_cast<char*>(t.raw_data()) + off * static_cast<int64_t>(t.element_size());
}

// C[m, n] = op(A) op(B) + beta C on raw row-major blocks of `like`'s dtype and device.
void gemm(const Tensor& like, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda,
          const void* b, int64_t ldb, void* c, int64_t ldc, double beta) {
  GemmArgs g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = m;
  g.n = n;
  g.k = k;
  g.beta = beta;
  g.a = a;
  g.lda = lda;
  g.b = b;
  g.ldb = ldb;
  g.c = c;
  g.ldc = ldc;
  g.dtype = like.dtype();
  g.device_index = like.device().index;
  gemm_stub(like.device())(g);
}

Tensor contig(const Tensor& t) { return t.defined() ? t.detach().contiguous() : Tensor(); }

// Everything the forward pass computed that backward reads, per layer (and direction).
struct Saved {
  RnnMode mode;
  int64_t T, N, H, L, D;
  TensorList inputs;   // [L]: layer l's input [T, N, I_l] (after dropout)
  TensorList masks;    // [L - 1]: dropout mask applied to layer l's output, or undefined
  TensorList hprev;    // [L*D]: [T, N, H] the hidden state entering time t
  TensorList cprev;    // [L*D]: [T, N, H] the cell state entering time t (lstm)
  TensorList gates;    // [L*D]: [T, N, S*H] kernels/rnn.h "saved"
  TensorList weights;  // detached, contiguous
  Tensor lengths;      // i64 [N] on x's device, or undefined
};

// One direction of one layer, forward. y: the layer output [T, N, D*H] (columns d*H..).
void run_direction(Saved& sv, int64_t l, int64_t d, const Tensor& x, const Tensor& h0, const Tensor& c0,
                   Tensor& y, Tensor& hn, Tensor& cn) {
  const int64_t T = sv.T, N = sv.N, H = sv.H, D = sv.D, I = x.size(2), idx = l * D + d;
  const int64_t GH = rnn_gate_count(sv.mode) * H, S = rnn_saved_gates(sv.mode) * H;
  const bool lstm = sv.mode == RnnMode::LSTM;
  const Tensor& w_ih = sv.weights[4 * idx];
  const Tensor& w_hh = sv.weights[4 * idx + 1];
  const Tensor& b_ih = sv.weights[4 * idx + 2];
  const Tensor& b_hh = sv.weights[4 * idx + 3];
  Tensor gx = empty({T, N, GH}, x.options());  // x_t W_ih^T for every step: one GEMM
  gemm(x, false, true, T * N, GH, I, x.raw_data(), I, w_ih.raw_data(), I, gx.raw_data(), GH, 0.0);
  Tensor gh = empty({N, GH}, x.options());
  Tensor hp = empty({T, N, H}, x.options());
  Tensor cp = lstm ? empty({T, N, H}, x.options()) : Tensor();
  Tensor gates = empty({T, N, S}, x.options());
  auto time_of = [&](int64_t s) { return d == 0 ? s : T - 1 - s; };
  if (T > 0) {
    hp.select(0, time_of(0)).copy_(h0.select(0, idx));
    if (lstm) cp.select(0, time_of(0)).copy_(c0.select(0, idx));
  }
  RnnStepArgs a;
  a.mode = sv.mode;
  a.dtype = x.dtype();
  a.device = x.device().index;
  a.n = N;
  a.h = H;
  a.lengths = sv.lengths.defined() ? sv.lengths.data<int64_t>() : nullptr;
  a.b_ih = b_ih.defined() ? b_ih.raw_data() : nullptr;
  a.b_hh = b_hh.defined() ? b_hh.raw_data() : nullptr;
  a.gh = gh.raw_data();
  a.ldy = D * H;
  for (int64_t s = 0; s < T; ++s) {
    const int64_t t = time_of(s);
    const bool last = s == T - 1;
    a.t = t;
    a.gx = at(gx, t * N * GH);
    a.h_prev = at(hp, t * N * H);
    a.h_new = last ? at(hn, idx * N * H) : at(hp, time_of(s + 1) * N * H);
    if (lstm) {
      a.c_prev = at(cp, t * N * H);
      a.c_new = last ? at(cn, idx * N * H) : at(cp, time_of(s + 1) * N * H);
    }
    a.y = at(y, t * N * D * H + d * H);
    a.saved = at(gates, t * N * S);
    gemm(x, false, true, N, GH, H, a.h_prev, H, w_hh.raw_data(), H, gh.raw_data(), GH, 0.0);
    rnn_step_fwd_stub(x.device())(a);
  }
  if (T == 0) {  // no steps: h_n = h0
    hn.select(0, idx).copy_(h0.select(0, idx));
    if (lstm) cn.select(0, idx).copy_(c0.select(0, idx));
  }
  sv.hprev[idx] = hp;
  sv.cprev[idx] = cp;
  sv.gates[idx] = gates;
}

// One direction of one layer, backward. dy [T, N, D*H]; dhn/dcn [L*D, N, H]; accumulates dx
// (beta: 0 for the first direction, 1 after); writes the weight gradients into gw[4*idx..] and
// dh0/dc0[idx] (when defined).
void backward_direction(const Saved& sv, int64_t l, int64_t d, const Tensor& dy, const Tensor& dhn,
                        const Tensor& dcn, Tensor& dx, bool need_dx, TensorList& gw, Tensor& dh0, Tensor& dc0) {
  const int64_t T = sv.T, N = sv.N, H = sv.H, D = sv.D, idx = l * D + d;
  const Tensor& x = sv.inputs[l];
  const int64_t I = x.size(2);
  const int64_t GH = rnn_gate_count(sv.mode) * H, S = rnn_saved_gates(sv.mode) * H;
  const bool lstm = sv.mode == RnnMode::LSTM, gru = sv.mode == RnnMode::GRU;
  const Tensor& w_ih = sv.weights[4 * idx];
  const Tensor& w_hh = sv.weights[4 * idx + 1];
  Tensor dgx = empty({T, N, GH}, x.options());
  Tensor dgh = gru ? empty({T, N, GH}, x.options()) : dgx;
  Tensor dh[2] = {dhn.select(0, idx).clone(), empty({N, H}, x.options())};
  Tensor dc[2];
  if (lstm) dc[0] = dcn.select(0, idx).clone(), dc[1] = empty({N, H}, x.options());
  RnnStepBackwardArgs a;
  a.mode = sv.mode;
  a.dtype = x.dtype();
  a.device = x.device().index;
  a.n = N;
  a.h = H;
  a.lengths = sv.lengths.defined() ? sv.lengths.data<int64_t>() : nullptr;
  a.lddy = D * H;
  int cur = 0;
  for (int64_t s = T - 1; s >= 0; --s) {
    const int64_t t = d == 0 ? s : T - 1 - s;
    a.t = t;
    a.saved = at(sv.gates[idx], t * N * S);
    a.h_prev = at(sv.hprev[idx], t * N * H);
    a.dy = at(dy, t * N * D * H + d * H);
    a.dh = dh[cur].raw_data();
    a.dgx = at(dgx, t * N * GH);
    a.dgh = at(dgh, t * N * GH);
    a.dh_prev = dh[1 - cur].raw_data();
    if (lstm) {
      a.c_prev = at(sv.cprev[idx], t * N * H);
      a.dc = dc[cur].raw_data();
      a.dc_prev = dc[1 - cur].raw_data();
    }
    rnn_step_bwd_stub(x.device())(a);
    gemm(x, false, false, N, H, GH, a.dgh, GH, w_hh.raw_data(), H, a.dh_prev, H, 1.0);  // += dgh W_hh
    cur = 1 - cur;
  }
  if (dh0.defined()) dh0.select(0, idx).copy_(dh[cur]);
  if (dc0.defined()) dc0.select(0, idx).copy_(dc[cur]);
  const int64_t TN = T * N;
  Tensor gw_ih = empty(w_ih.shape(), x.options()), gw_hh = empty(w_hh.shape(), x.options());
  gemm(x, true, false, GH, I, TN, dgx.raw_data(), GH, x.raw_data(), I, gw_ih.raw_data(), I, 0.0);
  gemm(x, true, false, GH, H, TN, dgh.raw_data(), GH, sv.hprev[idx].raw_data(), H, gw_hh.raw_data(), H, 0.0);
  gw[4 * idx] = gw_ih;
  gw[4 * idx + 1] = gw_hh;
  // Bias gradients: column sums of dgx / dgh as [1, TN] x [TN, GH] GEMMs.
  auto column_sums = [&](const Tensor& m) {
    Tensor ones_tn = ones({TN}, x.options()), out = empty({GH}, x.options());
    gemm(x, false, false, 1, GH, TN, ones_tn.raw_data(), TN, m.raw_data(), GH, out.raw_data(), GH, 0.0);
    return out;
  };
  if (sv.weights[4 * idx + 2].defined()) gw[4 * idx + 2] = column_sums(dgx);
  if (sv.weights[4 * idx + 3].defined()) gw[4 * idx + 3] = gru || !gw[4 * idx + 2].defined() ? column_sums(dgh) : gw[4 * idx + 2].clone();
  if (need_dx)
    gemm(x, false, false, TN, I, GH, dgx.raw_data(), GH, w_ih.raw_data(), I, dx.raw_data(), I, d == 0 ? 0.0 : 1.0);
}

// Backprop through time over every layer; returns {dx, dh0, dc0, dweights...}.
TensorList rnn_backward(const Saved& sv, const TensorList& grads, bool need_dx, bool need_h0, bool need_c0) {
  const int64_t T = sv.T, N = sv.N, H = sv.H, L = sv.L, D = sv.D;
  const bool lstm = sv.mode == RnnMode::LSTM;
  auto opts = sv.inputs[0].options();
  auto grad_or_zeros = [&](size_t i, const Shape& shape) {
    return i < grads.size() && grads[i].defined() ? grads[i].contiguous() : zeros(shape, opts);
  };
  Tensor dy = grad_or_zeros(0, {T, N, D * H});
  Tensor dhn = grad_or_zeros(1, {L * D, N, H});
  Tensor dcn = lstm ? grad_or_zeros(2, {L * D, N, H}) : Tensor();
  Tensor dh0 = need_h0 ? empty({L * D, N, H}, opts) : Tensor();
  Tensor dc0 = need_c0 ? empty({L * D, N, H}, opts) : Tensor();
  TensorList gw(sv.weights.size());
  Tensor dx;
  for (int64_t l = L - 1; l >= 0; --l) {
    const bool want_dx = l > 0 || need_dx;
    Tensor dxl = want_dx ? empty(sv.inputs[l].shape(), opts) : Tensor();
    for (int64_t d = 0; d < D; ++d) backward_direction(sv, l, d, dy, dhn, dcn, dxl, want_dx, gw, dh0, dc0);
    if (l > 0) dy = sv.masks[l - 1].defined() ? mul(dxl, sv.masks[l - 1]) : dxl;
    else dx = dxl;
  }
  TensorList out = {dx, dh0, dc0};
  out.insert(out.end(), gw.begin(), gw.end());
  return out;
}

// lengths as a contiguous CPU i64 [N] tensor with every value in [1, T], else invalid_argument.
Tensor checked_lengths(const Tensor& lengths, int64_t N, int64_t T, const char* op) {
  if (lengths.dtype() != DType::I64 || lengths.dim() != 1 || lengths.size(0) != N)
    throw std::invalid_argument(std::string(op) + ": lengths must be an int64 tensor [" + std::to_string(N) +
                                "] (one per sequence), got " + dtype_name(lengths.dtype()) + " " +
                                shape_str(lengths.shape()));
  Tensor host = lengths.detach().cpu().contiguous();
  const int64_t* lp = host.data<int64_t>();
  for (int64_t n = 0; n < N; ++n)
    if (lp[n] < 1 || lp[n] > T)
      throw std::invalid_argument(std::string(op) + ": lengths[" + std::to_string(n) + "] = " + std::to_string(lp[n]) +
                                  " is out of range: every sequence length must be in [1, " + std::to_string(T) +
                                  "] (the padded length)");
  return host;
}

std::string size_mismatch(const char* op, const std::string& what, const Tensor& t, const Shape& want) {
  return std::string(op) + ": " + what + " has shape " + shape_str(t.shape()) + ", expected " + shape_str(want);
}

}  // namespace

const char* rnn_mode_name(RnnMode m) {
  switch (m) {
    case RnnMode::LSTM: return "lstm";
    case RnnMode::GRU: return "gru";
    case RnnMode::RNN_TANH: return "rnn_tanh";
    case RnnMode::RNN_RELU: return "rnn_relu";
  }
  return "?";
}

RnnMode parse_rnn_mode(const std::string& name) {
  for (RnnMode m : {RnnMode::LSTM, RnnMode::GRU, RnnMode::RNN_TANH, RnnMode::RNN_RELU})
    if (name == rnn_mode_name(m)) return m;
  throw std::invalid_argument("rnn: unknown mode '" + name + "' (expected lstm, gru, rnn_tanh or rnn_relu)");
}

TensorList rnn(const Tensor& x_in, const TensorList& weights_in, const Tensor& h0_in, const Tensor& c0_in,
               const Tensor& lengths, const RnnOptions& opt) {
  const auto in = amp::autocast(amp::CastPolicy::F32, x_in, h0_in, c0_in);
  const Tensor &x = in[0], &h0 = in[1], &c0 = in[2];
  TensorList weights;
  for (const Tensor& w : weights_in) weights.push_back(amp::autocast(amp::CastPolicy::F32, w));
  const char* op = rnn_mode_name(opt.mode);
  const bool lstm = opt.mode == RnnMode::LSTM;
  if (x.dim() != 3)
    throw std::invalid_argument(std::string(op) + ": expected a 3-d input [T, N, input_size], got " +
                                shape_str(x.shape()));
  if (!is_floating(x.dtype()) || (x.dtype() != DType::F32 && x.dtype() != DType::F64))
    throw std::invalid_argument(std::string(op) + ": input must be float32 or float64, got " + dtype_name(x.dtype()));
  if (opt.num_layers < 1)
    throw std::invalid_argument(std::string(op) + ": num_layers must be at least 1, got " +
                                std::to_string(opt.num_layers));
  if (!(opt.dropout >= 0.0 && opt.dropout <= 1.0))
    throw std::invalid_argument(std::string(op) + ": dropout should be a number in range [0, 1], got " +
                                std::to_string(opt.dropout));
  const int64_t L = opt.num_layers, D = opt.bidirectional ? 2 : 1;
  if (static_cast<int64_t>(weights.size()) != 4 * L * D)
    throw std::invalid_argument(std::string(op) + ": expected " + std::to_string(4 * L * D) +
                                " weight tensors (w_ih, w_hh, b_ih, b_hh per layer and direction), got " +
                                std::to_string(weights.size()));
  if (!weights[1].defined() || weights[1].dim() != 2)
    throw std::invalid_argument(std::string(op) + ": weight_hh_l0 must be a 2-d tensor");
  const int64_t T = x.size(0), N = x.size(1), H = weights[1].size(1), GH = rnn_gate_count(opt.mode) * H;
  for (int64_t l = 0; l < L; ++l)
    for (int64_t d = 0; d < D; ++d) {
      const int64_t idx = l * D + d, in = l == 0 ? x.size(2) : D * H;
      const std::string sfx = "_l" + std::to_string(l) + (d == 1 ? "_reverse" : "");
      const char* names[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
      const Shape want[4] = {{GH, in}, {GH, H}, {GH}, {GH}};
      for (int k = 0; k < 4; ++k) {
        const Tensor& w = weights[4 * idx + k];
        if (!w.defined()) {
          if (k < 2) throw std::invalid_argument(std::string(op) + ": " + names[k] + sfx + " is undefined");
          continue;
        }
        if (w.dtype() != x.dtype() || w.device() != x.device())
          throw std::invalid_argument(std::string(op) + ": " + names[k] + sfx + " is " + dtype_name(w.dtype()) +
                                      " on " + w.device().str() + " but the input is " + dtype_name(x.dtype()) +
                                      " on " + x.device().str());
        if (w.shape() != want[k]) {
          if (k == 0 && l == 0 && w.dim() == 2 && w.size(0) == GH)
            throw std::invalid_argument(std::string(op) + ": input.size(-1) must be equal to input_size. Expected " +
                                        std::to_string(w.size(1)) + ", got " + std::to_string(x.size(2)));
          throw std::invalid_argument(size_mismatch(op, names[k] + sfx, w, want[k]));
        }
      }
    }
  const Shape state_shape = {L * D, N, H};
  if (h0.defined() && h0.shape() != state_shape)
    throw std::invalid_argument(std::string(op) + ": Expected hidden size " + shape_str(state_shape) + ", got " +
                                shape_str(h0.shape()));
  if (lstm && c0.defined() && c0.shape() != state_shape)
    throw std::invalid_argument(std::string(op) + ": Expected hidden[1] size " + shape_str(state_shape) +
                                ", got " + shape_str(c0.shape()));
  if (!lstm && c0.defined())
    throw std::invalid_argument(std::string(op) + ": c0 is only for lstm");
  for (const Tensor* s : {&h0, &c0})
    if (s->defined() && (s->dtype() != x.dtype() || s->device() != x.device()))
      throw std::invalid_argument(std::string(op) + ": the initial state is " + dtype_name(s->dtype()) + " on " +
                                  s->device().str() + " but the input is " + dtype_name(x.dtype()) + " on " +
                                  x.device().str());
  Tensor len = lengths.defined() ? checked_lengths(lengths, N, T, op).to(x.device()) : Tensor();

  Saved sv{opt.mode, T, N, H, L, D, TensorList(L), TensorList(L > 1 ? L - 1 : 0), TensorList(L * D),
           TensorList(L * D), TensorList(L * D), TensorList(), len};
  for (const Tensor& w : weights) sv.weights.push_back(contig(w));
  Tensor h0c = h0.defined() ? contig(h0) : zeros(state_shape, x.options());
  Tensor c0c = lstm ? (c0.defined() ? contig(c0) : zeros(state_shape, x.options())) : Tensor();
  Tensor hn = empty(state_shape, x.options());
  Tensor cn = lstm ? empty(state_shape, x.options()) : Tensor();
  Tensor layer_in = contig(x);
  Tensor y;
  for (int64_t l = 0; l < L; ++l) {
    sv.inputs[l] = layer_in;
    y = empty({T, N, D * H}, x.options());
    for (int64_t d = 0; d < D; ++d) run_direction(sv, l, d, layer_in, h0c, c0c, y, hn, cn);
    if (l + 1 < L) {
      layer_in = y;
      if (opt.training && opt.dropout > 0.0 && y.numel() > 0) {
        Tensor mask = empty(y.shape(), x.options());
        layer_in = empty(y.shape(), x.options());
        if (opt.dropout == 1.0) {
          fill_(mask, 0.0);
          fill_(layer_in, 0.0);
        } else {
          Generator& gen = opt.generator ? *opt.generator : default_generator(x.device());
          const uint64_t offset = gen.advance(static_cast<uint64_t>(y.numel()));
          dropout_stub(x.device())(y, opt.dropout, gen.seed(), offset, layer_in, mask);
        }
        sv.masks[l] = mask;
      }
    }
  }
  TensorList outs = {y, hn};
  if (lstm) outs.push_back(cn);
  TensorList inputs = {x, h0, c0};
  inputs.insert(inputs.end(), weights.begin(), weights.end());
  if (any_requires_grad(inputs)) {
    const bool need_dx = x.requires_grad(), need_h0 = h0.defined() && h0.requires_grad();
    const bool need_c0 = c0.defined() && c0.requires_grad();
    record_multi(lstm ? "LstmBackward" : opt.mode == RnnMode::GRU ? "GruBackward" : "RnnBackward", outs, inputs,
                 [sv = std::move(sv), need_dx, need_h0, need_c0](const TensorList& g) {
                   return rnn_backward(sv, g, need_dx, need_h0, need_c0);
                 });
  }
  return outs;
}

Tensor last_step(const Tensor& x, const Tensor& lengths) {
  if (x.dim() != 3)
    throw std::invalid_argument("last_step: expected an input [N, T, F] (batch-first), got " + shape_str(x.shape()));
  const int64_t N = x.size(0), T = x.size(1);
  if (T == 0) throw std::invalid_argument("last_step: the input " + shape_str(x.shape()) + " has no time steps");
  if (!lengths.defined()) return x.select(1, T - 1);
  Tensor host = checked_lengths(lengths, N, T, "last_step");
  std::vector<int64_t> rows(static_cast<size_t>(N));  // row n * T + lengths[n] - 1 of x viewed [N*T, F]
  const int64_t* lp = host.data<int64_t>();
  for (int64_t n = 0; n < N; ++n) rows[static_cast<size_t>(n)] = n * T + lp[n] - 1;
  return index_select(x.reshape({N * T, x.size(2)}), 0, from_vector(rows, {N}, TensorOptions(DType::I64, x.device())));
}

}  // namespace dl
