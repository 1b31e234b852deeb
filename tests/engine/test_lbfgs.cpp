// torch.optim.LBFGS against PyTorch 1.13 iterates (tests/fixtures/lbfgs.txt, written by
// tests/fixtures/gen_lbfgs.py): logistic regression, a small MLP and the Rosenbrock function
// in float64, with and without the strong-Wolfe line search; plus bit-exact resume, the closure contract and the
// state checks.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <memory>
#include <sstream>

#include "engine/ops.h"
#include "engine/optim/lbfgs.h"
#include "engine/optim/registry.h"
#include "tests/support/fixtures.h"

using namespace dl;

namespace {

const std::vector<test::FixtureCase>& cases() {
  static const std::vector<test::FixtureCase> c = test::load_fixtures("lbfgs.txt");
  return c;
}

// "lr=1.0 max_iter=4" -> options
optim::Options parse_options(const std::string& s) {
  optim::Options o;
  std::istringstream is(s);
  std::string tok;
  while (is >> tok) {
    const size_t eq = tok.find('=');
    o[tok.substr(0, eq)] = std::stod(tok.substr(eq + 1));
  }
  return o;
}

// A fixture problem: its parameters (fresh leaves, in the fixture's order) and the closure
// torch's generator used: zero_grad, loss, backward, return the loss.
struct Problem {
  optim::NamedTensors params;
  Tensor x, y;
  std::string kind;
  int64_t calls = 0;

  Problem(const test::FixtureCase& c, DType dtype) : kind(c.attr("problem")) {
    if (c.has("X")) {
      x = c.t("X").to(dtype);
      y = c.t("y").to(dtype);
    }
    std::vector<std::string> names{"w1", "b1", "w2", "b2"};
    if (kind == "logreg") names = {"w", "b"};
    if (kind == "rosenbrock") names = {"x"};
    for (const std::string& n : names) params.emplace_back(n, c.t(n).to(dtype).clone().requires_grad_());
  }
  const Tensor& p(size_t i) const { return params[i].second; }

  Tensor loss() const {
    if (kind == "logreg")  // softplus(-y * (X @ w + b)).mean() + 0.005 * (w * w).sum()
      return add(mean(softplus(mul(neg(y), add(matmul(x, p(0)), p(1))))), mul(sum(mul(p(0), p(0))), 0.005));
    if (kind == "rosenbrock") {  // (1 - a) ** 2 + 100 * (b - a * a) ** 2
      Tensor a = p(0).select(0, 0), b = p(0).select(0, 1);
      Tensor u = add(neg(a), 1.0), v = sub(b, mul(a, a));
      return add(mul(u, u), mul(mul(v, v), 100.0));
    }
    return mse_loss(linear(tanh(linear(x, p(0), p(1))), p(2), p(3)), y);
  }
  optim::Optimizer::Closure closure(optim::Optimizer& opt) {
    return [this, &opt] {
      ++calls;
      opt.zero_grad();
      Tensor l = loss();
      l.backward();
      return l.item();
    };
  }
  Tensor flat() const {
    std::vector<Tensor> parts;
    for (const auto& [n, t] : params) parts.push_back(t.detach().reshape({-1}));
    return cat(parts, 0);
  }
};

std::unique_ptr<optim::Optimizer> make_lbfgs(const test::FixtureCase& c, Problem& pb) {
  return optim::make_optimizer("lbfgs", pb.params, parse_options(c.attr("opts")));
}

double slot(const optim::Optimizer& opt, const std::string& name) {
  return opt.state().at(opt.param_groups()[0].names[0]).slots.at(name).item();
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.to(DType::F64).to_vector<double>() == b.to(DType::F64).to_vector<double>();
}

// A deep copy of an optimizer state (state_dict() aliases the live tensors).
optim::OptimizerState deep_copy(const optim::OptimizerState& s) {
  optim::OptimizerState c = s;
  for (auto& [name, ps] : c.state)
    for (auto& [k, t] : ps.slots) t = t.clone();
  return c;
}

}  // namespace

TEST_CASE("LBFGS iterates equal PyTorch's (logistic regression, MLP, Rosenbrock, with and without strong_wolfe)",
          "[optim][lbfgs]") {
  for (const auto& c : cases()) {
    SECTION(c.name) {
      Problem pb(c, DType::F64);
      auto opt = make_lbfgs(c, pb);
      const int64_t steps = c.attr_i("steps");
      const std::vector<double> losses = c.t("losses").to_vector<double>();
      const std::vector<int64_t> evals = c.t("evals").to_vector<int64_t>();
      const std::vector<int64_t> n_iter = c.t("n_iter").to_vector<int64_t>();
      const std::vector<int64_t> func_evals = c.t("func_evals").to_vector<int64_t>();
      for (int64_t s = 0; s < steps; ++s) {
        INFO("step " << s);
        pb.calls = 0;
        const double loss = opt->step(pb.closure(*opt));
        CHECK(loss == Approx(losses[s]).epsilon(1e-9));
        CHECK(pb.calls == evals[s]);
        CHECK(slot(*opt, "n_iter") == n_iter[s]);
        CHECK(slot(*opt, "func_evals") == func_evals[s]);
        CHECK_CLOSE(pb.flat(), c.t("params").select(0, s), 1e-9, 1e-12);
      }
    }
  }
}

TEST_CASE("LBFGS resumed from its state_dict mid-run continues bit-exactly (float64 and float32)",
          "[optim][lbfgs]") {
  for (const char* name : {"mlp_wolfe", "logreg_none"}) {
    for (DType dtype : {DType::F64, DType::F32}) {
      const auto& c = test::find_case(cases(), name);
      INFO(name << " " << dtype_name(dtype));
      Problem straight(c, dtype);
      auto a = make_lbfgs(c, straight);
      Problem resumed(c, dtype);
      auto b = make_lbfgs(c, resumed);
      for (int s = 0; s < 2; ++s) {
        a->step(straight.closure(*a));
        b->step(resumed.closure(*b));
      }
      // A fresh optimizer over a fresh copy of the parameters, restored from the state.
      optim::OptimizerState saved = deep_copy(b->state_dict());
      Problem restarted(c, dtype);
      for (size_t i = 0; i < restarted.params.size(); ++i) restarted.params[i].second.copy_(resumed.p(i).detach());
      auto r = make_lbfgs(c, restarted);
      r->load_state_dict(saved);
      // Scalars stay float64 whatever the parameters' dtype; vectors take the parameters'.
      const auto& slots = r->state().at(restarted.params[0].first).slots;
      CHECK(slots.at("t").dtype() == DType::F64);
      CHECK(slots.at("ro").dtype() == DType::F64);
      CHECK(slots.at("d").dtype() == dtype);
      CHECK(slots.at("old_dirs").size(0) > 0);
      for (int s = 0; s < 3; ++s) {
        a->step(straight.closure(*a));
        r->step(restarted.closure(*r));
        CHECK(bit_equal(straight.flat(), restarted.flat()));
      }
      CHECK(slot(*a, "func_evals") == slot(*r, "func_evals"));
    }
  }
}

TEST_CASE("LBFGS: a closure is required, one param group, torch's options and defaults", "[optim][lbfgs]") {
  const auto& c = test::find_case(cases(), "logreg_none");
  Problem pb(c, DType::F64);
  auto opt = optim::make_optimizer("LBFGS", pb.params, {});
  CHECK_THROWS_WITH(opt->step(), Catch::Contains("LBFGS needs a closure"));
  const optim::Options& d = opt->defaults();
  CHECK(d.at("lr") == 1.0);
  CHECK(d.at("max_iter") == 20);
  CHECK(d.at("max_eval") == 0);  // auto: max_iter * 5 / 4
  CHECK(d.at("tolerance_grad") == 1e-7);
  CHECK(d.at("tolerance_change") == 1e-9);
  CHECK(d.at("history_size") == 100);
  CHECK(d.at("line_search_fn") == 0);
  const optim::OptimizerDef& def = optim::optimizer_def("lbfgs");
  CHECK(def.needs_closure);
  CHECK(optim::from_options(def.hyper, d).at("line_search_fn") == AttrValue(std::string("none")));
  // auto = max_iter * 5 / 4: with max_iter 4 a step without line search stops after 5 evaluations
  // (4 iterations: the last does not re-evaluate), with max_eval 2 after 2.
  Problem pb2(c, DType::F64);
  optim::LBFGS limited(pb2.params, {{"max_iter", 4}, {"max_eval", 2}});
  limited.step(pb2.closure(limited));
  CHECK(pb2.calls == 2);

  std::vector<optim::ParamGroup> two = {optim::ParamGroup::from({pb.params[0]}),
                                        optim::ParamGroup::from({pb.params[1]})};
  CHECK_THROWS_WITH(optim::make_optimizer("lbfgs", two, {}),
                    Catch::Contains("LBFGS doesn't support per-parameter options (parameter groups)"));
  CHECK_THROWS_WITH(optim::make_optimizer("lbfgs", pb.params, {{"history_size", 0}}),
                    Catch::Contains("history_size"));
  CHECK_THROWS_WITH(optim::make_optimizer("lbfgs", pb.params, {{"line_search_fn", 2}}),
                    Catch::Contains("line_search_fn"));
  CHECK_THROWS_WITH(optim::make_optimizer("lbfgs", pb.params, {{"momentum", 0.9}}), Catch::Contains("momentum"));
}

TEST_CASE("LBFGS: restored state is checked (shapes of the flat vectors and history, integer counters)",
          "[optim][lbfgs]") {
  const auto& c = test::find_case(cases(), "mlp_none");
  Problem pb(c, DType::F64);
  auto opt = make_lbfgs(c, pb);
  opt->step(pb.closure(*opt));
  const optim::OptimizerState good = deep_copy(opt->state_dict());
  const std::string first = pb.params[0].first;
  auto with = [&](const std::string& slot, Tensor value) {
    optim::OptimizerState s = deep_copy(good);
    s.state.at(first).slots[slot] = value;
    return s;
  };
  const int64_t numel = pb.flat().numel();
  CHECK_THROWS_WITH(opt->load_state_dict(with("d", zeros({numel + 1}, DType::F64))),
                    Catch::Contains("w1/d has shape [" + std::to_string(numel + 1) + "]"));
  CHECK_THROWS_WITH(opt->load_state_dict(with("old_dirs", zeros({2, 3}, DType::F64))), Catch::Contains("old_dirs"));
  CHECK_THROWS_WITH(opt->load_state_dict(with("n_iter", scalar_tensor(1.5, DType::F64))),
                    Catch::Contains("expected an integer >= 0"));
  CHECK_THROWS_WITH(opt->load_state_dict(with("t", zeros({1}, DType::F64))), Catch::Contains("0-dim"));
  optim::OptimizerState missing = deep_copy(good);
  missing.state.at(first).slots.erase("ro");
  CHECK_THROWS_WITH(opt->load_state_dict(missing), Catch::Contains("slots"));
  // Inconsistent history lengths are refused at the next step.
  opt->load_state_dict(with("ro", zeros({0}, DType::F64)));
  CHECK_THROWS_WITH(opt->step(pb.closure(*opt)), Catch::Contains("old_dirs, old_stps and ro"));
  opt->load_state_dict(good);
  CHECK_NOTHROW(opt->step(pb.closure(*opt)));
}
