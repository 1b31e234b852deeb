// torch/optim/lbfgs.py (1.13) ported line by line; comments name torch's variables where ours
// differ. Scalars (losses, step lengths, dot products) are doubles like torch's Python floats
// and float64 0-dim tensors; the flat vectors are tensors of the parameters' dtype and device.
#include "engine/optim/lbfgs.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "engine/autograd/autograd.h"
#include "engine/nn/utils.h"
#include "engine/ops/elementwise.h"
#include "engine/ops/reduce.h"
#include "engine/ops/shape.h"
#include "engine/optim/registry.h"

namespace dl::optim {
namespace {

const char* const kVectorSlots[] = {"d", "prev_flat_grad"};
const char* const kHistorySlots[] = {"old_dirs", "old_stps"};
const char* const kScalarSlots[] = {"t", "H_diag", "prev_loss", "n_iter", "func_evals"};

template <size_t N>
bool one_of(const std::string& s, const char* const (&names)[N]) {
  return std::find(std::begin(names), std::end(names), s) != std::end(names);
}

double dot(const Tensor& a, const Tensor& b) { return sum(mul(a, b)).item(); }
double abs_max(const Tensor& v) { return max(abs(v)).item(); }

// The optimizer's global state between steps (torch's state[params[0]] dict).
struct LbfgsState {
  Tensor d, prev_flat_grad;                // [numel]; undefined before the first iteration
  std::vector<Tensor> old_dirs, old_stps;  // y and s vectors, oldest first
  std::vector<double> ro;
  double t = 0, H_diag = 1, prev_loss = 0;
  int64_t n_iter = 0, func_evals = 0;
};

// ---- _cubic_interpolate ------------------------------------------------------------------
// Minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1, g2, clamped to the
// bounds (default: between x1 and x2); their midpoint when the cubic has no minimum.
double cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                         const std::pair<double, double>* bounds = nullptr) {
  double xmin_bound, xmax_bound;
  if (bounds) {
    std::tie(xmin_bound, xmax_bound) = *bounds;
  } else if (x1 <= x2) {
    xmin_bound = x1, xmax_bound = x2;
  } else {
    xmin_bound = x2, xmax_bound = x1;
  }
  const double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
  const double d2_square = d1 * d1 - g1 * g2;
  if (d2_square >= 0) {
    const double d2 = std::sqrt(d2_square);
    double min_pos;
    if (x1 <= x2) min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2));
    else min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
    // Python's min/max return the first argument on ties and NaN: std::min/max do too.
    return std::min(std::max(min_pos, xmin_bound), xmax_bound);
  }
  return (xmin_bound + xmax_bound) / 2.;
}

// ---- _strong_wolfe -----------------------------------------------------------------------
struct Evaluation {
  double f;
  Tensor g;
};
using Objective = std::function<Evaluation(double t)>;  // loss and flat gradient at x + t d

struct LineSearchResult {
  double f;
  Tensor g;
  double t;
  int64_t func_evals;
};

LineSearchResult strong_wolfe(const Objective& obj_func, double t, const Tensor& d, double f, const Tensor& g,
                              double gtd, double c1 = 1e-4, double c2 = 0.9, double tolerance_change = 1e-9,
                              int64_t max_ls = 25) {
  const double d_norm = abs_max(d);
  double f_new = 0, gtd_new = 0;
  Tensor g_new;
  int64_t ls_func_evals = 0;
  auto evaluate_at = [&](double at) {
    Evaluation e = obj_func(at);
    f_new = e.f;
    g_new = e.g;
    ls_func_evals += 1;
    gtd_new = dot(g_new, d);
  };
  // evaluate objective and gradient using initial step
  evaluate_at(t);

  // bracket an interval containing a point satisfying the Wolfe criteria
  double t_prev = 0, f_prev = f, gtd_prev = gtd;
  Tensor g_prev = g;
  bool done = false;
  int64_t ls_iter = 0;
  // torch's bracket lists hold 1 or 2 points; one point only when done (then unused below).
  double bracket[2] = {0, 0}, bracket_f[2] = {0, 0}, bracket_gtd[2] = {0, 0};
  Tensor bracket_g[2];
  int n_bracket = 0;
  auto set_bracket = [&](double t0, double f0, const Tensor& g0, double gtd0, double t1, double f1,
                         const Tensor& g1, double gtd1) {
    bracket[0] = t0, bracket_f[0] = f0, bracket_g[0] = g0, bracket_gtd[0] = gtd0;
    bracket[1] = t1, bracket_f[1] = f1, bracket_g[1] = g1, bracket_gtd[1] = gtd1;
    n_bracket = 2;
  };
  while (ls_iter < max_ls) {
    // check conditions
    if (f_new > (f + c1 * t * gtd) || (ls_iter > 1 && f_new >= f_prev)) {
      set_bracket(t_prev, f_prev, g_prev, gtd_prev, t, f_new, g_new, gtd_new);
      break;
    }
    if (std::abs(gtd_new) <= -c2 * gtd) {
      bracket[0] = t, bracket_f[0] = f_new, bracket_g[0] = g_new;
      n_bracket = 1;
      done = true;
      break;
    }
    if (gtd_new >= 0) {
      set_bracket(t_prev, f_prev, g_prev, gtd_prev, t, f_new, g_new, gtd_new);
      break;
    }
    // interpolate
    const double min_step = t + 0.01 * (t - t_prev);
    const double max_step = t * 10;
    const double tmp = t;
    const std::pair<double, double> bounds{min_step, max_step};
    t = cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, &bounds);
    // next step
    t_prev = tmp;
    f_prev = f_new;
    g_prev = g_new;
    gtd_prev = gtd_new;
    evaluate_at(t);
    ls_iter += 1;
  }
  // reached max number of iterations?
  if (ls_iter == max_ls) {  // torch leaves bracket_gtd as it was: the zoom below does not run
    bracket[0] = 0, bracket_f[0] = f, bracket_g[0] = g;
    bracket[1] = t, bracket_f[1] = f_new, bracket_g[1] = g_new;
    n_bracket = 2;
  }

  // zoom phase: we now have a point satisfying the criteria, or a bracket around it. We
  // refine the bracket until we find the exact point satisfying the criteria.
  bool insuf_progress = false;
  // find high and low points in bracket (bracket_f[-1]: the last point)
  int low_pos = 0, high_pos = 1;
  if (!(bracket_f[0] <= bracket_f[n_bracket - 1])) low_pos = 1, high_pos = 0;
  while (!done && ls_iter < max_ls) {
    // line-search bracket is so small
    if (std::abs(bracket[1] - bracket[0]) * d_norm < tolerance_change) break;

    // compute new trial value
    t = cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1]);

    // test that we are making sufficient progress: in case `t` is so close to boundary, we
    // mark that we are making insufficient progress, and if
    //   + we have made insufficient progress in the last step, or
    //   + `t` is at one of the boundary,
    // we will move `t` to a position which is `0.1 * len(bracket)` away from the nearest
    // boundary point.
    const double b_max = std::max(bracket[0], bracket[1]), b_min = std::min(bracket[0], bracket[1]);
    const double eps = 0.1 * (b_max - b_min);
    if (std::min(b_max - t, t - b_min) < eps) {
      // interpolation close to boundary
      if (insuf_progress || t >= b_max || t <= b_min) {
        // evaluate at 0.1 away from boundary
        if (std::abs(t - b_max) < std::abs(t - b_min)) t = b_max - eps;
        else t = b_min + eps;
        insuf_progress = false;
      } else {
        insuf_progress = true;
      }
    } else {
      insuf_progress = false;
    }

    // Evaluate new point
    evaluate_at(t);
    ls_iter += 1;

    if (f_new > (f + c1 * t * gtd) || f_new >= bracket_f[low_pos]) {
      // Armijo condition not satisfied or not lower than lowest point
      bracket[high_pos] = t;
      bracket_f[high_pos] = f_new;
      bracket_g[high_pos] = g_new;
      bracket_gtd[high_pos] = gtd_new;
      if (bracket_f[0] <= bracket_f[1]) low_pos = 0, high_pos = 1;
      else low_pos = 1, high_pos = 0;
    } else {
      if (std::abs(gtd_new) <= -c2 * gtd) {
        // Wolfe conditions satisfied
        done = true;
      } else if (gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0) {
        // old high becomes new low
        bracket[high_pos] = bracket[low_pos];
        bracket_f[high_pos] = bracket_f[low_pos];
        bracket_g[high_pos] = bracket_g[low_pos];
        bracket_gtd[high_pos] = bracket_gtd[low_pos];
      }
      // new point becomes new low
      bracket[low_pos] = t;
      bracket_f[low_pos] = f_new;
      bracket_g[low_pos] = g_new;
      bracket_gtd[low_pos] = gtd_new;
    }
  }
  // return stuff
  return {bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals};
}

// ---- state <-> slots ---------------------------------------------------------------------
std::vector<Tensor> rows_of(const Tensor& stacked) {
  std::vector<Tensor> rows;
  for (int64_t i = 0; i < stacked.size(0); ++i) rows.push_back(stacked.select(0, i));
  return rows;
}

LbfgsState read_state(const ParamState& ps, int64_t history_size) {
  LbfgsState s;
  if (ps.slots.empty()) return s;  // first step
  auto scalar = [&](const char* k) { return ps.slots.at(k).item(); };
  s.d = ps.slots.at("d");
  s.prev_flat_grad = ps.slots.at("prev_flat_grad");
  s.old_dirs = rows_of(ps.slots.at("old_dirs"));
  s.old_stps = rows_of(ps.slots.at("old_stps"));
  s.ro = ps.slots.at("ro").to(DType::F64).cpu().to_vector<double>();
  s.t = scalar("t");
  s.H_diag = scalar("H_diag");
  s.prev_loss = scalar("prev_loss");
  s.n_iter = static_cast<int64_t>(scalar("n_iter"));
  s.func_evals = static_cast<int64_t>(scalar("func_evals"));
  if (s.old_dirs.size() != s.old_stps.size() || s.old_dirs.size() != s.ro.size())
    throw std::invalid_argument("LBFGS state: old_dirs, old_stps and ro hold " + std::to_string(s.old_dirs.size()) +
                                ", " + std::to_string(s.old_stps.size()) + " and " + std::to_string(s.ro.size()) +
                                " entries, expected the same number");
  // A history restored under a smaller history_size keeps its newest pairs (torch would
  // index past its `al` buffer).
  const size_t excess = s.ro.size() > static_cast<size_t>(history_size) ? s.ro.size() - history_size : 0;
  s.old_dirs.erase(s.old_dirs.begin(), s.old_dirs.begin() + excess);
  s.old_stps.erase(s.old_stps.begin(), s.old_stps.begin() + excess);
  s.ro.erase(s.ro.begin(), s.ro.begin() + excess);
  return s;
}

void write_state(const LbfgsState& s, ParamState& ps, const Tensor& first_param, int64_t numel) {
  const TensorOptions vec = first_param.options(), f64 = first_param.options().with_dtype(DType::F64);
  auto history = [&](const std::vector<Tensor>& rows) { return rows.empty() ? empty({0, numel}, vec) : stack(rows); };
  // Before the first iteration (the first step stopped at its first gradient) d and
  // prev_flat_grad are unset in torch; zeros stand in (n_iter == 0 re-initialises them).
  ps.slots["d"] = s.d.defined() ? s.d : zeros({numel}, vec);
  ps.slots["prev_flat_grad"] = s.prev_flat_grad.defined() ? s.prev_flat_grad : zeros({numel}, vec);
  ps.slots["old_dirs"] = history(s.old_dirs);
  ps.slots["old_stps"] = history(s.old_stps);
  ps.slots["ro"] = from_vector(s.ro, {static_cast<int64_t>(s.ro.size())}).to(first_param.device());
  ps.slots["t"] = scalar_tensor(s.t, f64);
  ps.slots["H_diag"] = scalar_tensor(s.H_diag, f64);
  ps.slots["prev_loss"] = scalar_tensor(s.prev_loss, f64);
  ps.slots["n_iter"] = scalar_tensor(static_cast<double>(s.n_iter), f64);
  ps.slots["func_evals"] = scalar_tensor(static_cast<double>(s.func_evals), f64);
}

Options with_registered_defaults(const Options& given) {
  Options o = default_options(optimizer_def("LBFGS"));
  for (const auto& [k, v] : given) {
    if (!o.count(k)) throw std::invalid_argument("LBFGS: unknown option '" + k + "'");
    o[k] = v;
  }
  return o;
}

}  // namespace

LBFGS::LBFGS(const NamedTensors& params, const Options& options)
    : LBFGS(std::vector<ParamGroup>{ParamGroup::from(params)}, with_registered_defaults(options)) {}

LBFGS::LBFGS(std::vector<ParamGroup> groups, const Options& defaults) : Optimizer("LBFGS", defaults) {
  init_groups(std::move(groups));
  if (groups_.size() != 1)
    throw std::invalid_argument("LBFGS doesn't support per-parameter options (parameter groups)");
  for (const Tensor& p : groups_[0].params) {
    if (p.device() != groups_[0].params[0].device())
      throw std::invalid_argument("LBFGS: all parameters have to be on a single device (" +
                                  groups_[0].params[0].device().str() + " and " + p.device().str() + ")");
    numel_ += p.numel();
  }
}

void LBFGS::step() { throw std::invalid_argument("LBFGS needs a closure: call step(closure)"); }

std::vector<std::string> LBFGS::slot_names(const Options&) const {
  return {"d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss", "n_iter", "func_evals"};
}

std::string LBFGS::check_slot(const std::string& slot, const Tensor& value, const Tensor&) const {
  if (!is_floating(value.dtype()))
    return "is " + std::string(dtype_name(value.dtype())) + ", expected a floating-point tensor";
  const std::string n = std::to_string(numel_);
  if (one_of(slot, kVectorSlots) && value.shape() != Shape{numel_})
    return "has shape " + shape_str(value.shape()) + ", expected [" + n + "] (all parameters' elements)";
  if (one_of(slot, kHistorySlots) && (value.dim() != 2 || value.size(1) != numel_))
    return "has shape " + shape_str(value.shape()) + ", expected [k, " + n + "]";
  if (slot == "ro" && value.dim() != 1) return "has shape " + shape_str(value.shape()) + ", expected [k]";
  if (one_of(slot, kScalarSlots)) {
    if (value.dim() != 0) return "has shape " + shape_str(value.shape()) + ", expected a 0-dim tensor";
    const double v = value.item();
    if ((slot == "n_iter" || slot == "func_evals") && !(v >= 0 && v == std::trunc(v) && v < 9e15))
      return "is " + option_str(v) + ", expected an integer >= 0";
  }
  return "";
}

DType LBFGS::slot_dtype(const std::string& slot, const Tensor& param) const {
  return one_of(slot, kVectorSlots) || one_of(slot, kHistorySlots) ? param.dtype() : DType::F64;
}

double LBFGS::step(const Closure& closure) {
  if (groups_.size() != 1)
    throw std::invalid_argument("LBFGS doesn't support per-parameter options (parameter groups)");
  const ParamGroup& group = groups_[0];
  const std::vector<Tensor>& params = group.params;
  const double lr = group.get("lr");
  const int64_t max_iter = static_cast<int64_t>(group.get("max_iter"));
  const int64_t max_eval_opt = static_cast<int64_t>(group.get("max_eval"));
  const int64_t max_eval = max_eval_opt == 0 ? max_iter * 5 / 4 : max_eval_opt;  // "auto"
  const double tolerance_grad = group.get("tolerance_grad");
  const double tolerance_change = group.get("tolerance_change");
  const bool strong_wolfe_search = group.get("line_search_fn") == 1.0;
  const int64_t history_size = static_cast<int64_t>(group.get("history_size"));

  NoGradGuard no_grad;
  // The closure always runs with grad enabled (torch.enable_grad()(closure)).
  auto evaluate = [&] {
    EnableGradGuard grad_on;
    return closure();
  };
  auto gather_flat_grad = [&] {
    std::vector<Tensor> views;
    for (const Tensor& p : params) {
      Tensor g = p.grad();
      views.push_back(g.defined() ? g.reshape({-1}) : zeros({p.numel()}, p.options()));
    }
    return cat(views, 0);
  };
  auto add_grad = [&](double step_size, const Tensor& update) {
    int64_t offset = 0;
    for (const Tensor& p : params) {
      const int64_t numel = p.numel();
      Tensor target = p;
      add_(target, update.narrow(0, offset, numel).view(p.shape()), step_size);
      offset += numel;
    }
  };

  // LBFGS has only global state, registered as the first parameter's (torch's comment).
  ParamState& ps = state_[group.names[0]];
  LbfgsState st = read_state(ps, history_size);

  // evaluate initial f(x) and df/dx
  const double orig_loss = evaluate();
  double loss = orig_loss;
  int64_t current_evals = 1;
  st.func_evals += 1;

  Tensor flat_grad = gather_flat_grad();
  bool opt_cond = abs_max(flat_grad) <= tolerance_grad;

  // optimal condition
  if (opt_cond) {
    write_state(st, ps, params[0], numel_);
    return orig_loss;
  }

  Tensor& d = st.d;
  double& t = st.t;
  std::vector<double> al(static_cast<size_t>(history_size));
  int64_t n_iter = 0;
  // optimize for a max of max_iter iterations
  while (n_iter < max_iter) {
    // keep track of nb of iterations
    n_iter += 1;
    st.n_iter += 1;

    // ---- compute gradient descent direction ----
    if (st.n_iter == 1) {
      d = neg(flat_grad);
      st.old_dirs.clear();
      st.old_stps.clear();
      st.ro.clear();
      st.H_diag = 1;
    } else {
      // do lbfgs update (update memory)
      Tensor y = sub(flat_grad, st.prev_flat_grad);
      Tensor s = mul(d, t);
      const double ys = dot(y, s);  // y*s
      if (ys > 1e-10) {
        // updating memory
        if (static_cast<int64_t>(st.old_dirs.size()) == history_size) {
          // shift history by one (limited-memory)
          st.old_dirs.erase(st.old_dirs.begin());
          st.old_stps.erase(st.old_stps.begin());
          st.ro.erase(st.ro.begin());
        }
        // store new direction/step
        st.old_dirs.push_back(y);
        st.old_stps.push_back(s);
        st.ro.push_back(1. / ys);
        // update scale of initial Hessian approximation
        st.H_diag = ys / dot(y, y);  // (y*y)
      }
      // compute the approximate (L-BFGS) inverse Hessian multiplied by the gradient
      const size_t num_old = st.old_dirs.size();
      // iteration in L-BFGS loop collapsed to use just one buffer
      Tensor q = neg(flat_grad);
      for (size_t i = num_old; i-- > 0;) {
        al[i] = dot(st.old_stps[i], q) * st.ro[i];
        add_(q, st.old_dirs[i], -al[i]);
      }
      // multiply by initial Hessian; r/d is the final direction
      d = mul(q, st.H_diag);
      for (size_t i = 0; i < num_old; ++i) {
        const double be_i = dot(st.old_dirs[i], d) * st.ro[i];
        add_(d, st.old_stps[i], al[i] - be_i);
      }
    }
    if (!st.prev_flat_grad.defined()) st.prev_flat_grad = flat_grad.clone();
    else st.prev_flat_grad.copy_(flat_grad);
    st.prev_loss = loss;

    // ---- compute step length ----
    // reset initial guess for step size
    if (st.n_iter == 1) t = std::min(1., 1. / sum(abs(flat_grad)).item()) * lr;
    else t = lr;

    // directional derivative
    const double gtd = dot(flat_grad, d);  // g * d

    // directional derivative is below tolerance
    if (gtd > -tolerance_change) break;

    // optional line search: user function
    int64_t ls_func_evals = 0;
    if (strong_wolfe_search) {
      const Tensor x_init = nn::parameters_to_vector(params).detach();
      auto obj_func = [&](double step_t) {
        // _directional_evaluate
        add_grad(step_t, d);
        const double f = evaluate();
        Tensor g = gather_flat_grad();
        nn::vector_to_parameters(x_init, params);
        return Evaluation{f, g};
      };
      LineSearchResult r = strong_wolfe(obj_func, t, d, loss, flat_grad, gtd);
      loss = r.f;
      flat_grad = r.g;
      t = r.t;
      ls_func_evals = r.func_evals;
      add_grad(t, d);
      opt_cond = abs_max(flat_grad) <= tolerance_grad;
    } else {
      // no line search, simply move with fixed-step
      add_grad(t, d);
      if (n_iter != max_iter) {
        // re-evaluate function only if not in last iteration (in a stochastic setting there
        // is no use to re-evaluate that function here)
        loss = evaluate();
        flat_grad = gather_flat_grad();
        opt_cond = abs_max(flat_grad) <= tolerance_grad;
        ls_func_evals = 1;
      }
    }
    // update func eval
    current_evals += ls_func_evals;
    st.func_evals += ls_func_evals;

    // ---- check conditions ----
    if (n_iter == max_iter) break;
    if (current_evals >= max_eval) break;
    // optimal condition
    if (opt_cond) break;
    // lack of progress
    if (abs_max(mul(d, t)) <= tolerance_change) break;
    if (std::abs(loss - st.prev_loss) < tolerance_change) break;
  }
  write_state(st, ps, params[0], numel_);
  return orig_loss;
}

namespace {
using A = AttrSchema;
const RegisterOptimizer kRegister({
    "lbfgs", "LBFGS",
    "torch.optim.LBFGS (one param group; step(closure) re-evaluates the loss, strong_wolfe line search)",
    {A::floating("lr", 1.0).at_least(0).describe("learning rate (the step length; strong_wolfe's first trial)"),
     A::integer("max_iter", 20).at_least(1).describe("maximal number of iterations per optimization step"),
     A::integer("max_eval", 0).keyword("auto", 0).at_least(1)
         .describe("maximal number of function evaluations per optimization step (auto: max_iter * 5 // 4)"),
     A::floating("tolerance_grad", 1e-7).at_least(0).describe("termination tolerance on first order optimality"),
     A::floating("tolerance_change", 1e-9).at_least(0)
         .describe("termination tolerance on function value/parameter changes"),
     A::integer("history_size", 100).at_least(1).describe("update history size"),
     A::choice("line_search_fn", {"none", "strong_wolfe"}, "none").describe("either 'strong_wolfe' or none")},
    /*rule=*/nullptr,
    [](std::vector<ParamGroup> groups, const Options& defaults) -> std::unique_ptr<Optimizer> {
      return std::make_unique<LBFGS>(std::move(groups), defaults);
    },
    // d, prev_flat_grad and history_size (default 100) y and s vectors, each the size of all
    // parameters: with the default, 202 parameter-sized tensors (torch's memory warning).
    /*max_state_tensors=*/202,
    /*needs_closure=*/true});
}  // namespace

}  // namespace dl::optim
