// Kernel cases (tests/support/kernel_cases.h) for the class-index losses, dropout, embedding,
// the fused optimizer steps and layer norm: forward and backward from seeded inputs. Shapes are
// picked to reach every launch path of the CUDA kernels (kernels/cuda/loss.cu, layer_norm.cu:
// one thread, one warp or one block per row; [N, C] and [N, C, d1, ...] layouts).
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>

#include "engine/ops.h"
#include "engine/optim/adam.h"
#include "engine/optim/optimizer.h"
#include "engine/optim/sgd.h"
#include "engine/tensor/host_reads.h"
#include "kernels/loss.h"
#include "tests/support/kernel_cases.h"

using namespace dl;
using dl::test::case_randint;
using dl::test::case_randn;
using dl::test::with_grads;

namespace {

// Class indices in [0, classes) with every `every`-th position (from 0) set to ignore_index.
Tensor class_targets(const Shape& shape, uint64_t seed, int64_t classes, int64_t ignore_index, size_t every,
                     const Device& d) {
  std::vector<int64_t> t = case_randint(shape, seed, classes, Device::cpu()).to_vector<int64_t>();
  for (size_t i = 0; i < t.size(); i += every) t[i] = ignore_index;
  return from_vector<int64_t>(t, shape).to(d);
}

// cross_entropy on logits [rows, classes] (the CUDA kernel's group size follows C): class weights
// with label smoothing (mean), no weights (sum), weights (none), every 4th target ignored.
std::vector<Tensor> cross_entropy_rows(const Device& d, int64_t rows, int64_t classes, uint64_t seed) {
  Tensor x = case_randn({rows, classes}, seed, d, true);
  Tensor w = dl::test::case_uniform({classes}, seed + 1, 0.5, 2.0, d);
  Tensor t = class_targets({rows}, seed + 2, classes, -100, 4, d);
  Tensor mean_l = cross_entropy(x, t, w, -100, Reduction::Mean, 0.1);
  Tensor sum_l = cross_entropy(x, t, Tensor(), -100, Reduction::Sum, 0.0);
  Tensor none_l = cross_entropy(x, t, w, -100, Reduction::None, 0.0);
  Tensor y = mean_l * 2.0 + sum_l * 0.5 + (none_l * case_randn({rows}, seed + 3, d)).sum();
  return with_grads({mean_l, sum_l, none_l}, y, {x}, seed + 4);
}

}  // namespace

// ---- losses --------------------------------------------------------------------------------------

DL_KERNEL_CASE(cross_entropy_small_c, {"cross_entropy_stub", "cross_entropy_backward_stub", "sum_stub", "binary_stub"},
               "cross_entropy [9, 5] f32: class weights + label smoothing 0.1 (mean), sum, none (weights), "
               "every 4th target ignored, backward",
               [](const Device& d) { return cross_entropy_rows(d, 9, 5, 101); }, 1e-5, 1e-5);

DL_KERNEL_CASE(cross_entropy_warp_c, {"cross_entropy_stub", "cross_entropy_backward_stub", "sum_stub", "binary_stub"},
               "cross_entropy [7, 40] f32 (one warp per row): weights, smoothing, ignore, mean/sum/none, backward",
               [](const Device& d) { return cross_entropy_rows(d, 7, 40, 111); }, 1e-5, 1e-5);

DL_KERNEL_CASE(cross_entropy_block_c, {"cross_entropy_stub", "cross_entropy_backward_stub", "sum_stub", "binary_stub"},
               "cross_entropy [4, 1500] f32 (one block per row): weights, smoothing, ignore, mean/sum/none, backward",
               [](const Device& d) { return cross_entropy_rows(d, 4, 1500, 121); }, 1e-5, 1e-5);

DL_KERNEL_CASE(cross_entropy_spatial, {"cross_entropy_stub", "cross_entropy_backward_stub", "sum_stub", "binary_stub"},
               "cross_entropy [3, 5, 4, 6] f64 (per-position threads): ignore_index 2, smoothing 0.2 (mean), "
               "none without smoothing, backward",
               [](const Device& d) {
                 Tensor x = case_randn({3, 5, 4, 6}, 131, d, true, DType::F64);
                 Tensor t = class_targets({3, 4, 6}, 132, 5, 2, 7, d);
                 Tensor mean_l = cross_entropy(x, t, Tensor(), 2, Reduction::Mean, 0.2);
                 Tensor none_l = cross_entropy(x, t, Tensor(), 2, Reduction::None, 0.0);
                 Tensor y = mean_l + (none_l * case_randn({3, 4, 6}, 133, d, false, DType::F64)).sum();
                 return with_grads({mean_l, none_l}, y, {x}, 134);
               },
               1e-9, 1e-12);

DL_KERNEL_CASE(nll_loss_all, {"nll_loss_stub", "nll_loss_backward_stub", "sum_stub", "binary_stub"},
               "nll_loss [8, 7] f32 with class weights and ignored targets (mean, none), [2, 4, 3, 5] f64 "
               "spatial (sum), backward",
               [](const Device& d) {
                 Tensor x = case_randn({8, 7}, 141, d, true);
                 Tensor w = dl::test::case_uniform({7}, 142, 0.5, 2.0, d);
                 Tensor t = class_targets({8}, 143, 7, -100, 3, d);
                 Tensor mean_l = nll_loss(x, t, w, -100, Reduction::Mean);
                 Tensor none_l = nll_loss(x, t, w, -100, Reduction::None);
                 Tensor xs = case_randn({2, 4, 3, 5}, 144, d, true, DType::F64);
                 Tensor ts = class_targets({2, 3, 5}, 145, 4, 1, 5, d);
                 Tensor sum_l = nll_loss(xs, ts, Tensor(), 1, Reduction::Sum);
                 Tensor y = mean_l + (none_l * case_randn({8}, 146, d)).sum() + sum_l.to(DType::F32) * 0.25;
                 return with_grads({mean_l, none_l, sum_l}, y, {x, xs}, 147);
               },
               1e-6, 1e-7);

// Deferred target checks: the targets made safe (bad ones -> ignore_index) and the first bad
// position, over several blocks of the CUDA kernel (atomicMin across blocks); none bad gives -1.
// Then cross_entropy and nll_loss under a DeferChecksGuard count the bad targets as ignored;
// their pending checks are read here (each finds its first bad position).
DL_KERNEL_CASE(sanitize_class_targets, {"sanitize_class_targets_stub", "cross_entropy_stub",
                                        "cross_entropy_backward_stub", "nll_loss_stub", "nll_loss_backward_stub",
                                        "sum_stub", "binary_stub"},
               "class targets [5000] with bad values at 4321, 777 and 4999 (first: 777), ignore_index -1; "
               "a clean [64] target gives -1; cross_entropy/nll_loss [6, 4] with targets 4 and -3 deferred",
               [](const Device& d) {
                 std::vector<int64_t> raw = case_randint({5000}, 161, 10, Device::cpu()).to_vector<int64_t>();
                 raw[4321] = 10, raw[777] = -5, raw[4999] = 99, raw[12] = -1;
                 Tensor t = from_vector<int64_t>(raw, {5000}).to(d);
                 ClassLossArgs a;
                 a.classes = 10, a.ignore_index = -1;
                 Tensor safe = empty({5000}, t.options()), first = empty({1}, t.options());
                 sanitize_class_targets_stub(d)(t, a, safe, first);
                 Tensor clean = case_randint({64}, 162, 10, d);
                 Tensor clean_safe = empty({64}, clean.options()), clean_first = empty({1}, clean.options());
                 sanitize_class_targets_stub(d)(clean, a, clean_safe, clean_first);

                 Tensor x = case_randn({6, 4}, 163, d, true);
                 Tensor bad = from_vector<int64_t>({0, 4, 2, -3, 1, 3}, {6}).to(d);
                 std::vector<Tensor> out{safe.to(DType::F64), first.to(DType::F64), clean_safe.to(DType::F64),
                                         clean_first.to(DType::F64)};
                 // Each op's pending check is read (and throws) before the next op runs.
                 double thrown = 0;
                 auto deferred = [&](const std::function<Tensor()>& op) {
                   Tensor l;
                   {
                     DeferChecksGuard defer;
                     l = op();
                   }
                   try {
                     run_deferred_checks();
                   } catch (const std::out_of_range&) {
                     ++thrown;
                   }
                   return l;
                 };
                 Tensor ce = deferred([&] { return cross_entropy(x, bad, Tensor(), -100, Reduction::Mean, 0.0); });
                 Tensor nll = deferred([&] { return nll_loss(log_softmax(x, 1), bad, Tensor(), -100, Reduction::Sum); });
                 std::vector<Tensor> grads = with_grads({ce, nll}, ce + nll, {x}, 164);
                 out.insert(out.end(), grads.begin(), grads.end());
                 out.push_back(full({}, thrown, TensorOptions(DType::F64, d)));
                 return out;
               },
               0, 1e-6);

// multilabel_margin_loss: one thread per row forward, one per element backward on CUDA, the
// CPU's row code, so the per-row losses and gradients agree to the bit. Rows with no target, every
// class a target, a repeated target and entries after the first -1 (never read); 300 rows of 40
// (several blocks) in f64; a target >= C under deferred checks (counted as the end of its row, the
// error thrown at the read).
DL_KERNEL_CASE(multilabel_margin, {"multilabel_margin_stub", "multilabel_margin_backward_stub", "sum_stub",
                                   "binary_stub"},
               "multilabel_margin_loss [6, 5] f32 (mean, none; edge rows), [300, 40] f64 (sum), a bad target "
               "deferred, backward",
               [](const Device& d) {
                 Tensor x = case_randn({6, 5}, 171, d, true);
                 Tensor t = from_vector<int64_t>({-1, 3, 9, 0, 0,    // no target (9 after -1: not read)
                                                  0, 1, 2, 3, 4,     // every class a target
                                                  2, 2, 4, -1, 7,    // 2 repeated
                                                  1, -1, 1, 1, 1,    //
                                                  4, 0, 3, 1, -1,    //
                                                  3, -1, -1, -1, -1},
                                                 {6, 5})
                                .to(d);
                 Tensor mean_l = multilabel_margin_loss(x, t, Reduction::Mean);
                 Tensor none_l = multilabel_margin_loss(x, t, Reduction::None);
                 Tensor xl = case_randn({300, 40}, 172, d, true, DType::F64);
                 std::vector<int64_t> raw = case_randint({300, 40}, 173, 40, Device::cpu()).to_vector<int64_t>();
                 for (size_t r = 0; r < 300; ++r) raw[r * 40 + r % 11] = -1;  // rows of 0..10 targets
                 Tensor sum_l = multilabel_margin_loss(xl, from_vector<int64_t>(raw, {300, 40}).to(d), Reduction::Sum);
                 Tensor bad_l;
                 double thrown = 0;
                 {
                   DeferChecksGuard defer;
                   Tensor bad = from_vector<int64_t>({1, 0, 5, 2, 3, 4, -1, 0, 0, 0}, {2, 5}).to(d);
                   bad_l = multilabel_margin_loss(x.narrow(0, 0, 2), bad, Reduction::None);
                 }
                 try {
                   run_deferred_checks();
                 } catch (const std::out_of_range&) {
                   ++thrown;
                 }
                 Tensor y = mean_l + (none_l * case_randn({6}, 174, d)).sum() + sum_l.to(DType::F32) * 0.01 +
                            bad_l.sum();
                 std::vector<Tensor> out = with_grads({mean_l, none_l, sum_l, bad_l}, y, {x, xl}, 175);
                 out.push_back(full({}, thrown, TensorOptions(DType::F64, d)));
                 return out;
               },
               1e-6, 1e-7);

// ---- dropout -------------------------------------------------------------------------------------

DL_KERNEL_CASE(dropout_masks, {"dropout_stub", "binary_stub"},
               "dropout p=0.3 on [37, 29] f32 and p=0.6 on [1000] f64 from one generator, dropout2d p=0.5 on "
               "[3, 4, 2, 2], p=0.25 on a bf16 [8, 16]: masks bit-identical to the CPU's, backward g * mask",
               [](const Device& d) {
                 Generator g(151);
                 Tensor a = case_randn({37, 29}, 152, d, true);
                 Tensor b = case_randn({1000}, 153, d, true, DType::F64);
                 Tensor c = case_randn({3, 4, 2, 2}, 154, d);
                 Tensor ya = dropout(a, 0.3, true, g);
                 Tensor yb = dropout(b, 0.6, true, g);
                 Tensor yc = dropout2d(c, 0.5, true, g);
                 Tensor yh = dropout(case_randn({8, 16}, 157, d).to(DType::BF16), 0.25, true, g);  // via f32
                 std::vector<Tensor> out = with_grads({ya, yc, yh}, ya, {a}, 155);
                 return with_grads(out, yb, {b}, 156);
               },
               0.0, 0.0, true);

// ---- embedding -----------------------------------------------------------------------------------

DL_KERNEL_CASE(embedding_pad_max_norm, {"embedding_fwd_stub", "embedding_bwd_stub", "embedding_renorm_stub"},
               "embedding [20, 6] f32 with repeated indices [5, 7], padding_idx 3, max_norm 2 (L2, in place); "
               "[9, 4] f64 with max_norm 1.5 in the inf norm; weights after renorm and their gradients",
               [](const Device& d) {
                 Tensor w = case_randn({20, 6}, 161, d, true);
                 Tensor idx = case_randint({5, 7}, 162, 20, d);
                 Tensor y = embedding(idx, w, 3, 2.0);
                 std::vector<Tensor> out = with_grads({y, w.detach().clone()}, y, {w}, 163);
                 Tensor w2 = case_randn({9, 4}, 164, d, true, DType::F64);
                 Tensor idx2 = case_randint({12}, 165, 9, d);
                 Tensor y2 = embedding(idx2, w2, std::nullopt, 1.5, std::numeric_limits<double>::infinity());
                 out.push_back(w2.detach().clone());
                 return with_grads(out, y2, {w2}, 166);
               },
               1e-6, 1e-7);

// ---- optimizer steps -----------------------------------------------------------------------------
namespace {

// `n` steps of `opt` over `params` with seeded gradients; returns the parameters and their state.
std::vector<Tensor> steps(optim::Optimizer& opt, const std::vector<Tensor>& params, uint64_t seed, uint64_t n) {
  for (uint64_t step = 0; step < n; ++step) {
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor p = params[i];
      p.set_grad(case_randn(p.shape(), seed + 10 * step + i, p.device(), false, p.dtype()));
    }
    opt.step();
  }
  std::vector<Tensor> out(params.begin(), params.end());
  for (const auto& param_state : opt.state())  // by parameter name, then slot name
    for (const auto& slot : param_state.second.slots) out.push_back(slot.second);
  return out;
}

std::vector<Tensor> two_steps(optim::Optimizer& opt, const std::vector<Tensor>& params, uint64_t seed) {
  return steps(opt, params, seed, 2);
}

optim::NamedTensors named(const std::vector<Tensor>& ts) {
  optim::NamedTensors n;
  for (size_t i = 0; i < ts.size(); ++i) n.emplace_back("p" + std::to_string(i), ts[i]);
  return n;
}

}  // namespace

DL_KERNEL_CASE(sgd_nesterov_step, {"sgd_step_stub"},
               "SGD momentum 0.9 + nesterov + weight_decay 0.01, two fused steps on f32 [17, 5], [33] and f64 [4, 3] "
               "(params and momentum buffers)",
               [](const Device& d) {
                 std::vector<Tensor> ps = {case_randn({17, 5}, 171, d, true), case_randn({33}, 172, d, true),
                                           case_randn({4, 3}, 173, d, true, DType::F64)};
                 optim::SGDOptions o;
                 o.lr = 0.1;
                 o.momentum = 0.9;
                 o.weight_decay = 0.01;
                 o.nesterov = true;
                 optim::SGD opt(named(ps), o);
                 return two_steps(opt, ps, 174);
               },
               1e-6, 1e-7);

DL_KERNEL_CASE(adam_steps, {"adam_step_stub"},
               "Adam (weight_decay 0.01, coupled) and AdamW amsgrad (weight_decay 0.1), two fused steps each on "
               "f32 [6, 7], [19] and f64 [5] (params, exp_avg, exp_avg_sq, max_exp_avg_sq)",
               [](const Device& d) {
                 std::vector<Tensor> a = {case_randn({6, 7}, 181, d, true), case_randn({19}, 182, d, true),
                                          case_randn({5}, 183, d, true, DType::F64)};
                 optim::AdamOptions ao;
                 ao.lr = 0.01;
                 ao.weight_decay = 0.01;
                 optim::Adam adam(named(a), ao);
                 std::vector<Tensor> out = two_steps(adam, a, 184);
                 std::vector<Tensor> b = {case_randn({6, 7}, 185, d, true), case_randn({19}, 186, d, true),
                                          case_randn({5}, 187, d, true, DType::F64)};
                 optim::AdamWOptions wo;
                 wo.lr = 0.01;
                 wo.weight_decay = 0.1;
                 wo.amsgrad = true;
                 optim::AdamW adamw(named(b), wo);
                 for (Tensor& t : two_steps(adamw, b, 188)) out.push_back(t);
                 return out;
               },
               1e-6, 1e-7);

// The other optimizers' fused kernels: one case per stub, each option that changes the formula
// on (weight decay, momentum, centered, ...), f32 tensors of a few sizes and an f64 one.
namespace {

std::vector<Tensor> optimizer_steps(const std::string& type, const optim::Options& o, const Device& d,
                                    uint64_t seed, uint64_t n = 3) {
  std::vector<Tensor> ps = {case_randn({7, 9}, seed, d, true), case_randn({130}, seed + 1, d, true),
                            case_randn({3, 4}, seed + 2, d, true, DType::F64)};
  auto opt = optim::make_optimizer(type, named(ps), o);
  return steps(*opt, ps, seed + 3, n);
}

}  // namespace

DL_KERNEL_CASE(rmsprop_steps, {"rmsprop_step_stub"},
               "RMSprop plain, with weight_decay 0.1 + momentum 0.9, and centered + momentum, 3 fused steps each on "
               "f32 [7, 9], [130] and f64 [3, 4] (params, square_avg, momentum_buffer, grad_avg)",
               [](const Device& d) {
                 std::vector<Tensor> out = optimizer_steps("RMSprop", {{"lr", 0.01}}, d, 301);
                 for (Tensor& t : optimizer_steps("RMSprop", {{"lr", 0.01}, {"weight_decay", 0.1}, {"momentum", 0.9}},
                                                  d, 311))
                   out.push_back(t);
                 for (Tensor& t : optimizer_steps("RMSprop", {{"lr", 0.01}, {"centered", 1}, {"momentum", 0.5}}, d, 321))
                   out.push_back(t);
                 return out;
               },
               1e-6, 1e-7);

DL_KERNEL_CASE(adagrad_steps, {"adagrad_step_stub"},
               "Adagrad lr_decay 0.1, weight_decay 0.05, initial_accumulator_value 0.1: 3 fused steps on f32 [7, 9], "
               "[130] and f64 [3, 4] (params, sum)",
               [](const Device& d) {
                 return optimizer_steps(
                     "Adagrad", {{"lr", 0.1}, {"lr_decay", 0.1}, {"weight_decay", 0.05}, {"initial_accumulator_value", 0.1}},
                     d, 331);
               },
               1e-6, 1e-7);

DL_KERNEL_CASE(adadelta_steps, {"adadelta_step_stub"},
               "Adadelta rho 0.8, weight_decay 0.05: 3 fused steps on f32 [7, 9], [130] and f64 [3, 4] (params, "
               "square_avg, acc_delta)",
               [](const Device& d) {
                 return optimizer_steps("Adadelta", {{"rho", 0.8}, {"weight_decay", 0.05}}, d, 341);
               },
               1e-6, 1e-7);

DL_KERNEL_CASE(adamax_steps, {"adamax_step_stub"},
               "Adamax weight_decay 0.05: 3 fused steps on f32 [7, 9], [130] and f64 [3, 4] (params, exp_avg, exp_inf)",
               [](const Device& d) { return optimizer_steps("Adamax", {{"weight_decay", 0.05}}, d, 351); }, 1e-6,
               1e-7);

DL_KERNEL_CASE(nadam_steps, {"nadam_step_stub"},
               "NAdam weight_decay 0.05, momentum_decay 0.01: 3 fused steps on f32 [7, 9], [130] and f64 [3, 4] "
               "(params, exp_avg, exp_avg_sq, mu_product)",
               [](const Device& d) {
                 return optimizer_steps("NAdam", {{"weight_decay", 0.05}, {"momentum_decay", 0.01}}, d, 361);
               },
               1e-6, 1e-7);

DL_KERNEL_CASE(radam_steps, {"radam_step_stub"},
               "RAdam weight_decay 0.05 over 7 fused steps (rho_t passes 5 at step 6: the unrectified and the "
               "rectified update) on f32 [7, 9], [130] and f64 [3, 4] (params, exp_avg, exp_avg_sq)",
               [](const Device& d) { return optimizer_steps("RAdam", {{"weight_decay", 0.05}}, d, 371, 7); }, 1e-6,
               1e-7);

DL_KERNEL_CASE(asgd_steps, {"asgd_step_stub"},
               "ASGD t0 0 (averaging from step 2), lambd 0.01, weight_decay 0.05: 3 fused steps on f32 [7, 9], [130] "
               "and f64 [3, 4] (params, ax, eta, mu)",
               [](const Device& d) {
                 return optimizer_steps("ASGD", {{"t0", 0}, {"lambd", 0.01}, {"weight_decay", 0.05}}, d, 381);
               },
               1e-6, 1e-7);

DL_KERNEL_CASE(rprop_steps, {"rprop_step_stub"},
               "Rprop step_sizes [1e-3, 0.05] (both bounds reached): 4 fused steps on f32 [7, 9], [130] and f64 [3, 4] "
               "(params, prev, step_size)",
               [](const Device& d) {
                 return optimizer_steps("Rprop", {{"lr", 0.02}, {"step_size_min", 1e-3}, {"step_size_max", 0.05}}, d,
                                        391, 4);
               },
               1e-6, 1e-7);

DL_KERNEL_CASE(sgd_many_tensors, {"sgd_step_stub"},
               "SGD momentum 0.9 over 45 f32 tensors of 1 to 140,000 elements (more tensors than one launch takes, "
               "tensors of several 65,536-element chunks): two fused steps, params and momentum buffers",
               [](const Device& d) {
                 std::vector<Tensor> ps;
                 for (int64_t i = 0; i < 45; ++i)
                   ps.push_back(case_randn({i % 9 == 4 ? 140000 - i : 1 + 37 * i}, 400 + static_cast<uint64_t>(i), d,
                                           true));
                 optim::SGD opt(named(ps), {.lr = 0.1, .momentum = 0.9});
                 return two_steps(opt, ps, 500);
               },
               1e-6, 1e-7);

// ---- layer norm ----------------------------------------------------------------------------------

DL_KERNEL_CASE(layer_norm_affine_short_rows, {"layer_norm_fwd_stub", "layer_norm_bwd_stub"},
               "layer_norm [6, 10] f32 over the last dim with weight and bias (one thread per row), mean 3, backward",
               [](const Device& d) {
                 Tensor x = (case_randn({6, 10}, 191, d) + 3.0).requires_grad_();
                 Tensor w = case_randn({10}, 192, d, true), b = case_randn({10}, 193, d, true);
                 Tensor y = layer_norm(x, {10}, w, b);
                 return with_grads({y}, y, {x, w, b}, 194);
               },
               1e-5, 1e-5);

DL_KERNEL_CASE(layer_norm_plain_warp_rows, {"layer_norm_fwd_stub", "layer_norm_bwd_stub"},
               "layer_norm [4, 3, 40] f64 over [3, 40] without affine (one warp per row), backward",
               [](const Device& d) {
                 Tensor x = case_randn({4, 3, 40}, 201, d, true, DType::F64);
                 Tensor y = layer_norm(x, {3, 40}, Tensor(), Tensor(), 1e-6);
                 return with_grads({y}, y, {x}, 202);
               },
               1e-9, 1e-12);

DL_KERNEL_CASE(layer_norm_affine_block_rows, {"layer_norm_fwd_stub", "layer_norm_bwd_stub"},
               "layer_norm [40, 1100] f32 with weight and bias (one block per row, 32 row blocks for the "
               "weight/bias gradients), backward",
               [](const Device& d) {
                 Tensor x = case_randn({40, 1100}, 211, d, true);
                 Tensor w = case_randn({1100}, 212, d, true), b = case_randn({1100}, 213, d, true);
                 Tensor y = layer_norm(x, {1100}, w, b);
                 return with_grads({y}, y, {x, w, b}, 214);
               },
               1e-5, 1e-5);
