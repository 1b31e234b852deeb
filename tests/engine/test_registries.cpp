// Walks the optimizer, scheduler and loss registries: every entry is documented, builds from
// its schema's defaults (plus its `example` for required values), runs, and (optimizers,
// schedulers) round-trips its state so that a resumed copy continues bit for bit. A new
// registration is covered here without writing a test for it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/autograd/autograd.h"
#include "engine/nn/loss_registry.h"
#include "engine/ops.h"
#include "engine/optim/registry.h"
#include "engine/sched/registry.h"
#include "tests/support/ctc_inputs.h"

using namespace dl;

namespace {

void check_documented(const std::string& what, const std::string& doc, const std::vector<AttrSchema>& attrs) {
  INFO(what);
  CHECK_FALSE(doc.empty());
  for (const AttrSchema& a : attrs) {
    INFO(a.name);
    CHECK_FALSE(a.doc.empty());
    if (a.default_value) CHECK(check_attr(a, *a.default_value).empty());
  }
}

// A tiny least-squares problem: two parameter tensors in two param groups.
struct Problem {
  Tensor w, b, x, y;
  explicit Problem(uint64_t seed) {
    Generator g(seed);
    w = randn({3, 2}, g).requires_grad_();
    b = randn({2}, g).requires_grad_();
    x = randn({5, 3}, g);
    y = randn({5, 2}, g);
  }
  Problem(const Problem& o, bool) : x(o.x), y(o.y) {  // same data, a copy of the parameters
    NoGradGuard ng;
    w = o.w.clone().detach().requires_grad_();
    b = o.b.clone().detach().requires_grad_();
  }
  // Two groups (the second with `second` overrides); one when the optimizer allows only one (LBFGS).
  std::vector<optim::ParamGroup> groups(const optim::Options& second, bool one_group = false) const {
    if (one_group) {
      optim::ParamGroup g;
      g.names = {"w", "b"};
      g.params = {w, b};
      return {g};
    }
    optim::ParamGroup g0, g1;
    g0.names = {"w"};
    g0.params = {w};
    g1.names = {"b"};
    g1.params = {b};
    g1.options = second;
    return {g0, g1};
  }
  double closure_loss() {
    w.zero_grad(true);
    b.zero_grad(true);
    Tensor l = mse_loss(add(matmul(x, w), b), y);
    l.backward();
    return l.item();
  }
};

std::vector<float> values(const Tensor& t) { return t.detach().contiguous().to_vector<float>(); }

bool same_bits(const Tensor& a, const Tensor& b) {
  auto va = values(a), vb = values(b);
  return va.size() == vb.size() && std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0;
}

// The default options with lr scaled down, as the second group's overrides.
optim::Options second_group(const optim::OptimizerDef& def) {
  optim::Options o;
  optim::Options d = optim::default_options(def);
  if (d.count("lr")) o["lr"] = d.at("lr") * 0.5;
  return o;
}

}  // namespace

TEST_CASE("every registered optimizer is documented, steps, and resumes bit-exactly", "[registry][optim]") {
  REQUIRE(optim::optimizer_defs().size() >= 3);
  for (const optim::OptimizerDef& def : optim::optimizer_defs()) {
    INFO("optimizer " << def.name);
    check_documented(def.name, def.doc, def.hyper);
    CHECK_FALSE(def.torch_name.empty());
    CHECK(optim::find_optimizer_def(def.torch_name) == &def);
    const optim::Options defaults = optim::default_options(def);
    CHECK(optim::check_options(def, defaults).empty());
    CHECK(optim::from_options(def.hyper, defaults).size() == def.hyper.size());

    Problem p(7);
    auto opt = def.make(p.groups(second_group(def), def.needs_closure), defaults);
    REQUIRE(opt);
    CHECK(opt->type() == def.torch_name);
    const std::vector<float> w0 = values(p.w);
    for (int i = 0; i < 2; ++i) {
      double l = opt->step([&] { return p.closure_loss(); });
      CHECK(std::isfinite(l));
    }
    CHECK(values(p.w) != w0);  // it moved
    // Slots are exactly what slot_names promises, at most max_state_tensors per parameter.
    for (const auto& [name, st] : opt->state()) {
      INFO(name);
      const auto& g = opt->param_groups()[name == "w" || def.needs_closure ? 0 : 1];
      std::vector<std::string> want = opt->slot_names(g.options), got;
      for (const auto& kv : st.slots) got.push_back(kv.first);
      std::sort(want.begin(), want.end());
      if (!def.needs_closure || name == "w") CHECK(got == want);  // LBFGS keeps its state on the first parameter
      // max_state_tensors counts parameter-sized tensors (the memory estimate); scalars are free.
      const Tensor& param = name == "w" ? p.w : p.b;
      int sized = 0;
      for (const auto& kv : st.slots) sized += kv.second.shape() == param.shape();
      if (!def.needs_closure) CHECK(sized <= def.max_state_tensors);
    }

    // Resume: a fresh optimizer over copied parameters loads the state and continues identically.
    Problem q(p, true);
    auto resumed = def.make(q.groups(second_group(def), def.needs_closure), defaults);
    resumed->load_state_dict(opt->state_dict());
    for (int i = 0; i < 3; ++i) {
      opt->step([&] { return p.closure_loss(); });
      resumed->step([&] { return q.closure_loss(); });
    }
    CHECK(same_bits(p.w, q.w));
    CHECK(same_bits(p.b, q.b));

    // A bad value of every bounded number is refused by the registration's checks.
    for (const AttrSchema& a : def.hyper)
      if (a.min && a.kind == AttrKind::Float && a.components.empty()) {
        optim::Options bad = defaults;
        bad[a.name] = *a.min - 1.0;
        CHECK_FALSE(optim::check_options(def, bad).empty());
      }
  }
}

TEST_CASE("every registered scheduler is documented, steps, and resumes bit-exactly", "[registry][sched]") {
  REQUIRE(sched::scheduler_defs().size() >= 7);
  for (const sched::SchedulerDef& def : sched::scheduler_defs()) {
    INFO("scheduler " << def.name);
    check_documented(def.name, def.doc, def.attrs);
    if (!def.make) continue;  // "none"
    CHECK_FALSE(def.torch_name.empty());
    for (const AttrSchema& a : def.attrs)
      if (a.required) CHECK(def.example.count(a.name) == 1);

    sched::SchedulerConfig c{def.name, def.example, {}};
    if (def.takes_children)
      c.children = {sched::SchedulerConfig{"linear", {}, {}}, sched::SchedulerConfig{"exponential", {{"gamma", 0.9}}, {}}};
    const sched::SchedulerContext ctx{40};
    auto build = [&](Problem& p, std::unique_ptr<optim::Optimizer>& opt) {
      opt = optim::make_optimizer("sgd", p.groups({{"lr", 0.05}}), {{"lr", 0.1}, {"momentum", 0.9}});
      return sched::make_scheduler(*opt, c, ctx);
    };
    Problem p(3);
    std::unique_ptr<optim::Optimizer> opt;
    auto s = build(p, opt);
    REQUIRE(s);
    CHECK(s->type() == def.torch_name);
    CHECK(s->needs_metric() == def.metric_driven);
    auto advance = [&](sched::LRScheduler& sc, optim::Optimizer& o, Problem& pr, int n, int start) {
      for (int i = 0; i < n; ++i) {
        o.step([&] { return pr.closure_loss(); });
        if (def.metric_driven)
          sc.step(1.0 / (1 + (start + i) % 4));  // improves, then stalls
        else
          sc.step();
      }
    };
    advance(*s, *opt, p, 12, 0);
    for (double lr : s->get_last_lr()) {
      CHECK(std::isfinite(lr));
      CHECK(lr >= 0);
    }
    Problem q(p, true);
    std::unique_ptr<optim::Optimizer> opt2;
    auto s2 = build(q, opt2);
    opt2->load_state_dict(opt->state_dict());
    s2->load_state_dict(s->state_dict());
    advance(*s, *opt, p, 9, 12);
    advance(*s2, *opt2, q, 9, 12);
    REQUIRE(s->get_last_lr().size() == s2->get_last_lr().size());
    for (size_t g = 0; g < s->get_last_lr().size(); ++g) CHECK(s->get_last_lr()[g] == s2->get_last_lr()[g]);
    CHECK(same_bits(p.w, q.w));
  }
}

TEST_CASE("every registered loss is documented, builds from its defaults and differentiates", "[registry][loss]") {
  REQUIRE(nn::loss_defs().size() >= 7);
  const int64_t N = 4, C = 3;
  const std::vector<int64_t> labels = {0, 2, 1, 2};
  for (const nn::LossDef& def : nn::loss_defs()) {
    INFO("loss " << def.name);
    check_documented(def.name, def.doc, def.attrs);
    CHECK_FALSE(def.torch_name.empty());
    REQUIRE(find_attr(def.attrs, "reduction"));
    nn::LossFn fn = nn::make_loss(def.name, {});
    Generator g(11);
    // Pair losses with a +1/-1 target per pair take [N] or [N, D] inputs (margin_ranking: [N]).
    const bool pair_target = def.class_target == nn::ClassTarget::none &&
                             std::count(def.inputs.begin(), def.inputs.end(), "target") == 1;
    const Shape in_shape = pair_target && def.name == "margin_ranking_loss" ? Shape{N} : Shape{N, C};
    std::vector<Tensor> args, leaves;
    for (const std::string& role : def.inputs) {
      if (Tensor t = dl::test::ctc_role_arg(role, N, C, g); t.defined()) {  // ctc_loss's sequence roles
        if (t.requires_grad()) leaves.push_back(t);
        args.push_back(t);
        continue;
      }
      if (role != "target") {
        Tensor x = add(mul(rand(in_shape, g), 0.9), 0.05).detach().requires_grad_();
        leaves.push_back(x);
        args.push_back(x);
        continue;
      }
      Tensor lab = from_vector(labels, {N});
      switch (def.class_target) {
        case nn::ClassTarget::index: args.push_back(lab); break;
        case nn::ClassTarget::one_hot: args.push_back(one_hot(lab, C, DType::F32)); break;
        case nn::ClassTarget::signed_one_hot: args.push_back(add(mul(one_hot(lab, C, DType::F32), 2.0), -1.0)); break;
        case nn::ClassTarget::multilabel_index: {
          std::vector<int64_t> v(N * C, -1);
          for (int64_t i = 0; i < N; ++i) v[i * C] = labels[i];
          args.push_back(from_vector(v, {N, C}));
          break;
        }
        case nn::ClassTarget::none: args.push_back(from_vector(std::vector<float>{1, -1, 1, -1}, {N})); break;
      }
    }
    Tensor l = fn(args);
    REQUIRE(l.numel() == 1);
    CHECK(std::isfinite(l.item()));
    l.backward();
    for (const Tensor& x : leaves) {
      REQUIRE(x.grad().defined());
      for (float v : values(x.grad())) CHECK(std::isfinite(v));
    }
  }
}

TEST_CASE("registries refuse unknown names and bad values with the valid choices", "[registry]") {
  CHECK_THROWS_WITH(optim::optimizer_def("adamm"), Catch::Contains("valid: ") && Catch::Contains("adam"));
  CHECK_THROWS_WITH(sched::scheduler_def("cosine"), Catch::Contains("cosine_annealing"));
  CHECK_THROWS_WITH(nn::loss_def("mse"), Catch::Contains("mse_loss"));
  CHECK(optim::find_optimizer_def("AdamW") == optim::find_optimizer_def("adamw"));
  const auto& sgd = optim::optimizer_def("sgd");
  CHECK_THAT(optim::check_options(sgd, {{"lr", -1}, {"momentum", 0}, {"dampening", 0}, {"weight_decay", 0}, {"nesterov", 0}}),
             Catch::Contains("lr"));
  CHECK_THAT(optim::check_options(sgd, {{"lr", 0.1}, {"momentum", 0}, {"dampening", 0}, {"weight_decay", 0}, {"nesterov", 1}}),
             Catch::Contains("nesterov"));
  CHECK_THAT(optim::check_options(sgd, {{"lr", 0.1}, {"momentum", 0}, {"dampening", 0}, {"weight_decay", 0}, {"nesterov", 0.5}}),
             Catch::Contains("0 or 1"));
  // betas are stored as beta1/beta2 and read back as the list.
  const auto& adam = optim::optimizer_def("adam");
  optim::Options o = optim::to_options(adam.hyper, {{"betas", std::vector<double>{0.8, 0.9}}});
  CHECK(o.at("beta1") == 0.8);
  CHECK(o.at("beta2") == 0.9);
  CHECK(std::get<std::vector<double>>(optim::from_options(adam.hyper, o).at("betas")) == std::vector<double>{0.8, 0.9});
  Problem p(1);
  auto opt = optim::make_optimizer("sgd", p.groups({}), {{"lr", 0.1}});
  CHECK_THROWS_WITH(sched::make_scheduler(*opt, {"multi_step", {{"milestones", std::vector<int64_t>{5, 3}}}, {}}, {}),
                    Catch::Contains("increasing"));
  CHECK_THROWS_WITH(sched::make_scheduler(*opt, {"step", {{"step_sizee", int64_t{2}}}, {}}, {}),
                    Catch::Contains("step_sizee"));
}
