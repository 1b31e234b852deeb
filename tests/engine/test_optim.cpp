// Optimizers, LR schedulers and gradient clipping against PyTorch 1.13 trajectories, plus
// checkpoint/resume bit-exactness and argument validation.
// Fixtures: tests/fixtures/optim_{sgd,adam,misc}.txt (tests/fixtures/gen_optim.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <memory>
#include <sstream>

#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "engine/optim/optim.h"
#include "engine/sched/sched.h"
#include "engine/tensor/host_reads.h"
#include "tests/support/fixtures.h"

using namespace dl;

namespace {

// "x" + i without GCC 12's -Wrestrict false positive on `const char* + std::string&&`.
std::string numbered(const char* prefix, int64_t i) {
  std::string s = prefix;
  s += std::to_string(i);
  return s;
}

const std::vector<test::FixtureCase>& fixtures(const std::string& file) {
  static std::map<std::string, std::vector<test::FixtureCase>> cache;
  auto it = cache.find(file);
  if (it == cache.end()) it = cache.emplace(file, test::load_fixtures(file)).first;
  return it->second;
}

// "lr=0.1 milestones=3,8" -> {lr: "0.1", milestones: "3,8"}
std::map<std::string, std::string> parse_kv(const std::string& s) {
  std::map<std::string, std::string> out;
  std::istringstream is(s);
  std::string tok;
  while (is >> tok) {
    size_t eq = tok.find('=');
    out[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  return out;
}

std::vector<double> parse_list(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stod(item));
  return out;
}

optim::Options to_options(const std::map<std::string, std::string>& kv) {
  optim::Options o;
  for (auto& [k, v] : kv) o[k] = std::stod(v);
  return o;
}

std::unique_ptr<sched::LRScheduler> make_scheduler(const std::string& type, const std::string& opts,
                                                   optim::Optimizer& opt) {
  auto kv = parse_kv(opts);
  auto num = [&](const char* k, double dflt) { return kv.count(k) ? std::stod(kv.at(k)) : dflt; };
  auto integer = [&](const char* k, int64_t dflt) { return kv.count(k) ? std::stoll(kv.at(k)) : dflt; };
  if (type == "none") return nullptr;
  if (type == "StepLR") return std::make_unique<sched::StepLR>(opt, integer("step_size", 0), num("gamma", 0.1));
  if (type == "MultiStepLR") {
    std::vector<int64_t> ms;
    for (double v : parse_list(kv.at("milestones"))) ms.push_back(static_cast<int64_t>(v));
    return std::make_unique<sched::MultiStepLR>(opt, ms, num("gamma", 0.1));
  }
  if (type == "ExponentialLR") return std::make_unique<sched::ExponentialLR>(opt, num("gamma", 0));
  if (type == "CosineAnnealingLR")
    return std::make_unique<sched::CosineAnnealingLR>(opt, integer("T_max", 0), num("eta_min", 0.0));
  if (type == "LinearLR")
    return std::make_unique<sched::LinearLR>(opt, num("start_factor", 1.0 / 3), num("end_factor", 1.0),
                                             integer("total_iters", 5));
  if (type == "ReduceLROnPlateau") {
    sched::PlateauOptions p;
    if (kv.count("mode")) p.mode = kv.at("mode").substr(1, kv.at("mode").size() - 2);  // 'max'
    if (kv.count("threshold_mode")) p.threshold_mode = kv.at("threshold_mode").substr(1, 3);
    p.factor = num("factor", p.factor);
    p.patience = integer("patience", p.patience);
    p.threshold = num("threshold", p.threshold);
    p.cooldown = integer("cooldown", p.cooldown);
    p.min_lr = num("min_lr", p.min_lr);
    p.eps = num("eps", p.eps);
    if (kv.count("min_lrs")) p.min_lrs = parse_list(kv.at("min_lrs"));
    return std::make_unique<sched::ReduceLROnPlateau>(opt, p);
  }
  throw std::invalid_argument("unknown scheduler " + type);
}

// The fixture model: Sequential(Linear(3, 2), ReLU(), Linear(2, 2)) with PyTorch's weights.
struct Setup {
  std::shared_ptr<nn::Sequential> net;
  std::unique_ptr<optim::Optimizer> opt;
  std::unique_ptr<sched::LRScheduler> sched;
  Tensor x, y;
};

Setup make_setup(const test::FixtureCase& c, DType dtype, bool fused) {
  const auto& m = test::find_case(fixtures("optim_misc.txt"), "model");
  Setup s;
  s.net = nn::sequential({
      std::make_shared<nn::Linear>(3, 2), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(2, 2)});
  s.net->to(dtype);
  nn::StateDict sd;
  for (auto& [k, t] : s.net->state_dict()) sd.emplace_back(k, m.t(k));
  s.net->load_state_dict(sd);
  s.x = m.t("x").to(dtype);
  s.y = m.t("y").to(dtype);
  auto named = s.net->named_parameters();
  std::vector<optim::ParamGroup> groups;
  if (c.has("group0")) {
    groups.push_back(optim::ParamGroup::from({named[0], named[1]}, to_options(parse_kv(c.attr("group0")))));
    groups.push_back(optim::ParamGroup::from({named[2], named[3]}, to_options(parse_kv(c.attr("group1")))));
  } else {
    groups.push_back(optim::ParamGroup::from(named));
  }
  s.opt = optim::make_optimizer(c.attr("optimizer"), groups, to_options(parse_kv(c.attr("opt_options"))));
  s.opt->set_fused(fused);
  s.sched = make_scheduler(c.attr("scheduler"), c.attr("sched_options"), *s.opt);
  return s;
}

Tensor flat_params(const nn::Module& net) {
  std::vector<Tensor> parts;
  for (const Tensor& p : net.parameters()) parts.push_back(p.detach().reshape({-1}));
  return cat(parts, 0);
}

std::vector<double> group_lrs(const optim::Optimizer& opt) {
  std::vector<double> lrs;
  for (const auto& g : opt.param_groups()) lrs.push_back(g.get("lr"));
  return lrs;
}

struct Trajectory {
  std::vector<Tensor> params;  // after each step
  std::vector<std::vector<double>> lrs;
  std::vector<double> losses, norms;
};

// One training step exactly like gen_optim.py's.
void train_step(Setup& s, const test::FixtureCase& c, Trajectory& tr) {
  s.opt->zero_grad();
  Tensor d = s.net->forward(s.x) - s.y;
  Tensor loss = mean(d * d);
  loss.backward();
  if (c.has("clip")) {
    double v = c.attr_f("clip_value");
    if (c.attr("clip") == "norm") tr.norms.push_back(optim::clip_grad_norm_(s.net->parameters(), v));
    else optim::clip_grad_value_(s.net->parameters(), v);
  }
  s.opt->step();
  double l = loss.item();
  if (s.sched) {
    if (s.sched->needs_metric()) s.sched->step(l);
    else s.sched->step();
  }
  tr.params.push_back(flat_params(*s.net));
  tr.lrs.push_back(group_lrs(*s.opt));
  tr.losses.push_back(l);
}

Trajectory run(const test::FixtureCase& c, DType dtype, bool fused, int steps = 20) {
  Setup s = make_setup(c, dtype, fused);
  Trajectory tr;
  for (int i = 0; i < steps; ++i) train_step(s, c, tr);
  return tr;
}

void check_against_fixture(const test::FixtureCase& c, const Trajectory& tr, double rtol, double atol) {
  const Tensor& params = c.t("params");
  const Tensor& lr = c.t("lr");
  std::vector<double> loss = c.t("loss").to_vector<double>();
  REQUIRE(tr.params.size() == static_cast<size_t>(params.size(0)));
  for (size_t i = 0; i < tr.params.size(); ++i) {
    INFO(c.name << " step " << i + 1);
    CHECK_CLOSE(tr.params[i], params.select(0, static_cast<int64_t>(i)), rtol, atol);
    CHECK_CLOSE(from_vector(tr.lrs[i], {static_cast<int64_t>(tr.lrs[i].size())}),
                lr.select(0, static_cast<int64_t>(i)), 1e-12, 0);
    CHECK(tr.losses[i] == Approx(loss[i]).epsilon(rtol * 10));
  }
  if (c.has("norms")) {
    std::vector<double> norms = c.t("norms").to_vector<double>();
    REQUIRE(tr.norms.size() == norms.size());
    for (size_t i = 0; i < norms.size(); ++i) CHECK(tr.norms[i] == Approx(norms[i]).epsilon(rtol * 10));
  }
}

std::vector<const test::FixtureCase*> trajectory_cases() {
  std::vector<const test::FixtureCase*> out;
  for (const char* f : {"optim_sgd.txt", "optim_adam.txt", "optim_misc.txt"})
    for (const auto& c : fixtures(f))
      if (c.tensors.count("params")) out.push_back(&c);
  return out;
}

optim::OptimizerState deep_copy(const optim::OptimizerState& s) {
  optim::OptimizerState out = s;
  for (auto& [name, ps] : out.state)
    for (auto& [slot, t] : ps.slots) t = t.clone();
  return out;
}

}  // namespace

TEST_CASE("optimizer x scheduler trajectories match PyTorch (float64)", "[optim][sched]") {
  auto all = trajectory_cases();
  CHECK(all.size() == 4 * 7 + 4 * 7 + 5);
  for (const auto* c : all) {
    INFO("case " << c->name);
    Setup s = make_setup(*c, DType::F64, true);
    CHECK_CLOSE(from_vector(group_lrs(*s.opt), {static_cast<int64_t>(s.opt->param_groups().size())}),
                c->t("lr0"), 1e-15, 0);
    check_against_fixture(*c, run(*c, DType::F64, /*fused=*/true), 1e-9, 1e-12);
  }
}

TEST_CASE("the engine-op path gives the same bits as the fused kernels", "[optim]") {
  for (const auto* c : trajectory_cases()) {
    if (c->attr("scheduler") != "none" && c->attr("scheduler") != "StepLR") continue;
    INFO("case " << c->name);
    for (DType dt : {DType::F64, DType::F32}) {
      Trajectory a = run(*c, dt, true), b = run(*c, dt, false);
      for (size_t i = 0; i < a.params.size(); ++i) CHECK_CLOSE(a.params[i], b.params[i], 0, 0);
    }
  }
}

TEST_CASE("float32 training follows the float64 PyTorch trajectory", "[optim]") {
  // f32 rounding (6e-8 per op) accumulates over 20 steps: the largest error observed is
  // 1.4e-6 absolute on parameters of size 0.01-1 (Adam's normalised steps amplify the relative
  // error of small gradients). 2e-5 abs + 2e-5 rel leaves a 10x margin and is still far below
  // one update (lr 0.05-0.1 times gradients of ~0.1).
  for (const auto* c : trajectory_cases()) {
    if (c->attr("scheduler") != "none" && c->name.rfind("groups", 0) != 0) continue;
    INFO("case " << c->name);
    Trajectory tr = run(*c, DType::F32, true);
    const Tensor& params = c->t("params");
    for (size_t i = 0; i < tr.params.size(); ++i)
      CHECK_CLOSE(tr.params[i], params.select(0, static_cast<int64_t>(i)), 2e-5, 2e-5);
  }
}

TEST_CASE("resuming from optimizer + scheduler state is bit-exact", "[optim][sched]") {
  for (const auto* c : trajectory_cases()) {
    const std::string& n = c->name;
    if (n != "sgd_momentum/step" && n != "sgd_nesterov_wd/linear" && n != "adam_amsgrad/cosine" &&
        n != "adamw/plateau" && n != "adamw_amsgrad/multistep" && n != "groups_sgd/step" &&
        n != "groups_adam/plateau" && n != "sgd_dampening/exponential")
      continue;
    INFO("case " << n);
    for (DType dt : {DType::F32, DType::F64}) {
      Trajectory full = run(*c, dt, true);
      // First 8 steps, then "checkpoint".
      Setup a = make_setup(*c, dt, true);
      Trajectory tr;
      for (int i = 0; i < 8; ++i) train_step(a, *c, tr);
      nn::StateDict model_sd;
      for (auto& [k, t] : a.net->state_dict()) model_sd.emplace_back(k, t.clone());
      optim::OptimizerState opt_sd = deep_copy(a.opt->state_dict());
      sched::SchedulerState sched_sd = a.sched ? a.sched->state_dict() : sched::SchedulerState{};
      a = Setup();  // drop the first run entirely

      // Fresh objects, PyTorch's resume order: model, optimizer, scheduler, then load states.
      Setup b = make_setup(*c, dt, true);
      b.net->load_state_dict(model_sd);
      b.opt->load_state_dict(opt_sd);
      if (b.sched) b.sched->load_state_dict(sched_sd);
      for (int i = 8; i < 20; ++i) train_step(b, *c, tr);
      for (size_t i = 0; i < 20; ++i) {
        INFO("step " << i + 1);
        CHECK_CLOSE(tr.params[i], full.params[i], 0, 0);
        CHECK(tr.lrs[i] == full.lrs[i]);
      }
    }
  }
}

TEST_CASE("schedulers: lr sequences match PyTorch bit for bit", "[sched]") {
  int n = 0;
  for (const auto& c : fixtures("optim_misc.txt")) {
    if (c.name.rfind("sched/", 0) != 0) continue;
    INFO("case " << c.name);
    ++n;
    Tensor p1 = zeros({1}).requires_grad_(), p2 = zeros({1}).requires_grad_();
    std::vector<optim::ParamGroup> groups{optim::ParamGroup::from({{"p1", p1}}),
                                         optim::ParamGroup::from({{"p2", p2}}, {{"lr", 0.02}})};
    optim::SGD opt(groups, {.lr = 0.1});
    auto sched = make_scheduler(c.attr("scheduler"), c.attr("sched_options"), opt);
    CHECK(group_lrs(opt) == c.t("lr0").to_vector<double>());
    std::vector<double> metrics = c.t("metrics").to_vector<double>();
    const Tensor& lr = c.t("lr");
    int64_t halve_at = c.attr_i("halve_group0_at");
    for (int64_t e = 0; e < lr.size(0); ++e) {
      opt.step();  // no grads: nothing to do
      if (e == halve_at) opt.param_groups()[0].options["lr"] *= 0.5;
      if (sched->needs_metric()) sched->step(metrics[e]);
      else sched->step();
      INFO("epoch " << e + 1);
      CHECK(sched->get_last_lr() == lr.select(0, e).to_vector<double>());
      CHECK(group_lrs(opt) == sched->get_last_lr());
    }
  }
  CHECK(n == 14);
}

TEST_CASE("clip_grad_norm_ and clip_grad_value_ match PyTorch", "[optim][clip]") {
  int n = 0;
  for (const auto& c : fixtures("optim_misc.txt")) {
    bool by_norm = c.name.rfind("clip_norm/", 0) == 0, by_value = c.name.rfind("clip_value/", 0) == 0;
    if (!by_norm && !by_value) continue;
    INFO("case " << c.name);
    ++n;
    std::vector<Tensor> ps;
    for (int i = 0; i < 3; ++i) {
      Tensor g = c.t(numbered("g", i));
      Tensor p = zeros(g.shape(), DType::F64).requires_grad_();
      p.set_grad(g.clone());
      ps.push_back(p);
    }
    ps.push_back(zeros({2}).requires_grad_());  // no grad: ignored
    if (by_norm) {
      double nt = c.attr("norm_type") == "inf" ? optim::kInfNorm : c.attr_f("norm_type");
      double total = optim::clip_grad_norm_(ps, c.attr_f("max_norm"), nt);
      CHECK(total == Approx(c.attr_f("total_norm")).epsilon(1e-12));
    } else {
      optim::clip_grad_value_(ps, c.attr_f("clip_value"));
    }
    for (int i = 0; i < 3; ++i) CHECK_CLOSE(ps[i].grad(), c.t(numbered("out", i)), 1e-12, 1e-15);
    CHECK_FALSE(ps[3].grad().defined());
  }
  CHECK(n == 6);
  CHECK(optim::clip_grad_norm_({zeros({2}).requires_grad_()}, 1.0) == 0.0);
  Tensor p = zeros({2}).requires_grad_();
  p.set_grad(from_vector<float>({NAN, 1.0f}, {2}));
  CHECK_THROWS_WITH(optim::clip_grad_norm_({p}, 1.0, 2.0, true), Catch::Contains("non-finite"));
  CHECK(std::isnan(p.grad().to_vector<float>()[0]));
  CHECK(p.grad().to_vector<float>()[1] == 1.0f);  // the error comes before any scaling, as in torch
}

TEST_CASE("clip_grad_norm_async_ reads nothing back and scales like clip_grad_norm_", "[optim][clip]") {
  // Gradients of several sizes and dtypes; each norm type both clipping (max 0.5) and not (max 1e6).
  auto params = [] {
    std::vector<Tensor> ps;
    Generator g(7);
    for (int64_t n : {1, 37, 300}) {
      Tensor p = zeros({n}).requires_grad_();
      p.set_grad(randn({n}, g) * 0.7);
      ps.push_back(p);
    }
    Tensor q = zeros({5}, TensorOptions(DType::F64)).requires_grad_();
    q.set_grad(randn({5}, g, TensorOptions(DType::F64)));
    ps.push_back(q);
    ps.push_back(zeros({3}).requires_grad_());  // no gradient: ignored
    return ps;
  };
  for (double norm_type : {2.0, 1.0, 3.0, optim::kInfNorm}) {
    for (double max_norm : {0.5, 1e6}) {
      CAPTURE(norm_type, max_norm);
      std::vector<Tensor> a = params(), b = params();
      const uint64_t reads = host_read_count();
      Tensor total = optim::clip_grad_norm_async_(a, max_norm, norm_type);
      CHECK(host_read_count() == reads);
      REQUIRE(total.defined());
      CHECK(total.dtype() == DType::F64);
      CHECK(total.dim() == 0);
      CHECK(total.item() == optim::clip_grad_norm_(b, max_norm, norm_type));
      for (size_t i = 0; i < 4; ++i) CHECK(a[i].grad().to_vector<double>() == b[i].grad().to_vector<double>());
      const bool clipped = max_norm < 1;
      CHECK((a[2].grad().to_vector<double>() != params()[2].grad().to_vector<double>()) == clipped);
    }
  }
  CHECK_FALSE(optim::clip_grad_norm_async_({zeros({2}).requires_grad_()}, 1.0).defined());
  Tensor p = zeros({2}).requires_grad_();
  p.set_grad(from_vector<float>({NAN, 1.0f}, {2}));
  CHECK(std::isnan(optim::clip_grad_norm_async_({p}, 1.0).item()));
  CHECK(std::isnan(p.grad().to_vector<float>()[1]));  // a NaN norm makes every gradient NaN, as in torch
}

TEST_CASE("optimizer state uses PyTorch's slot names and skips params without grad", "[optim]") {
  Tensor a = ones({3}).requires_grad_(), b = ones({2}).requires_grad_();
  a.set_grad(from_vector<float>({1, 2, 3}, {3}));
  optim::SGD sgd({{"a", a}, {"b", b}}, {.lr = 0.1, .momentum = 0.9});
  sgd.step();
  REQUIRE(sgd.state().size() == 1);
  CHECK(sgd.state().at("a").slots.count("momentum_buffer"));
  CHECK(sgd.state().at("a").slots.at("momentum_buffer").to_vector<float>() == std::vector<float>{1, 2, 3});
  CHECK(b.to_vector<float>() == std::vector<float>{1, 1});
  CHECK(sgd.type() == "SGD");
  CHECK(sgd.defaults().at("momentum") == 0.9);

  optim::SGD plain({{"a", a}}, {.lr = 0.1});
  plain.step();
  CHECK(plain.state().empty());  // no momentum: no state

  optim::Adam adam({{"a", a}, {"b", b}}, {.lr = 0.01, .amsgrad = true});
  adam.step();
  adam.step();
  const auto& st = adam.state().at("a");
  CHECK(st.step == 2);
  CHECK(st.slots.size() == 3);
  CHECK(st.slots.count("exp_avg"));
  CHECK(st.slots.count("exp_avg_sq"));
  CHECK(st.slots.count("max_exp_avg_sq"));
  CHECK(adam.defaults().at("beta2") == 0.999);
  optim::AdamW adamw({{"a", a}});
  CHECK(adamw.type() == "AdamW");
  CHECK(adamw.defaults().at("weight_decay") == 0.01);
  CHECK(adamw.defaults().at("lr") == 1e-3);

  adam.zero_grad(false);
  CHECK(a.grad().to_vector<float>() == std::vector<float>{0, 0, 0});
  adam.zero_grad();
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("optimizer and scheduler arguments are validated with PyTorch's messages", "[optim][sched]") {
  Tensor a = ones({3}).requires_grad_();
  optim::NamedTensors params{{"a", a}};
  CHECK_THROWS_WITH(optim::SGD(params, {}), Catch::Contains("required optimization parameter lr"));
  CHECK_THROWS_WITH(optim::SGD(params, {.lr = -1}), Catch::Contains("Invalid learning rate: -1"));
  CHECK_THROWS_WITH(optim::SGD(params, {.lr = 0.1, .nesterov = true}),
                    Catch::Contains("Nesterov momentum requires a momentum and zero dampening"));
  CHECK_THROWS_WITH(optim::Adam(params, {.beta1 = 1.0}), Catch::Contains("Invalid beta parameter at index 0: 1"));
  CHECK_THROWS_WITH(optim::Adam(params, {.beta2 = -0.1}), Catch::Contains("Invalid beta parameter at index 1"));
  CHECK_THROWS_WITH(optim::AdamW(params, {}).load_state_dict(optim::SGD(params, {.lr = 1}).state_dict()),
                    Catch::Contains("optimizer state is for SGD but this optimizer is AdamW"));
  CHECK_THROWS_WITH(optim::make_optimizer("adam", params, {{"momentum", 0.9}}),
                    Catch::Contains("unknown option 'momentum'"));
  CHECK_THROWS_WITH(optim::make_optimizer("rmsprops", params, {}), Catch::Contains("unknown optimizer 'rmsprops'"));
  CHECK(optim::make_optimizer("ADAMW", params, {{"lr", 0.5}})->param_groups()[0].get("lr") == 0.5);
  CHECK_THROWS_WITH(optim::SGD(optim::NamedTensors{}, {.lr = 1}), Catch::Contains("empty parameter list"));
  CHECK_THROWS_WITH(optim::SGD(optim::NamedTensors{{"a", a}, {"a2", a}}, {.lr = 1}), Catch::Contains("appears twice"));
  std::vector<optim::ParamGroup> two{optim::ParamGroup::from(params), optim::ParamGroup::from(params)};
  CHECK_THROWS_WITH(optim::SGD(two, {.lr = 1}), Catch::Contains("more than one parameter group"));
  std::vector<optim::ParamGroup> bad{optim::ParamGroup::from(params, {{"lr", 0.1}, {"betas", 1}})};
  CHECK_THROWS_WITH(optim::SGD(bad, {.lr = 1}), Catch::Contains("unknown option 'betas'"));

  optim::SGD opt(params, {.lr = 0.1, .momentum = 0.5});
  a.set_grad(ones({3}));
  opt.step();
  optim::OptimizerState st = opt.state_dict();
  st.state["a"].slots["momentum_buffer"] = zeros({4});
  CHECK_THROWS_WITH(opt.load_state_dict(st), Catch::Contains("has shape [4], parameter has shape [3]"));
  st = opt.state_dict();
  st.param_groups[0].names[0] = "renamed";
  CHECK_THROWS_WITH(opt.load_state_dict(st), Catch::Contains("is 'renamed', expected 'a'"));

  CHECK_THROWS_WITH(sched::LinearLR(opt, 1.5), Catch::Contains("Starting multiplicative factor"));
  CHECK_THROWS_WITH(sched::ReduceLROnPlateau(opt, {.factor = 1.0}), Catch::Contains("Factor should be < 1.0."));
  CHECK_THROWS_WITH(sched::ReduceLROnPlateau(opt, {.mode = "up"}), Catch::Contains("mode up is unknown!"));
  CHECK_THROWS_WITH(sched::ReduceLROnPlateau(opt, {.min_lrs = {0.1, 0.2}}), Catch::Contains("expected 1 min_lrs, got 2"));
  sched::StepLR step(opt, 2);
  CHECK_THROWS_WITH(step.step(0.5), Catch::Contains("takes no metric"));
  sched::ReduceLROnPlateau plateau(opt);
  CHECK_THROWS_WITH(plateau.step(), Catch::Contains("needs the metric"));
  CHECK_THROWS_WITH(step.load_state_dict(plateau.state_dict()),
                    Catch::Contains("scheduler state is for ReduceLROnPlateau but this scheduler is StepLR"));
}

TEST_CASE("scheduler construction follows PyTorch: initial step, initial_lr, base_lrs", "[sched]") {
  Tensor a = ones({1}).requires_grad_();
  optim::SGD opt({{"a", a}}, {.lr = 0.3});
  sched::LinearLR warm(opt);  // start_factor 1/3
  CHECK(warm.last_epoch() == 0);
  CHECK(opt.param_groups()[0].get("lr") == 0.3 * (1.0 / 3));
  CHECK(opt.param_groups()[0].get("initial_lr") == 0.3);
  CHECK(warm.base_lrs() == std::vector<double>{0.3});
  CHECK(warm.get_last_lr() == std::vector<double>{0.3 * (1.0 / 3)});
  // A second scheduler keeps the recorded initial_lr (group.setdefault).
  sched::StepLR step(opt, 3);
  CHECK(step.base_lrs() == std::vector<double>{0.3});
  sched::SchedulerState st = warm.state_dict();
  CHECK(st.type == "LinearLR");
  CHECK(st.scalars.at("last_epoch") == 0);
  CHECK(st.scalars.at("total_iters") == 5);
  CHECK(st.lists.at("base_lrs") == std::vector<double>{0.3});
  // Resuming with last_epoch needs initial_lr in every group.
  optim::SGD fresh({{"a", a}}, {.lr = 0.3});
  CHECK_THROWS_WITH(sched::StepLR(fresh, 3, 0.1, 5), Catch::Contains("param 'initial_lr' is not specified"));
  fresh.param_groups()[0].options["initial_lr"] = 1.0;
  sched::StepLR resumed(fresh, 3, 0.1, 5);  // epoch 6: 6 % 3 == 0 -> lr * gamma
  CHECK(resumed.last_epoch() == 6);
  CHECK(fresh.param_groups()[0].get("lr") == Approx(0.03));
  CHECK(resumed.base_lrs() == std::vector<double>{1.0});
}

TEST_CASE("fused optimizer kernels on large tensors (multi-threaded chunks)", "[optim]") {
  // 3 chunks of the parallel grain: results must not depend on OMP_NUM_THREADS (ctest runs
  // this with 1 and 2) and must equal the engine-op path.
  Generator gen(9);
  for (bool adam : {false, true}) {
    Tensor p1 = randn({100000}, gen).requires_grad_(), p2 = p1.detach().clone().requires_grad_();
    Tensor g = randn({100000}, gen);
    std::unique_ptr<optim::Optimizer> o1, o2;
    if (adam) {
      o1 = std::make_unique<optim::AdamW>(optim::NamedTensors{{"p", p1}}, optim::AdamWOptions{});
      o2 = std::make_unique<optim::AdamW>(optim::NamedTensors{{"p", p2}}, optim::AdamWOptions{});
    } else {
      o1 = std::make_unique<optim::SGD>(optim::NamedTensors{{"p", p1}}, optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true});
      o2 = std::make_unique<optim::SGD>(optim::NamedTensors{{"p", p2}}, optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true});
    }
    o2->set_fused(false);
    for (int i = 0; i < 3; ++i) {
      p1.set_grad(g.clone());
      p2.set_grad(g.clone());
      o1->step();
      o2->step();
    }
    CHECK_CLOSE(p1, p2, 0, 0);
  }
}

TEST_CASE("cuda: optimizer steps on GPU parameters match the CPU", "[cuda][optim]") {
  REQUIRE_CUDA_DEVICE();
  for (const auto* c : trajectory_cases()) {
    if (c->name != "sgd_nesterov_wd/step" && c->name != "adam_amsgrad/cosine" && c->name != "adamw/none") continue;
    INFO("case " << c->name);
    Setup s = make_setup(*c, DType::F64, true);
    s.net->to(Device::cuda(0));
    s.x = s.x.to(Device::cuda(0));
    s.y = s.y.to(Device::cuda(0));
    Trajectory tr;
    for (int i = 0; i < 20; ++i) train_step(s, *c, tr);
    for (Tensor& t : tr.params) t = t.cpu();
    check_against_fixture(*c, tr, 1e-9, 1e-12);
  }
}

TEST_CASE("restored optimizer and scheduler states are checked like constructor arguments", "[optim][sched][restore]") {
  Tensor a = ones({3}).requires_grad_();
  optim::NamedTensors params{{"a", a}};
  optim::SGD opt(params, {.lr = 0.1, .momentum = 0.5});
  a.set_grad(ones({3}));
  opt.step();
  // Optimizer: every slot its options need (a partial state would be recreated or crash Adam's
  // update), a floating-point slot, a step >= 0.
  optim::OptimizerState st = opt.state_dict();
  st.state["a"].slots.clear();
  CHECK_THROWS_WITH(opt.load_state_dict(st), Catch::Contains("a has slots [none], SGD with these options keeps [momentum_buffer]"));
  st = opt.state_dict();
  st.state["a"].slots["momentum_buffer"] = zeros({3}, DType::I64);
  CHECK_THROWS_WITH(opt.load_state_dict(st), Catch::Contains("a/momentum_buffer is int64, expected a floating-point tensor"));
  st = opt.state_dict();
  st.state["a"].step = -1;
  CHECK_THROWS_WITH(opt.load_state_dict(st), Catch::Contains("a has step -1, expected an integer >= 0"));
  optim::Adam adam(params, {.amsgrad = true});
  adam.step();
  st = adam.state_dict();
  st.state["a"].slots.erase("exp_avg_sq");
  CHECK_THROWS_WITH(adam.load_state_dict(st),
                    Catch::Contains("has slots [exp_avg, max_exp_avg_sq], Adam with these options keeps [exp_avg, exp_avg_sq, max_exp_avg_sq]"));
  CHECK_NOTHROW(adam.load_state_dict(adam.state_dict()));

  // Schedulers: a loaded value obeys the constructor's rules (T_max = 0 divided by zero), and
  // an integer member never takes NaN, a fraction or a value beyond int64 (undefined casts).
  sched::CosineAnnealingLR cos(opt, 10);
  const sched::SchedulerState good = cos.state_dict();
  sched::SchedulerState ss = good;
  ss.scalars["T_max"] = 0;
  CHECK_THROWS_WITH(cos.load_state_dict(ss), Catch::Contains("T_max must be positive"));
  for (double bad : {std::nan(""), 2.5, 1e300}) {
    ss = good;
    ss.scalars["last_epoch"] = bad;
    CHECK_THROWS_WITH(cos.load_state_dict(ss), Catch::Contains("CosineAnnealingLR state: last_epoch is") &&
                                                   Catch::Contains("expected an integer"));
  }
  sched::StepLR step(opt, 3);
  ss = step.state_dict();
  ss.scalars["step_size"] = 0;
  CHECK_THROWS_WITH(step.load_state_dict(ss), Catch::Contains("step_size must be positive"));
  sched::MultiStepLR multi(opt, {2, 4});
  ss = multi.state_dict();
  ss.lists["milestones"] = {2, std::nan("")};
  CHECK_THROWS_WITH(multi.load_state_dict(ss), Catch::Contains("milestones is nan, expected an integer"));
  sched::LinearLR lin(opt);
  ss = lin.state_dict();
  ss.scalars["start_factor"] = std::nan("");
  CHECK_THROWS_WITH(lin.load_state_dict(ss), Catch::Contains("Starting multiplicative factor"));
  sched::ReduceLROnPlateau plateau(opt);
  ss = plateau.state_dict();
  ss.scalars["patience"] = std::nan("");
  CHECK_THROWS_WITH(plateau.load_state_dict(ss), Catch::Contains("patience is nan, expected an integer"));
  CHECK_NOTHROW(cos.load_state_dict(good));
}
