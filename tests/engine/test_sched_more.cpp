// The schedulers of issue 10 (LambdaLR, MultiplicativeLR, ConstantLR, PolynomialLR, CyclicLR,
// OneCycleLR, CosineAnnealingWarmRestarts, SequentialLR, ChainedScheduler) and the lambda
// expression language: 300-step lr (and momentum / beta1) curves against PyTorch 1.13 bit for
// bit, mid-run resume, and clear errors for bad options and expressions.
// Fixtures: tests/fixtures/sched.txt, sched_cyclic.txt, expr.txt (tests/fixtures/gen_sched.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <memory>
#include <numbers>
#include <sstream>

#include "engine/ops.h"
#include "engine/optim/optim.h"
#include "engine/sched/registry.h"
#include "engine/sched/sched.h"
#include "tests/support/fixtures.h"

using namespace dl;

namespace {

const std::vector<test::FixtureCase>& fixtures(const std::string& file) {
  static std::map<std::string, std::vector<test::FixtureCase>> cache;
  auto it = cache.find(file);
  if (it == cache.end()) it = cache.emplace(file, test::load_fixtures(file)).first;
  return it->second;
}

std::vector<std::string> words(const std::string& s, char sep = ' ') {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string w;
  while (std::getline(ss, w, sep))
    if (!w.empty()) out.push_back(w);
  return out;
}

// A fixture value ("0.5", "1", "3 9", "0.95 ** epoch") read as the registry schema's kind.
AttrValue parse_value(const AttrSchema& a, const std::string& v) {
  switch (a.kind) {
    case AttrKind::Bool: return v != "0";
    case AttrKind::Int: return static_cast<int64_t>(std::stoll(v));
    case AttrKind::Float: return std::stod(v);
    case AttrKind::IntList: {
      std::vector<int64_t> out;
      for (const auto& w : words(v)) out.push_back(std::stoll(w));
      return out;
    }
    case AttrKind::FloatList: {
      std::vector<double> out;
      for (const auto& w : words(v)) out.push_back(std::stod(w));
      return out;
    }
    default: return v;
  }
}

// The scheduler config a case describes under `prefix` ("type", "a.KEY", "c0.type", ...).
sched::SchedulerConfig config_of(const test::FixtureCase& c, const std::string& prefix = "") {
  sched::SchedulerConfig cfg;
  cfg.type = c.attr(prefix + "type");
  const sched::SchedulerDef& def = sched::scheduler_def(cfg.type);
  const std::string ap = prefix + "a.";
  for (const auto& [k, v] : c.attrs) {
    if (k.rfind(ap, 0) != 0) continue;
    const std::string name = k.substr(ap.size());
    const AttrSchema* a = find_attr(def.attrs, name);
    if (!a) throw std::logic_error("fixture attribute " + k + " is not in the " + cfg.type + " schema");
    cfg.attrs[name] = parse_value(*a, v);
  }
  for (int i = 0; c.has(prefix + "c" + std::to_string(i) + ".type"); ++i)
    cfg.children.push_back(config_of(c, prefix + "c" + std::to_string(i) + "."));
  return cfg;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& kind) {
  Tensor p1 = zeros({1}).requires_grad_(), p2 = zeros({1}).requires_grad_();
  std::vector<optim::ParamGroup> groups{optim::ParamGroup::from({{"p1", p1}}),
                                       optim::ParamGroup::from({{"p2", p2}}, {{"lr", 0.02}})};
  if (kind == "sgd") return optim::make_optimizer("sgd", groups, {{"lr", 0.1}, {"momentum", 0.9}});
  return optim::make_optimizer("adam", groups, {{"lr", 0.1}});
}

// Cases with per-group values (torch lists) use the C++ API; the rest the registry.
std::unique_ptr<sched::LRScheduler> make_sched(const test::FixtureCase& c, optim::Optimizer& opt) {
  sched::SchedulerConfig cfg = config_of(c);
  const sched::SchedulerContext ctx{.total_steps = c.attr_i("total_steps")};
  if (!c.has("per_group")) return sched::make_scheduler(opt, cfg, ctx);
  fill_attr_defaults(sched::scheduler_def(cfg.type).attrs, cfg.attrs);
  std::map<std::string, std::vector<double>> pg;
  for (const auto& kv : words(c.attr("per_group"))) {
    const size_t eq = kv.find('=');
    for (const auto& w : words(kv.substr(eq + 1), ',')) pg[kv.substr(0, eq)].push_back(std::stod(w));
  }
  auto vals = [&](const char* k) { return pg.count(k) ? pg[k] : std::vector<double>{attr_float(cfg.attrs, k)}; };
  if (cfg.type == "cyclic") {
    sched::CyclicOptions o;
    o.base_lr = vals("base_lr");
    o.max_lr = vals("max_lr");
    o.step_size_up = attr_int(cfg.attrs, "step_size_up");
    o.step_size_down = attr_int(cfg.attrs, "step_size_down");
    o.mode = attr_string(cfg.attrs, "mode");
    o.gamma = attr_float(cfg.attrs, "gamma");
    o.cycle_momentum = attr_bool(cfg.attrs, "cycle_momentum");
    o.base_momentum = vals("base_momentum");
    o.max_momentum = vals("max_momentum");
    return std::make_unique<sched::CyclicLR>(opt, o);
  }
  REQUIRE(cfg.type == "one_cycle");
  sched::OneCycleOptions o;
  o.max_lr = vals("max_lr");
  o.total_steps = attr_int(cfg.attrs, "total_steps");
  o.base_momentum = vals("base_momentum");
  o.max_momentum = vals("max_momentum");
  return std::make_unique<sched::OneCycleLR>(opt, o);
}

std::vector<double> group_values(const optim::Optimizer& opt, const std::string& key) {
  std::vector<double> out;
  for (const auto& g : opt.param_groups()) out.push_back(g.get(key));
  return out;
}

std::string momentum_key(const optim::Optimizer& opt) { return opt.defaults().count("beta1") ? "beta1" : "momentum"; }

struct Run {
  std::unique_ptr<optim::Optimizer> opt;
  std::unique_ptr<sched::LRScheduler> sched;
  std::vector<std::vector<double>> lrs, moms;  // after each step

  explicit Run(const test::FixtureCase& c) : opt(make_optimizer(c.attr("optimizer"))), sched(make_sched(c, *opt)) {}
  void step() {
    opt->step();  // no gradients: nothing to update
    sched->step();
    lrs.push_back(group_values(*opt, "lr"));
    moms.push_back(group_values(*opt, momentum_key(*opt)));
  }
};

std::vector<const test::FixtureCase*> all_cases() {
  std::vector<const test::FixtureCase*> out;
  for (const char* f : {"sched.txt", "sched_cyclic.txt"})
    for (const auto& c : fixtures(f)) out.push_back(&c);
  return out;
}

// A plain optimizer with neither momentum nor betas (like torch's Adagrad, for CyclicLR).
class PlainOptimizer : public optim::Optimizer {
 public:
  explicit PlainOptimizer(std::vector<optim::ParamGroup> groups) : Optimizer("Plain", {{"lr", 0.1}}) {
    init_groups(std::move(groups));
  }
  using Optimizer::step;
  void step() override {}
  std::vector<std::string> slot_names(const optim::Options&) const override { return {}; }

 protected:
  void validate(const optim::Options&) const override {}
};

std::vector<optim::ParamGroup> two_groups() {
  Tensor p1 = zeros({1}).requires_grad_(), p2 = zeros({1}).requires_grad_();
  return {optim::ParamGroup::from({{"p1", p1}}), optim::ParamGroup::from({{"p2", p2}}, {{"lr", 0.02}})};
}

double eval(const std::string& src, double epoch = 0) { return sched::Expr(src).eval(epoch); }

}  // namespace

TEST_CASE("new schedulers: 300-step lr and momentum curves match PyTorch bit for bit", "[sched]") {
  int n = 0, with_momentum = 0;
  for (const test::FixtureCase* c : all_cases()) {
    INFO("case " << c->name);
    ++n;
    Run run(*c);
    CHECK(group_values(*run.opt, "lr") == c->t("lr0").to_vector<double>());
    if (c->has("mom0")) {
      ++with_momentum;
      CHECK(group_values(*run.opt, momentum_key(*run.opt)) == c->t("mom0").to_vector<double>());
    }
    const Tensor& lr = c->t("lr");
    for (int64_t e = 0; e < lr.size(0); ++e) {
      run.step();
      INFO("step " << e + 1);
      REQUIRE(run.lrs.back() == lr.select(0, e).to_vector<double>());
      REQUIRE(run.sched->get_last_lr() == run.lrs.back());
      if (c->has("mom")) REQUIRE(run.moms.back() == c->t("mom").select(0, e).to_vector<double>());
    }
  }
  CHECK(n == 34);
  CHECK(with_momentum == 10);
}

TEST_CASE("new schedulers: resuming mid-run from optimizer + scheduler state is bit-identical", "[sched][restore]") {
  for (const test::FixtureCase* c : all_cases()) {
    const int64_t steps = c->t("lr").size(0);
    Run full(*c);
    for (int64_t e = 0; e < steps; ++e) full.step();
    for (int64_t stop : {int64_t{1}, int64_t{37}, int64_t{150}, steps - 1}) {
      INFO("case " << c->name << ", resumed after step " << stop);
      Run first(*c);
      for (int64_t e = 0; e < stop; ++e) first.step();
      const optim::OptimizerState opt_sd = first.opt->state_dict();
      const sched::SchedulerState sched_sd = first.sched->state_dict();
      // torch's order: build optimizer and scheduler (which changes the lr), then load both.
      Run resumed(*c);
      resumed.opt->load_state_dict(opt_sd);
      resumed.sched->load_state_dict(sched_sd);
      CHECK(resumed.sched->state_dict().scalars == sched_sd.scalars);
      CHECK(resumed.sched->state_dict().lists == sched_sd.lists);
      CHECK(resumed.sched->state_dict().strings == sched_sd.strings);
      for (int64_t e = stop; e < steps; ++e) {
        resumed.step();
        REQUIRE(resumed.lrs.back() == full.lrs[static_cast<size_t>(e)]);
        REQUIRE(resumed.moms.back() == full.moms[static_cast<size_t>(e)]);
      }
    }
  }
}

TEST_CASE("composite scheduler state holds each child's state under its index", "[sched][restore]") {
  const test::FixtureCase& c = test::find_case(fixtures("sched.txt"), "sequential/three");
  Run run(c);
  for (int i = 0; i < 60; ++i) run.step();
  sched::SchedulerState s = run.sched->state_dict();
  CHECK(s.type == "SequentialLR");
  CHECK(s.lists.at("milestones") == std::vector<double>{50, 150});
  CHECK(s.strings.at("0.type") == "ConstantLR");
  CHECK(s.strings.at("1.type") == "ExponentialLR");
  CHECK(s.strings.at("2.type") == "StepLR");
  CHECK(s.scalars.at("1.gamma") == 0.99);
  CHECK(s.scalars.at("1.last_epoch") == 10);  // restarted at the milestone 50 with step(0)

  Run other(c);
  sched::SchedulerState bad = s;
  bad.strings["1.type"] = "StepLR";
  const sched::SchedulerState fresh = other.sched->state_dict();
  CHECK_THROWS_WITH(other.sched->load_state_dict(bad),
                    Catch::Contains("scheduler state is for StepLR but this scheduler is ExponentialLR"));
  CHECK(other.sched->state_dict().scalars == fresh.scalars);  // child 0 was loaded, then rolled back
  bad = s;
  bad.strings["3.type"] = "StepLR";
  CHECK_THROWS_WITH(other.sched->load_state_dict(bad), Catch::Contains("state holds 4 schedulers, this one has 3"));
  bad = s;
  bad.lists["milestones"] = {150, 50};
  CHECK_THROWS_WITH(other.sched->load_state_dict(bad), Catch::Contains("milestones do not fit"));

  const test::FixtureCase& cyc = test::find_case(fixtures("sched_cyclic.txt"), "cyclic/triangular");
  Run cyclic(cyc);
  const sched::SchedulerState good = cyclic.sched->state_dict();
  sched::SchedulerState cs = good;
  cs.strings["mode"] = "sawtooth";
  CHECK_THROWS_WITH(cyclic.sched->load_state_dict(cs), Catch::Contains("mode 'sawtooth' is invalid"));
  CHECK(cyclic.sched->state_dict().strings == good.strings);  // a rejected state changes nothing
  cs = good;
  cs.strings["momentum_key"] = "beta1";
  CHECK_THROWS_WITH(cyclic.sched->load_state_dict(cs), Catch::Contains("momentum_key 'beta1' is not an option of SGD"));
}

TEST_CASE("lambda expressions follow Python's grammar and arithmetic", "[sched][expr]") {
  CHECK(eval("-2 ** 2") == -4);
  CHECK(eval("2 ** -1") == 0.5);
  CHECK(eval("2 ** 3 ** 2") == 512);
  CHECK(eval("(2 ** 3) ** 2") == 64);
  CHECK(eval("1 - 2 - 3") == -4);
  CHECK(eval("24 / 4 / 2") == 3);
  CHECK(eval("7 // 2") == 3);
  CHECK(eval("-7 // 2") == -4);
  CHECK(eval("-7 % 3") == 2);
  CHECK(eval("7 % -3") == -2);
  CHECK(eval("7.5 // 2") == 3);
  CHECK(eval("2 + 3 * 4 ** 2 / 8") == 8);
  CHECK(eval("--+-1") == -1);
  CHECK(eval(".5 + 1. + 1e-3 * 1000 + 2E1") == 22.5);
  CHECK(eval("pi") == std::numbers::pi);
  CHECK(eval("epoch / 4 + step", 10) == 12.5);
  CHECK(eval("floor(-0.5) + ceil(0.2) + abs(-3)") == 3);
  CHECK(eval("max(1, 5, 3) - min(4, 2, 8)") == 3);
  CHECK(eval("log(8, 2)") == std::log(8.0) / std::log(2.0));
  CHECK(eval("exp(1) + sqrt(2) + cos(1) + sin(1) + log(3)") ==
        std::exp(1.0) + std::sqrt(2.0) + std::cos(1.0) + std::sin(1.0) + std::log(3.0));
  CHECK(eval("0.95 ** epoch", 7) == std::pow(0.95, 7.0));
  // Python's ints: epoch and 3 are ints and carry no negative zero; / and floats do.
  CHECK_FALSE(std::signbit(eval("-epoch", 0)));
  CHECK_FALSE(std::signbit(eval("0 * -1")));
  CHECK_FALSE(std::signbit(eval("ceil(-0.5)")));
  CHECK(std::signbit(eval("-(epoch / 1)", 0)));
  CHECK(std::signbit(eval("-0.0")));
  CHECK(std::signbit(eval("6.0 % -3")));
  CHECK_FALSE(std::signbit(eval("6 % -3")));
  // Depth and length limits hold exactly at the limit.
  const std::string deep64 = std::string(64, '(') + "1" + std::string(64, ')');
  CHECK(eval(deep64) == 1);
  std::string long_sum = "1";
  while (long_sum.size() + 2 <= sched::Expr::kMaxLength) long_sum += "+1";
  CHECK(eval(long_sum) == 500);  // a left-deep chain of 499 additions: evaluated without recursion
  CHECK(sched::Expr().eval(3) == 0);
}

TEST_CASE("lambda expressions evaluate like Python's eval (400 random expressions)", "[sched][expr]") {
  int n = 0, errors = 0;
  for (const auto& c : fixtures("expr.txt")) {
    const std::string& text = c.attr("expr");
    INFO("expression " << text);
    ++n;
    sched::Expr f(text);
    const std::vector<double> epochs = c.t("epochs").to_vector<double>(), want = c.t("value").to_vector<double>();
    const std::vector<int64_t> ok = c.t("ok").to_vector<int64_t>();
    for (size_t i = 0; i < epochs.size(); ++i) {
      INFO("epoch " << epochs[i]);
      if (ok[i] == 2) continue;  // an int beyond 2**53 in Python
      if (ok[i] == 1) {
        const double got = f.eval(epochs[i]);
        CHECK(got == want[i]);
        CHECK(std::signbit(got) == std::signbit(want[i]));
      } else {
        ++errors;
        CHECK_THROWS_AS(f.eval(epochs[i]), std::invalid_argument);
      }
    }
  }
  CHECK(n == 400);
  CHECK(errors > 100);  // the fixture exercises the error paths too
}

TEST_CASE("bad lambda expressions are refused with the column and what was expected", "[sched][expr]") {
  auto problem = [](const std::string& s) { return sched::expression_problem(s); };
  CHECK(problem("0.95 ** epoch").empty());
  CHECK(problem("0.95 ** epcoh") ==
        "unknown name 'epcoh' at column 9 (valid: epoch, step, pi, min, max, exp, log, sqrt, cos, sin, floor, ceil, "
        "abs)");
  CHECK(problem("") == "empty expression (expected e.g. \"0.95 ** epoch\")");
  CHECK(problem("   ") == "empty expression (expected e.g. \"0.95 ** epoch\")");
  CHECK(problem("(1 + 2") == "expected ')' at column 7 to close the '(' at column 1, got end of expression");
  CHECK(problem("min(1, 2") == "expected ')' at column 9 to close the '(' at column 4, got end of expression");
  CHECK(problem("2 ^ epoch") == "unexpected character '^' at column 3 (use ** for powers)");
  CHECK(problem("epoch; 1") == "unexpected character ';' at column 6");
  CHECK(problem("1 +") == "expected a number, a name or '(' at column 4, got end of expression");
  CHECK(problem("1 2") == "unexpected '2' at column 3 (expected an operator or the end of the expression)");
  CHECK(problem("2 * (3))") == "unexpected ')' at column 8 (expected an operator or the end of the expression)");
  CHECK(problem("exp") == "'exp' at column 1 is a function: call it as exp(...)");
  CHECK(problem("epoch(1)") == "'epoch' at column 1 is not a function");
  CHECK(problem("tan(1)") == "unknown function 'tan' at column 1 (valid: epoch, step, pi, min, max, exp, log, "
                             "sqrt, cos, sin, floor, ceil, abs)");
  CHECK(problem("sqrt(1, 2)") == "sqrt() at column 1 takes 1 argument, got 2");
  CHECK(problem("1 + min(1)") == "min() at column 5 takes at least 2 arguments, got 1");
  CHECK(problem("log()") == "log() at column 1 takes 1 or 2 arguments, got 0");
  CHECK(problem("1e") == "invalid number '1e' at column 1");
  CHECK(problem("1.2.3") == "invalid number '1.2.' at column 1");
  CHECK(problem("2epoch") == "invalid number '2e' at column 1");
  CHECK(problem("1e999") == "number 1e999 at column 1 is out of range");
  // User input can't recurse without bound or be arbitrarily long.
  CHECK_THAT(problem(std::string(65, '(') + "1" + std::string(65, ')')),
             Catch::StartsWith("expression nested too deeply at column 65"));
  CHECK_THAT(problem(std::string(100, '-') + "1"), Catch::StartsWith("expression nested too deeply at column 65"));
  std::string tower = "2";
  for (int i = 0; i < 70; ++i) tower += " ** 2";
  CHECK_THAT(problem(tower), Catch::StartsWith("expression nested too deeply"));
  CHECK_THAT(problem("min(" + std::string(70, '(') + "1"), Catch::StartsWith("expression nested too deeply"));
  CHECK(problem(std::string(1001, '1')) == "expression is 1001 characters long (at most 1000)");
  CHECK_THROWS_AS(sched::Expr("epcoh"), std::invalid_argument);
}

TEST_CASE("lambda expressions fail where Python raises, naming the epoch", "[sched][expr]") {
  CHECK_THROWS_WITH(eval("1 / epoch", 0), "expression '1 / epoch': division by zero at column 3 (epoch = 0)");
  CHECK_THROWS_WITH(eval("epoch // 0", 4), Catch::Contains("division by zero at column 7 (epoch = 4)"));
  CHECK_THROWS_WITH(eval("epoch % (epoch - 4)", 4), Catch::Contains("division by zero at column 7"));
  CHECK_THROWS_WITH(eval("log(epoch)", 0), Catch::Contains("log(0.0) is undefined (math domain error) at column 1"));
  CHECK_THROWS_WITH(eval("log(2, 1)"), Catch::Contains("math domain error"));
  CHECK_THROWS_WITH(eval("sqrt(epoch - 5)", 1), Catch::Contains("sqrt of the negative number -4.0"));
  CHECK_THROWS_WITH(eval("(-8) ** (1 / 3)"), Catch::Contains("a negative number (-8.0) raised to a fractional power"));
  CHECK(eval("(-2) ** 3") == -8);
  CHECK_THROWS_WITH(eval("0 ** -1"), Catch::Contains("0 cannot be raised to a negative power"));
  CHECK_THROWS_WITH(eval("exp(epoch)", 1000), Catch::Contains("too large (overflow) at column 1 (epoch = 1000)"));
  CHECK_THROWS_WITH(eval("10 ** epoch", 400), Catch::Contains("too large (overflow) at column 4"));
  CHECK_THROWS_WITH(eval("1e300 * 1e300"), Catch::Contains("too large (overflow) at column 7"));
}

TEST_CASE("scheduler registrations: the new schedulers, their schemas and config errors", "[sched][registry]") {
  for (const char* name : {"lambda", "multiplicative", "cyclic", "one_cycle", "cosine_annealing_warm_restarts",
                           "constant", "polynomial", "sequential", "chained"}) {
    INFO(name);
    const sched::SchedulerDef* def = sched::find_scheduler_def(name);
    REQUIRE(def);
    CHECK(!def->doc.empty());
    CHECK(sched::find_scheduler_def(def->torch_name) == def);
    for (const AttrSchema& a : def->attrs) CHECK(!a.doc.empty());
    CHECK(def->takes_children == (std::string(name) == "sequential" || std::string(name) == "chained"));
    CHECK(!def->metric_driven);
  }
  CHECK(sched::scheduler_def("reduce_on_plateau").metric_driven);

  // lr_lambda's rule is the parser: a config reader reports its message at the YAML value.
  const AttrSchema* lambda = find_attr(sched::scheduler_def("lambda").attrs, "lr_lambda");
  REQUIRE(lambda);
  REQUIRE(lambda->rule);
  CHECK(lambda->rule(AttrValue{std::string("0.95 ** epoch")}).empty());
  CHECK(lambda->rule(AttrValue{std::string("0.95 ** epcoh")}).rfind("unknown name 'epcoh' at column 9", 0) == 0);
  CHECK_THAT(check_attr(*lambda, AttrValue{std::string("0.95 ** epcoh")}), Catch::StartsWith("expected an expression"));

  optim::SGD opt(two_groups(), {.lr = 0.1, .momentum = 0.9});
  const sched::SchedulerContext ctx{.total_steps = 100};
  auto make = [&](sched::SchedulerConfig c) { return sched::make_scheduler(opt, c, ctx); };
  CHECK_THROWS_WITH(make({"lambda", {{"lr_lambda", std::string("0.95 ** epcoh")}}, {}}),
                    Catch::Contains("lambda: lr_lambda: expected an expression") &&
                        Catch::Contains("(unknown name 'epcoh' at column 9"));
  CHECK_THROWS_WITH(make({"lambda", {}, {}}), Catch::Contains("lambda: lr_lambda is required"));
  CHECK_THROWS_WITH(make({"cyclic", {{"base_lr", 0.01}, {"max_lr", 0.1}, {"mode", std::string("sawtooth")}}, {}}),
                    Catch::Contains("cyclic: mode: expected one of 'triangular', 'triangular2', 'exp_range'"));
  CHECK_THROWS_WITH(make({"one_cycle", {{"max_lr", 0.1}, {"pct_start", 1.5}}, {}}),
                    Catch::Contains("one_cycle: pct_start: expected a number in [0, 1]"));
  const sched::SchedulerConfig warm{"linear", {}, {}}, cosine{"cosine_annealing", {}, {}};
  CHECK_THROWS_WITH(make({"sequential", {{"milestones", std::vector<int64_t>{8, 3}}}, {warm, cosine, cosine}}),
                    Catch::Contains("sequential: milestones: expected strictly increasing values, got 8 then 3"));
  CHECK_THROWS_WITH(make({"sequential", {{"milestones", std::vector<int64_t>{5, 9}}}, {warm, cosine}}),
                    Catch::Contains("number of schedulers 2 and the number of milestones to be equal to 2"));
  CHECK_THROWS_WITH(make({"sequential", {{"milestones", std::vector<int64_t>{}}}, {}}),
                    Catch::Contains("needs at least one scheduler"));
  CHECK_THROWS_WITH(make({"chained", {}, {warm, {"none", {}, {}}}}),
                    Catch::Contains("chained: scheduler 1 is 'none'"));
  CHECK_THROWS_WITH(make({"chained", {}, {warm, {"reduce_on_plateau", {}, {}}}}),
                    Catch::Contains("scheduler at index 1 (ReduceLROnPlateau) is stepped with a metric"));
  CHECK_THROWS_WITH(make({"sequential", {{"milestones", std::vector<int64_t>{5}}}, {{"chained", {}, {warm}}, cosine}}),
                    Catch::Contains("can't rewind a ChainedScheduler"));
  CHECK_THROWS_WITH(make({"sequential", {{"milestones", std::vector<int64_t>{5}}},
                          {warm, {"sequential", {{"milestones", std::vector<int64_t>{}}}, {cosine}}}}),
                    Catch::Contains("SequentialLR at index 1"));
  CHECK_THROWS_WITH(make({"constant", {}, {warm}}), Catch::Contains("constant takes no `schedulers:` list"));
  // `auto` (0) is the context's total steps.
  auto one_cycle = make({"one_cycle", {{"max_lr", 0.1}}, {}});
  CHECK(dynamic_cast<sched::OneCycleLR&>(*one_cycle).total_steps == 100);
}

TEST_CASE("new schedulers check their arguments like PyTorch", "[sched]") {
  optim::SGD sgd(two_groups(), {.lr = 0.1, .momentum = 0.9});
  PlainOptimizer plain(two_groups());
  sched::CyclicOptions cyc{.base_lr = {0.01}, .max_lr = {0.1}};
  CHECK_THROWS_WITH(sched::CyclicLR(plain, cyc),
                    Catch::Contains("CyclicLR: optimizer must support momentum with `cycle_momentum` option enabled"));
  CHECK(plain.param_groups()[0].get("lr") == 0.1);  // nothing changed by the failed construction
  cyc.cycle_momentum = false;
  CHECK_NOTHROW(sched::CyclicLR(plain, cyc));
  cyc.max_lr = {0.1, 0.2, 0.3};
  CHECK_THROWS_WITH(sched::CyclicLR(sgd, cyc), Catch::Contains("expected 2 values for max_lr, got 3"));
  cyc.max_lr = {0.1};
  cyc.mode = "sawtooth";
  CHECK_THROWS_WITH(sched::CyclicLR(sgd, cyc), Catch::Contains("mode 'sawtooth' is invalid"));

  sched::OneCycleOptions oc{.max_lr = {0.1}, .total_steps = 0};
  CHECK_THROWS_WITH(sched::OneCycleLR(sgd, oc), Catch::Contains("Expected positive integer total_steps, but got 0"));
  oc.total_steps = 10;
  oc.pct_start = 1.5;
  CHECK_THROWS_WITH(sched::OneCycleLR(sgd, oc), Catch::Contains("Expected float between 0 and 1 pct_start, but got 1.5"));
  oc.pct_start = 0.3;
  oc.anneal_strategy = "exp";
  CHECK_THROWS_WITH(sched::OneCycleLR(sgd, oc), Catch::Contains("anneal_strategy must by one of 'cos' or 'linear'"));
  oc.anneal_strategy = "cos";
  CHECK_THROWS_WITH(sched::OneCycleLR(plain, oc), Catch::Contains("OneCycleLR: optimizer must support momentum"));
  sched::OneCycleLR one(sgd, oc);
  for (int i = 0; i < 10; ++i) one.step();
  CHECK_THROWS_WITH(one.step(), Catch::Contains("Tried to step 12 times. The specified number of total steps is 10"));

  CHECK_THROWS_WITH(sched::CosineAnnealingWarmRestarts(sgd, 0), Catch::Contains("Expected positive integer T_0, but got 0"));
  CHECK_THROWS_WITH(sched::CosineAnnealingWarmRestarts(sgd, 5, 0), Catch::Contains("Expected integer T_mult >= 1, but got 0"));
  CHECK_THROWS_WITH(sched::ConstantLR(sgd, 1.5), Catch::Contains("Constant multiplicative factor expected to be between 0 and 1."));
  CHECK_THROWS_WITH(sched::ConstantLR(sgd, 0.0), Catch::Contains("factor 0 can't be divided out"));
  CHECK_THROWS_WITH(sched::PolynomialLR(sgd, 0), Catch::Contains("PolynomialLR: total_iters must be positive"));

  // A lambda that fails at some epoch fails the step that reaches it, not silently.
  sched::LambdaLR lam(sgd, sched::Expr("1 / (5 - epoch)"));
  for (int i = 0; i < 4; ++i) lam.step();
  CHECK_THROWS_WITH(lam.step(), Catch::Contains("division by zero at column 3 (epoch = 5)"));
  sched::SchedulerState st = sched::MultiplicativeLR(sgd, sched::Expr("0.9")).state_dict();
  CHECK(st.strings.at("lr_lambda") == "0.9");
  st.strings["lr_lambda"] = "0.9 *";
  sched::MultiplicativeLR mult(sgd, sched::Expr("0.5"));
  CHECK_THROWS_WITH(mult.load_state_dict(st), Catch::Contains("MultiplicativeLR state: lr_lambda '0.9 *'"));
}

TEST_CASE("closed forms: step_to(epoch) is torch's step(epoch)", "[sched]") {
  // torch uses _get_closed_form_lr for step(epoch) where a scheduler has one: the lr follows
  // from base_lrs alone, whatever the group's lr was.
  auto check = [](auto&& make, double want_at_0, double want_at_12) {
    optim::SGD opt(two_groups(), {.lr = 0.1});
    auto s = make(opt);
    opt.param_groups()[0].options["lr"] = 123.0;
    s.step_to(0);
    CHECK(s.get_last_lr()[0] == want_at_0);
    s.step_to(12);
    CHECK(s.get_last_lr()[0] == want_at_12);
    CHECK(s.last_epoch() == 12);
  };
  check([](optim::Optimizer& o) { return sched::StepLR(o, 5, 0.5); }, 0.1, 0.1 * std::pow(0.5, 2.0));
  check([](optim::Optimizer& o) { return sched::MultiStepLR(o, {3, 12, 12}, 0.5); }, 0.1, 0.1 * std::pow(0.5, 3.0));
  check([](optim::Optimizer& o) { return sched::ExponentialLR(o, 0.9); }, 0.1, 0.1 * std::pow(0.9, 12.0));
  check([](optim::Optimizer& o) { return sched::ConstantLR(o, 0.5, 10); }, 0.1 * 0.5, 0.1 * (0.5 + 0.5));
  check([](optim::Optimizer& o) { return sched::PolynomialLR(o, 20, 2.0); }, 0.1,
        0.1 * std::pow(1.0 - 12.0 / 20.0, 2.0));
  check([](optim::Optimizer& o) { return sched::LinearLR(o, 0.5, 1.0, 24); }, 0.1 * 0.5,
        0.1 * (0.5 + (1.0 - 0.5) * 12.0 / 24.0));
  check([](optim::Optimizer& o) { return sched::CosineAnnealingLR(o, 24, 0.01); },
        0.01 + (0.1 - 0.01) * (1 + std::cos(0.0)) / 2,
        0.01 + (0.1 - 0.01) * (1 + std::cos(std::numbers::pi * 12.0 / 24.0)) / 2);
  // CosineAnnealingWarmRestarts' own step(epoch): T_cur and T_i from the epoch.
  optim::SGD opt(two_groups(), {.lr = 0.1});
  sched::CosineAnnealingWarmRestarts w(opt, 3, 2);
  w.step_to(10);  // restarts at 3, 9, 21: T_i = 12, T_cur = 1
  CHECK(w.T_i == 12);
  CHECK(w.T_cur == 1);
  CHECK_THROWS_WITH(w.step_to(-1), Catch::Contains("Expected non-negative epoch, but got -1"));
}
