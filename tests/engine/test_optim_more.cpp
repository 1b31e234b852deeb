// Adadelta, Adagrad, Adamax, ASGD, RMSprop, Rprop, NAdam, RAdam and SparseAdam against
// PyTorch 1.13: 20-step trajectories with two param groups under no scheduler / StepLR /
// CosineAnnealingLR, bit-exact resume from state_dict, the registered defaults, PyTorch's
// argument messages and the state each keeps.
// Fixtures: tests/fixtures/optim_more.txt (tests/fixtures/gen_optim_more.py), and the MLP of
// optim_misc.txt (tests/fixtures/gen_optim.py).
#include <catch2/catch.hpp>

#include <cctype>
#include <cmath>
#include <memory>
#include <sstream>

#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "engine/optim/optim.h"
#include "engine/optim/registry.h"
#include "engine/sched/registry.h"
#include "tests/support/fixtures.h"

using namespace dl;

namespace {

const std::vector<test::FixtureCase>& fixtures() {
  static const std::vector<test::FixtureCase> c = test::load_fixtures("optim_more.txt");
  return c;
}

// The cases named "<prefix>..." ("defaults/", "invalid/"), or the trajectories (prefix "").
std::vector<const test::FixtureCase*> cases(const std::string& prefix = "") {
  std::vector<const test::FixtureCase*> out;
  for (const auto& c : fixtures())
    if (prefix.empty() ? c.has("params") : c.name.rfind(prefix, 0) == 0) out.push_back(&c);
  return out;
}

// "lr=0.1 t0=5" -> {lr: "0.1", t0: "5"}
std::vector<std::pair<std::string, std::string>> parse_kv(const std::string& s) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream is(s);
  std::string tok;
  while (is >> tok) {
    size_t eq = tok.find('=');
    out.emplace_back(tok.substr(0, eq), tok.substr(eq + 1));
  }
  return out;
}

optim::Options options(const std::string& s) {
  optim::Options o;
  for (const auto& [k, v] : parse_kv(s)) o[k] = std::stod(v);
  return o;
}

// Scheduler attributes as YAML would give them: "5" an integer, "0.5" a number.
std::unique_ptr<sched::LRScheduler> make_scheduler(const test::FixtureCase& c, optim::Optimizer& opt) {
  sched::SchedulerConfig cfg{c.attr("scheduler"), {}, {}};
  for (const auto& [k, v] : parse_kv(c.attr("sched_options"))) {
    if (v.find_first_of(".e") == std::string::npos) cfg.attrs[k] = static_cast<int64_t>(std::stoll(v));
    else cfg.attrs[k] = std::stod(v);
  }
  return sched::make_scheduler(opt, cfg, {});
}

// One fixture run: the parameters (two groups), the loss of step i, optimizer and scheduler.
struct Setup {
  std::shared_ptr<nn::Module> net;          // the MLP (null for SparseAdam)
  optim::NamedTensors params;               // group 0 = first half, group 1 = second half
  std::function<Tensor(int64_t)> loss;
  std::unique_ptr<optim::Optimizer> opt;
  std::unique_ptr<sched::LRScheduler> sched;
};

// The MLP of gen_optim.py: Sequential(Linear(3, 2), ReLU(), Linear(2, 2)), mse on fixed x, y.
void build_mlp(Setup& s, TensorOptions to) {
  static const std::vector<test::FixtureCase> misc = test::load_fixtures("optim_misc.txt");
  const auto& m = test::find_case(misc, "model");
  auto net = nn::sequential(
      {std::make_shared<nn::Linear>(3, 2), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(2, 2)});
  net->to(to.dtype);
  nn::StateDict sd;
  for (auto& [k, t] : net->state_dict()) sd.emplace_back(k, m.t(k));
  net->load_state_dict(sd);
  net->to(to.device);
  Tensor x = m.t("x").to(to.dtype).to(to.device), y = m.t("y").to(to.dtype).to(to.device);
  s.params = net->named_parameters();
  s.loss = [net, x, y](int64_t) {
    Tensor d = net->forward(x) - y;
    return mean(d * d);
  };
  s.net = net;
}

// gen_optim_more.py's embeddings: out = e0[idx0[i]] + e1[idx1[i]] (as one-hot matmuls, whose
// weight gradients are the embeddings' gradients: zero rows where nothing was looked up).
void build_embeddings(Setup& s, const test::FixtureCase& c, TensorOptions to) {
  // Copies: the fixture's tensors must not become the trained parameters.
  auto param = [&](const char* key) { return c.t(key).to(to.dtype).to(to.device).clone().requires_grad_(); };
  Tensor e0 = param("e0"), e1 = param("e1");
  Tensor idx0 = c.t("idx0"), idx1 = c.t("idx1"), y = c.t("y").to(to.dtype).to(to.device);
  s.params = {{"e0", e0}, {"e1", e1}};
  s.loss = [=](int64_t i) {
    auto lookup = [&](const Tensor& idx, const Tensor& e) {
      return matmul(one_hot(idx.select(0, i), e.size(0), to.dtype).to(to.device), e);
    };
    Tensor out = lookup(idx0, e0) + lookup(idx1, e1);
    Tensor d = out - y;
    return mean(d * d);
  };
}

Setup make_setup(const test::FixtureCase& c, TensorOptions to, bool fused = true) {
  Setup s;
  if (c.has("e0")) build_embeddings(s, c, to);
  else build_mlp(s, to);
  const size_t half = s.params.size() / 2;
  optim::NamedTensors first(s.params.begin(), s.params.begin() + static_cast<std::ptrdiff_t>(half));
  optim::NamedTensors second(s.params.begin() + static_cast<std::ptrdiff_t>(half), s.params.end());
  std::vector<optim::ParamGroup> groups{optim::ParamGroup::from(first, options(c.attr("group0"))),
                                        optim::ParamGroup::from(second, options(c.attr("group1")))};
  s.opt = optim::make_optimizer(c.attr("optimizer"), groups, options(c.attr("opt_options")));
  s.opt->set_fused(fused);
  s.sched = make_scheduler(c, *s.opt);
  return s;
}

struct Trajectory {
  std::vector<Tensor> params;  // flattened, after each step
  std::vector<std::vector<double>> lrs;
  std::vector<double> losses;
};

void train_step(Setup& s, int64_t i, Trajectory& tr) {
  s.opt->zero_grad();
  Tensor loss = s.loss(i);
  loss.backward();
  s.opt->step();
  if (s.sched) s.sched->step();
  std::vector<Tensor> flat;
  for (const auto& [name, p] : s.params) flat.push_back(p.detach().cpu().reshape({-1}));
  tr.params.push_back(cat(flat, 0));
  std::vector<double> lrs;
  for (const auto& g : s.opt->param_groups()) lrs.push_back(g.get("lr"));
  tr.lrs.push_back(lrs);
  tr.losses.push_back(loss.item());
}

Trajectory run(const test::FixtureCase& c, TensorOptions to, bool fused = true) {
  Setup s = make_setup(c, to, fused);
  Trajectory tr;
  for (int64_t i = 0; i < 20; ++i) train_step(s, i, tr);
  return tr;
}

}  // namespace

TEST_CASE("more optimizers: trajectories with two param groups and schedulers match PyTorch (float64)", "[optim]") {
  REQUIRE(cases().size() == 36);
  for (const auto* cp : cases()) {
    const test::FixtureCase& c = *cp;
    INFO("case " << c.name);
    Trajectory tr = run(c, DType::F64);
    const Tensor& params = c.t("params");
    std::vector<double> loss = c.t("loss").to_vector<double>();
    REQUIRE(tr.params.size() == static_cast<size_t>(params.size(0)));
    for (size_t i = 0; i < tr.params.size(); ++i) {
      INFO("step " << i + 1);
      const auto row = static_cast<int64_t>(i);
      CHECK_CLOSE(tr.params[i], params.select(0, row), 1e-9, 1e-12);
      CHECK(tr.lrs[i] == c.t("lr").select(0, row).to_vector<double>());
      CHECK(tr.losses[i] == Approx(loss[i]).epsilon(1e-8));
    }
  }
}

TEST_CASE("more optimizers: float32 training follows the float64 PyTorch trajectory", "[optim]") {
  // f32 rounding accumulated over 20 steps: the largest difference seen is 5e-7 absolute
  // (RMSprop; relative errors are larger only on parameters near zero): 1e-6 relative + 2e-6
  // absolute, tighter than test_optim.cpp's 2e-5 for SGD/Adam.
  for (const auto* c : cases()) {
    INFO("case " << c->name);
    Trajectory tr = run(*c, DType::F32);
    for (size_t i = 0; i < tr.params.size(); ++i)
      CHECK_CLOSE(tr.params[i], c->t("params").select(0, static_cast<int64_t>(i)), 1e-6, 2e-6);
  }
}

TEST_CASE("more optimizers: the fused multi-tensor kernels give the engine-op path's bits", "[optim]") {
  // kernels/optim_update.h repeats each optimizer's engine-op sequence with its roundings; any
  // reordering (or a contracted multiply-add) shows up here as a differing bit.
  for (const auto* c : cases()) {
    INFO("case " << c->name);
    for (DType dt : {DType::F32, DType::F64}) {
      INFO("dtype " << dtype_name(dt));
      Trajectory fused = run(*c, dt, true), ops = run(*c, dt, false);
      for (size_t i = 0; i < fused.params.size(); ++i) {
        INFO("step " << i + 1);
        CHECK_CLOSE(fused.params[i], ops.params[i], 0, 0);
      }
    }
  }
}

TEST_CASE("more optimizers: state_dict -> load_state_dict into fresh objects continues bit-exactly", "[optim]") {
  for (const auto* cp : cases()) {
    const test::FixtureCase& c = *cp;
    INFO("case " << c.name);
    for (DType dt : {DType::F32, DType::F64}) {
      Trajectory full = run(c, dt), tr;
      Setup a = make_setup(c, dt);
      for (int64_t i = 0; i < 8; ++i) train_step(a, i, tr);
      std::vector<Tensor> weights;
      for (const auto& [name, p] : a.params) weights.push_back(p.detach().clone());
      // The state aliases the first optimizer's tensors; nothing changes them once it is gone.
      optim::OptimizerState opt_sd = a.opt->state_dict();
      sched::SchedulerState sched_sd = a.sched ? a.sched->state_dict() : sched::SchedulerState{};
      a = Setup();

      // Fresh objects, PyTorch's resume order: weights, optimizer, scheduler, then load states.
      Setup b = make_setup(c, dt);
      for (size_t k = 0; k < weights.size(); ++k) {
        NoGradGuard ng;
        b.params[k].second.copy_(weights[k]);
      }
      b.opt->load_state_dict(opt_sd);
      if (b.sched) b.sched->load_state_dict(sched_sd);
      for (int64_t i = 8; i < 20; ++i) train_step(b, i, tr);
      for (size_t i = 0; i < 20; ++i) {
        INFO("step " << i + 1);
        CHECK_CLOSE(tr.params[i], full.params[i], 0, 0);
        CHECK(tr.lrs[i] == full.lrs[i]);
      }
    }
  }
}

TEST_CASE("more optimizers: registered under torch's names with torch's defaults", "[optim]") {
  auto defaults = cases("defaults/");
  REQUIRE(defaults.size() == 9);
  for (const auto* c : defaults) {
    const std::string torch_name = c->name.substr(std::string("defaults/").size());
    INFO(torch_name);
    const optim::OptimizerDef& def = optim::optimizer_def(torch_name);
    CHECK(def.torch_name == torch_name);
    std::string lower;
    for (char ch : torch_name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    CHECK(def.name == (lower == "sparseadam" ? "sparse_adam" : lower));
    CHECK_FALSE(def.doc.empty());
    CHECK(def.max_state_tensors >= 1);
    CHECK(optim::default_options(def) == options(c->attr("defaults")));
    // Built without options, an optimizer holds exactly these defaults.
    const optim::NamedTensors params{{"p", zeros({2}).requires_grad_()}};
    CHECK(optim::make_optimizer(torch_name, params, {})->defaults() == options(c->attr("defaults")));
  }
}

TEST_CASE("more optimizers: invalid options throw PyTorch's messages", "[optim]") {
  auto invalid = cases("invalid/");
  REQUIRE(invalid.size() == 35);
  const optim::NamedTensors params{{"p", zeros({2}).requires_grad_()}};
  for (const auto* c : invalid) {
    INFO(c->attr("optimizer") << " " << c->attr("options"));
    const std::string& type = c->attr("optimizer");
    // As the optimizer's options, and as a param group's (checked when the group is added).
    CHECK_THROWS_WITH(optim::make_optimizer(type, params, options(c->attr("options"))),
                      type + ": " + c->attr("message"));
    std::vector<optim::ParamGroup> groups{optim::ParamGroup::from(params, options(c->attr("options")))};
    CHECK_THROWS_WITH(optim::make_optimizer(type, groups, {}), type + ": " + c->attr("message"));
    // The registry's check (what configs/ reports for YAML) refuses the same values.
    optim::Options o = optim::default_options(optim::optimizer_def(type));
    for (const auto& [k, v] : options(c->attr("options"))) o[k] = v;
    CHECK_FALSE(optim::check_options(optim::optimizer_def(type), o).empty());
  }
  CHECK_THROWS_WITH(optim::make_optimizer("rmsprop", params, {{"betas", 0.9}}),
                    Catch::Contains("RMSprop: unknown option 'betas'"));
  CHECK_THROWS_WITH(optim::RMSprop(params, {{"bogus", 1}}), Catch::Contains("RMSprop: unknown option 'bogus'"));
  CHECK_THROWS_WITH(optim::RMSprop(params, {{"centered", 0.5}}),
                    Catch::Contains("centered: expected 0 or 1 (false/true), got 0.5"));
  CHECK_THROWS_WITH(optim::Adagrad(params, {{"lr", std::nan("")}}), "Adagrad: Invalid learning rate: nan");
}

TEST_CASE("more optimizers: state slots are PyTorch's state keys", "[optim]") {
  struct Expect {
    const char* type;
    optim::Options options;
    std::vector<std::string> slots;
  };
  const std::vector<Expect> expect{
      {"adadelta", {}, {"acc_delta", "square_avg"}},
      {"adagrad", {}, {"sum"}},
      {"adamax", {}, {"exp_avg", "exp_inf"}},
      {"asgd", {}, {"ax", "eta", "mu"}},
      {"rmsprop", {}, {"square_avg"}},
      {"rmsprop", {{"momentum", 0.9}, {"centered", 1}}, {"grad_avg", "momentum_buffer", "square_avg"}},
      {"rprop", {}, {"prev", "step_size"}},
      {"nadam", {}, {"exp_avg", "exp_avg_sq", "mu_product"}},
      {"radam", {}, {"exp_avg", "exp_avg_sq"}},
      {"sparse_adam", {}, {"exp_avg", "exp_avg_sq"}},
  };
  for (const Expect& e : expect) {
    INFO(e.type);
    Tensor a = ones({3}, DType::F64).requires_grad_(), b = ones({2}, DType::F64).requires_grad_();
    auto opt = optim::make_optimizer(e.type, optim::NamedTensors{{"a", a}, {"b", b}}, e.options);
    a.set_grad(from_vector<double>({1, -2, 3}, {3}));
    opt->step();
    opt->step();
    REQUIRE(opt->state().size() == 1);  // b has no gradient: no state, not updated
    CHECK(b.to_vector<double>() == std::vector<double>{1, 1});
    const optim::ParamState& st = opt->state().at("a");
    CHECK(st.step == 2);
    std::vector<std::string> slots;
    int shaped = 0;  // slots the size of the parameter: what max_state_tensors estimates
    for (const auto& [name, t] : st.slots) {
      slots.push_back(name);
      shaped += t.shape() == a.shape();
    }
    CHECK(slots == e.slots);
    CHECK(shaped <= optim::optimizer_def(e.type).max_state_tensors);
    CHECK(opt->slot_names(opt->param_groups()[0].options).size() == e.slots.size());
    CHECK_NOTHROW(opt->load_state_dict(opt->state_dict()));
  }
}

TEST_CASE("ASGD and NAdam keep their scalars as 0-dim float32 tensors, like torch", "[optim]") {
  Tensor a = ones({3}, DType::F64).requires_grad_();
  a.set_grad(from_vector<double>({1, -2, 3}, {3}));
  optim::ASGD asgd(optim::NamedTensors{{"a", a}}, {{"lr", 0.1}, {"t0", 0.0}});
  asgd.step();
  asgd.step();
  const optim::ParamState& st = asgd.state().at("a");
  for (const char* slot : {"eta", "mu"}) {
    INFO(slot);
    CHECK(st.slots.at(slot).dim() == 0);
    CHECK(st.slots.at(slot).dtype() == DType::F32);
  }
  // torch: eta = torch.tensor(lr / (1 + lambd * lr * step) ** alpha), mu = torch.tensor(1 / max(1, step - t0))
  CHECK(st.slots.at("eta").item() == static_cast<float>(0.1 / std::pow(1 + 1e-4 * 0.1 * 2, 0.75)));
  CHECK(st.slots.at("mu").item() == 0.5f);
  // Restored (e.g. from a float64 checkpoint), they stay float32.
  optim::OptimizerState sd = asgd.state_dict();
  sd.state["a"].slots["mu"] = scalar_tensor(0.25, DType::F64);
  asgd.load_state_dict(sd);
  CHECK(asgd.state().at("a").slots.at("mu").dtype() == DType::F32);
  CHECK(asgd.state().at("a").slots.at("mu").item() == 0.25);
  CHECK(asgd.state().at("a").slots.at("ax").dtype() == DType::F64);
  sd = asgd.state_dict();
  sd.state["a"].slots["eta"] = zeros({3}, DType::F64);
  CHECK_THROWS_WITH(asgd.load_state_dict(sd), Catch::Contains("a/eta has shape [3], expected a 0-dim tensor"));
  sd.state["a"].slots["eta"] = scalar_tensor(1, DType::I64);
  CHECK_THROWS_WITH(asgd.load_state_dict(sd), Catch::Contains("a/eta is int64, expected a floating-point tensor"));
  sd.state["a"].slots["eta"] = scalar_tensor(0.05, DType::F64);
  sd.state["a"].slots["ax"] = zeros({}, DType::F64);
  CHECK_THROWS_WITH(asgd.load_state_dict(sd), Catch::Contains("a/ax has shape [], parameter has shape [3]"));

  optim::NAdam nadam(optim::NamedTensors{{"a", a}});
  nadam.step();
  const Tensor& mu_product = nadam.state().at("a").slots.at("mu_product");
  CHECK(mu_product.dim() == 0);
  CHECK(mu_product.dtype() == DType::F32);
  CHECK(mu_product.item() == static_cast<float>(0.9 * (1 - 0.5 * std::pow(0.96, 0.004))));
  sd = nadam.state_dict();
  nadam.load_state_dict(sd);
  CHECK(nadam.state().at("a").slots.at("mu_product").dtype() == DType::F32);
  CHECK(nadam.state().at("a").slots.at("exp_avg").dtype() == DType::F64);
  sd.state["a"].slots["mu_product"] = ones({1});
  CHECK_THROWS_WITH(nadam.load_state_dict(sd), Catch::Contains("a/mu_product has shape [1], expected a 0-dim tensor"));
}

TEST_CASE("SparseAdam updates only the rows whose gradient is not all zero", "[optim]") {
  Tensor w = from_vector<double>({1, 2, 3, 4, 5, 6}, {3, 2}).requires_grad_();
  optim::SparseAdam opt(optim::NamedTensors{{"w", w}}, {{"lr", 0.1}});
  w.set_grad(from_vector<double>({0.5, 0, 0, 0, 0, -1}, {3, 2}));  // rows 0 and 2
  opt.step();
  // First Adam step of a touched element: -lr * sign(g); an element with g = 0 in a touched
  // row still takes part (its moments decay, here from 0), an untouched row is left alone.
  CHECK_CLOSE(w.detach(), from_vector<double>({0.9, 2, 3, 4, 5, 6.1}, {3, 2}), 1e-6, 0);
  w.set_grad(from_vector<double>({0, 0, 0, 0, 0, 0}, {3, 2}));
  const Tensor before = opt.state().at("w").slots.at("exp_avg").clone();
  opt.step();  // nothing touched: no change, but the step still counts (torch: per step())
  CHECK_CLOSE(w.detach(), from_vector<double>({0.9, 2, 3, 4, 5, 6.1}, {3, 2}), 1e-6, 0);
  CHECK_CLOSE(opt.state().at("w").slots.at("exp_avg"), before, 0, 0);
  CHECK(opt.state().at("w").step == 2);
}

TEST_CASE("cuda: more optimizers on GPU parameters follow the PyTorch trajectories", "[cuda][optim]") {
  REQUIRE_CUDA_DEVICE();
  for (const auto* c : cases()) {
    INFO("case " << c->name);
    Trajectory tr = run(*c, TensorOptions(DType::F64, Device::cuda(0)));
    for (size_t i = 0; i < tr.params.size(); ++i)
      CHECK_CLOSE(tr.params[i], c->t("params").select(0, static_cast<int64_t>(i)), 1e-9, 1e-12);
  }
}
