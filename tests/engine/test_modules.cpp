// engine/nn modules: state_dict names/order/shapes/dtypes and reprs against PyTorch, default
// initialisation statistics, load_state_dict errors, train/eval behaviour, device/dtype moves,
// and a conv-bn-relu-pool-flatten-linear net against PyTorch forward/backward.
// Fixtures: tests/fixtures/modules.txt (tests/fixtures/gen_modules.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <map>
#include <sstream>

#include "engine/nn/nn.h"
#include "engine/ops.h"
#include "tests/support/fixtures.h"

using namespace dl;
using nn::ModulePtr;

namespace {

// "x" + i without GCC 12's -Wrestrict false positive on `const char* + std::string&&`.
std::string numbered(const char* prefix, int64_t i) {
  std::string s = prefix;
  s += std::to_string(i);
  return s;
}

const std::vector<test::FixtureCase>& cases() {
  static const auto c = test::load_fixtures("modules.txt");
  return c;
}

std::vector<std::string> split(const std::string& s) {
  std::istringstream is(s);
  std::vector<std::string> out;
  std::string w;
  while (is >> w) out.push_back(w);
  if (out.size() == 1 && out[0] == "-") out.clear();
  return out;
}

std::string shape_key(const Tensor& t) {
  if (t.dim() == 0) return "scalar";
  std::string s;
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (i) s += 'x';
    s += std::to_string(t.size(i));
  }
  return s;
}

// PyTorch's Block from gen_modules.py: own param/buffer registered after a child.
class Block : public nn::Module {
 public:
  Block() {
    fc = register_module("fc", std::make_shared<nn::Linear>(2, 2));
    scale = register_parameter("scale", ones({2}));
    count = register_buffer("count", zeros({1}));
    bn = register_module("bn", std::make_shared<nn::BatchNorm1d>(2));
  }
  std::string type_name() const override { return "Block"; }
  Tensor forward(const Tensor& x) override { return bn->forward(fc->forward(x)) * scale; }
  std::shared_ptr<nn::Linear> fc;
  std::shared_ptr<nn::BatchNorm1d> bn;
  Tensor scale, count;
};

ModulePtr build_layout(const std::string& id) {
  using namespace nn;
  static const std::map<std::string, std::function<ModulePtr()>> table = {
      {"linear", [] { return std::make_shared<Linear>(4, 3); }},
      {"linear_nobias", [] { return std::make_shared<Linear>(4, 3, false); }},
      {"conv", [] { return std::make_shared<Conv2d>(3, 6, 5); }},
      {"conv_full", [] { return std::make_shared<Conv2d>(4, 8, Size2{3, 5}, 2, Size2{1, 2}, Size2{2, 1}, 2, false); }},
      {"bn1d", [] { return std::make_shared<BatchNorm1d>(5); }},
      {"bn2d_cumulative", [] { return std::make_shared<BatchNorm2d>(6, 1e-5, std::nullopt); }},
      {"bn2d_noaffine", [] { return std::make_shared<BatchNorm2d>(4, 1e-3, 0.1, false); }},
      {"bn2d_nostats", [] { return std::make_shared<BatchNorm2d>(4, 1e-5, 0.1, true, false); }},
      {"maxpool", [] { return std::make_shared<MaxPool2d>(2); }},
      {"maxpool_full", [] { return std::make_shared<MaxPool2d>(3, 2, 1, true); }},
      {"avgpool", [] { return std::make_shared<AvgPool2d>(2); }},
      {"avgpool_full", [] { return std::make_shared<AvgPool2d>(Size2{2, 3}, 1, 1); }},
      {"adaptive", [] { return std::make_shared<AdaptiveAvgPool2d>(1); }},
      {"adaptive_rect", [] { return std::make_shared<AdaptiveAvgPool2d>(Size2{2, 3}); }},
      {"dropout", [] { return std::make_shared<Dropout>(0.3); }},
      {"flatten", [] { return std::make_shared<Flatten>(); }},
      {"identity", [] { return std::make_shared<Identity>(); }},
      {"relu", [] { return std::make_shared<ReLU>(); }},
      {"leaky_relu", [] { return std::make_shared<LeakyReLU>(0.2); }},
      {"elu", [] { return std::make_shared<ELU>(); }},
      {"gelu", [] { return std::make_shared<GELU>(); }},
      {"gelu_tanh", [] { return std::make_shared<GELU>("tanh"); }},
      {"sigmoid", [] { return std::make_shared<Sigmoid>(); }},
      {"tanh", [] { return std::make_shared<Tanh>(); }},
      {"softplus", [] { return std::make_shared<Softplus>(); }},
      {"softmax", [] { return std::make_shared<Softmax>(1); }},
      {"log_softmax", [] { return std::make_shared<LogSoftmax>(-1); }},
      {"seq", [] {
         return sequential({
             std::make_shared<Conv2d>(1, 6, 5, 1, 2), std::make_shared<BatchNorm2d>(6),
             std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(2), std::make_shared<Flatten>(),
             std::make_shared<Linear>(6 * 14 * 14, 10)});
       }},
      {"seq_named", [] {
         auto features = sequential({
             std::make_shared<Conv2d>(3, 4, 3), std::make_shared<BatchNorm2d>(4), std::make_shared<ReLU>()});
         auto s = std::make_shared<Sequential>();
         s->push_back("features", features);
         s->push_back("pool", std::make_shared<AdaptiveAvgPool2d>(1));
         s->push_back("flat", std::make_shared<Flatten>());
         s->push_back("classifier", std::make_shared<Linear>(4, 2));
         return s;
       }},
      {"block", [] { return std::make_shared<Block>(); }},
  };
  auto it = table.find(id);
  if (it == table.end()) throw std::out_of_range("no C++ builder for layout " + id);
  return it->second();
}

std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Every value of `t` as doubles.
std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

TEST_CASE("module state_dict keys, order, shapes, dtypes and repr match PyTorch", "[modules]") {
  int checked = 0;
  for (const auto& c : cases()) {
    if (c.name.rfind("layout/", 0) != 0) continue;
    std::string id = c.name.substr(7);
    INFO("layout " << id);
    ModulePtr m = build_layout(id);
    nn::StateDict sd = m->state_dict();
    std::vector<std::string> keys, shapes, dtypes;
    for (auto& [k, t] : sd) {
      keys.push_back(k);
      shapes.push_back(shape_key(t));
      dtypes.push_back(dtype_name(t.dtype()));
    }
    CHECK(keys == split(c.attr("keys")));
    CHECK(shapes == split(c.attr("shapes")));
    CHECK(dtypes == split(c.attr("dtypes")));
    CHECK(m->repr() == unescape(c.attr("repr")));
    CHECK(m->num_parameters() == c.attr_i("num_params"));
    // Parameters are the float entries that require grad, in state_dict order.
    std::vector<std::string> pnames;
    for (auto& [k, t] : m->named_parameters()) {
      CHECK(t.requires_grad());
      pnames.push_back(k);
    }
    std::vector<std::string> expected_p;
    for (auto& [k, t] : sd)
      if (t.requires_grad()) expected_p.push_back(k);
    CHECK(pnames == expected_p);
    ++checked;
  }
  CHECK(checked == 30);
}

TEST_CASE("state_dict tensors alias the live parameters and buffers", "[modules]") {
  nn::BatchNorm2d bn(3);
  nn::StateDict sd = bn.state_dict();
  CHECK(sd[0].second.same(bn.weight));
  CHECK(sd[2].second.same(bn.running_mean));
  CHECK(sd[4].second.same(bn.num_batches_tracked));
  CHECK(bn.num_batches_tracked.dtype() == DType::I64);
  CHECK(bn.num_batches_tracked.dim() == 0);
  CHECK_FALSE(bn.running_mean.requires_grad());
  CHECK(values(bn.weight) == std::vector<double>{1, 1, 1});
  CHECK(values(bn.bias) == std::vector<double>{0, 0, 0});
  CHECK(values(bn.running_mean) == std::vector<double>{0, 0, 0});
  CHECK(values(bn.running_var) == std::vector<double>{1, 1, 1});
  CHECK(bn.num_batches_tracked.item() == 0);
  CHECK(nn::find_tensor(sd, "running_var") != nullptr);
  CHECK(nn::find_tensor(sd, "nope") == nullptr);
}

TEST_CASE("default initialisation follows PyTorch's distributions", "[modules][init]") {
  Generator gen(42);
  SECTION("Linear(784, 512): U(-1/sqrt(784), 1/sqrt(784)) for weight and bias") {
    nn::Linear fc(784, 512, true, gen);
    const double bound = 1.0 / std::sqrt(784.0);
    for (const Tensor& t : {fc.weight, fc.bias}) {
      std::vector<double> v = values(t);
      double mn = 1e9, mx = -1e9, s = 0, s2 = 0;
      for (double x : v) {
        mn = std::min(mn, x);
        mx = std::max(mx, x);
        s += x;
      }
      double mean = s / v.size();
      for (double x : v) s2 += (x - mean) * (x - mean);
      double sd = std::sqrt(s2 / (v.size() - 1));
      CHECK(mn >= -bound);
      CHECK(mx <= bound);
      CHECK(mx > 0.95 * bound);  // the whole range is used
      CHECK(mn < -0.95 * bound);
      double se = bound / std::sqrt(3.0) / std::sqrt(static_cast<double>(v.size()));
      CHECK(std::fabs(mean) < 5 * se);
      CHECK(sd == Approx(bound / std::sqrt(3.0)).epsilon(t.numel() > 1000 ? 0.01 : 0.1));
    }
  }
  SECTION("Conv2d(16, 32, 3, groups=2): fan_in = 16/2*3*3") {
    nn::Conv2d conv(16, 32, 3, 1, 0, 1, 2, true, gen);
    CHECK(conv.weight.shape() == Shape{32, 8, 3, 3});
    const double bound = 1.0 / std::sqrt(72.0);
    std::vector<double> w = values(conv.weight);
    double mx = 0, s2 = 0;
    for (double x : w) {
      mx = std::max(mx, std::fabs(x));
      s2 += x * x;
    }
    CHECK(mx <= bound);
    CHECK(std::sqrt(s2 / w.size()) == Approx(bound / std::sqrt(3.0)).epsilon(0.05));
    for (double x : values(conv.bias)) CHECK(std::fabs(x) <= bound);
  }
  SECTION("same generator state, same weights; the draw advances the generator") {
    Generator g1(5), g2(5);
    nn::Linear a(10, 7, true, g1), b(10, 7, true, g2);
    CHECK(values(a.weight) == values(b.weight));
    CHECK(values(a.bias) == values(b.bias));
    nn::Linear c(10, 7, true, g1);
    CHECK(values(a.weight) != values(c.weight));
  }
}

TEST_CASE("nn::init functions: fans, gains, kaiming/xavier scales", "[modules][init]") {
  using namespace nn::init;
  CHECK(calculate_fan_in_and_fan_out(empty({8, 4, 3, 3})) == std::pair<int64_t, int64_t>{36, 72});
  CHECK_THROWS_WITH(calculate_fan_in_and_fan_out(empty({5})), Catch::Contains("fewer than 2 dimensions"));
  CHECK(calculate_gain("relu") == Approx(std::sqrt(2.0)));
  CHECK(calculate_gain("tanh") == Approx(5.0 / 3));
  CHECK(calculate_gain("leaky_relu") == Approx(std::sqrt(2.0 / (1 + 0.0001))));
  CHECK(calculate_gain("leaky_relu", std::sqrt(5.0)) == Approx(std::sqrt(1.0 / 3)));
  CHECK(calculate_gain("conv2d") == 1.0);
  CHECK(calculate_gain("selu") == 0.75);
  CHECK_THROWS_WITH(calculate_gain("swish"), Catch::Contains("Unsupported nonlinearity swish"));

  Generator gen(3);
  auto rms = [](const Tensor& t) {
    double s = 0;
    for (double x : t.to_vector<double>()) s += x * x;
    return std::sqrt(s / t.numel());
  };
  Tensor w = empty({256, 400});
  kaiming_normal_(w, gen, 0.0, "fan_in", "relu");
  CHECK(rms(w) == Approx(std::sqrt(2.0 / 400)).epsilon(0.02));
  kaiming_uniform_(w, gen, 0.0, "fan_out", "relu");
  CHECK(rms(w) == Approx(std::sqrt(2.0 / 256)).epsilon(0.02));
  xavier_uniform_(w, gen, 2.0);
  CHECK(rms(w) == Approx(2.0 * std::sqrt(2.0 / 656)).epsilon(0.02));
  xavier_normal_(w, gen);
  CHECK(rms(w) == Approx(std::sqrt(2.0 / 656)).epsilon(0.02));
  CHECK_THROWS_WITH(kaiming_normal_(w, gen, 0.0, "fan_avg"), Catch::Contains("Mode fan_avg not supported"));
  constant_(w, 0.25);
  CHECK(w.to_vector<float>()[17] == 0.25f);
  Tensor e = empty({0, 3});
  kaiming_uniform_(e, gen);  // zero-element: no-op, like PyTorch
}

TEST_CASE("load_state_dict: strict, non-strict, size mismatch and dtype conversion", "[modules]") {
  auto make = [] {
    Generator g(1);
    return nn::sequential({
        std::make_shared<nn::Linear>(3, 4, true, g), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::BatchNorm1d>(4), std::make_shared<nn::Linear>(4, 2, true, g)});
  };
  auto src = make();
  {
    Generator g(99);
    for (Tensor& p : src->parameters()) nn::init::uniform_(p, g, -1, 1);
  }
  SECTION("round trip copies values in place and keeps tensor identity") {
    auto dst = make();
    Tensor w_before = dst->named_parameters()[0].second;
    nn::LoadResult r = dst->load_state_dict(src->state_dict());
    CHECK(r.missing_keys.empty());
    CHECK(r.unexpected_keys.empty());
    CHECK(dst->named_parameters()[0].second.same(w_before));
    for (size_t i = 0; i < src->state_dict().size(); ++i)
      CHECK(values(dst->state_dict()[i].second) == values(src->state_dict()[i].second));
    CHECK_FALSE(dst->state_dict()[0].second.storage() == src->state_dict()[0].second.storage());
    CHECK(w_before.requires_grad());
  }
  SECTION("float64 checkpoint into a float32 model") {
    nn::StateDict sd;
    for (auto& [k, t] : src->state_dict()) sd.emplace_back(k, is_floating(t.dtype()) ? t.to(DType::F64) : t);
    auto dst = make();
    dst->load_state_dict(sd);
    CHECK(dst->state_dict()[0].second.dtype() == DType::F32);
    CHECK(values(dst->state_dict()[0].second) == values(src->state_dict()[0].second));
  }
  SECTION("strict mode lists all missing and unexpected keys, PyTorch's format") {
    nn::StateDict sd = src->state_dict();
    sd.erase(sd.begin() + 1);  // 0.bias
    REQUIRE(sd[5].first == "2.num_batches_tracked");
    sd.erase(sd.begin() + 5);
    sd.emplace_back("3.extra", zeros({1}));
    sd.emplace_back("foo", zeros({1}));
    auto dst = make();
    Tensor before = dst->state_dict()[0].second.clone();
    CHECK_THROWS_WITH(dst->load_state_dict(sd),
                      "Error(s) in loading state_dict for Sequential:\n"
                      "\tMissing key(s) in state_dict: \"0.bias\", \"2.num_batches_tracked\". \n"
                      "\tUnexpected key(s) in state_dict: \"3.extra\", \"foo\". ");
    CHECK(values(dst->state_dict()[0].second) == values(before));  // nothing was copied
    nn::LoadResult r = dst->load_state_dict(sd, /*strict=*/false);
    CHECK(r.missing_keys == std::vector<std::string>{"0.bias", "2.num_batches_tracked"});
    CHECK(r.unexpected_keys == std::vector<std::string>{"3.extra", "foo"});
    CHECK(values(dst->state_dict()[0].second) == values(src->state_dict()[0].second));
  }
  SECTION("a size mismatch throws naming the key and both shapes, even when not strict") {
    nn::StateDict sd = src->state_dict();
    REQUIRE(sd[7].first == "3.weight");
    sd[7].second = zeros({2, 5});  // the model's is [2, 4]
    auto dst = make();
    std::string expected =
        "Error(s) in loading state_dict for Sequential:\n"
        "\tsize mismatch for 3.weight: copying a param with shape [2, 5] from checkpoint, "
        "the shape in current model is [2, 4].";
    CHECK_THROWS_WITH(dst->load_state_dict(sd, false), expected);
    sd.erase(sd.begin());  // also missing: missing keys come first in strict mode
    CHECK_THROWS_WITH(dst->load_state_dict(sd),
                      Catch::StartsWith("Error(s) in loading state_dict for Sequential:\n"
                                        "\tMissing key(s) in state_dict: \"0.weight\". \n\tsize mismatch for 3.weight"));
  }
  SECTION("a 1-element 1-d tensor loads into a 0-dim buffer (old checkpoints)") {
    nn::StateDict sd = src->state_dict();
    sd[6].second = from_vector<int64_t>({7}, {1});
    auto dst = make();
    dst->load_state_dict(sd);
    CHECK(dst->state_dict()[6].second.item() == 7);
    CHECK(dst->state_dict()[6].second.dim() == 0);
  }
}

TEST_CASE("registration rules, traversal, shared parameters and repr", "[modules]") {
  nn::Module m;
  m.register_parameter("w", zeros({2}));
  CHECK_THROWS_WITH(m.register_parameter("w", zeros({2})), Catch::Contains("\"w\" already exists"));
  CHECK_THROWS_WITH(m.register_buffer("a.b", zeros({2})), Catch::Contains("can't contain \".\""));
  CHECK_THROWS_WITH(m.register_module("", std::make_shared<nn::ReLU>()), Catch::Contains("can't be empty"));
  CHECK_THROWS_WITH(m.register_parameter("i", zeros({2}, DType::I64)), Catch::Contains("floating"));
  CHECK_THROWS_WITH(m.forward(zeros({1})), Catch::Contains("Module has no single-input forward"));

  // A tensor registered under two names is one parameter (listed once) but two state_dict keys.
  struct Tied : nn::Module {
    explicit Tied(Tensor w) {
      w1 = register_parameter("w1", w);
      auto child = std::make_shared<nn::Module>();
      child->register_parameter("w", w);
      register_module("child", child);
    }
    Tensor w1;
  };
  Tied tied(ones({2, 2}));
  CHECK(tied.named_parameters().size() == 1);
  CHECK(tied.num_parameters() == 4);
  CHECK(tied.state_dict().size() == 2);
  CHECK(tied.state_dict()[1].first == "child.w");

  auto a = std::make_shared<nn::Linear>(3, 3);
  auto b = std::make_shared<nn::Linear>(3, 3, false);
  nn::Sequential s{a, b};

  auto named = s.named_modules();
  REQUIRE(named.size() == 3);
  CHECK(named[0].first == "");
  CHECK(named[2].first == "1");
  CHECK(s.child("1") == named[2].second);
  CHECK(s.child("7") == nullptr);
  CHECK(s.size() == 2);
  CHECK(s[1] == named[2].second);
  CHECK_THROWS_AS(s[2], std::out_of_range);
  CHECK(nn::py_float(1e-5) == "1e-05");
  CHECK(nn::py_float(0.1) == "0.1");
  CHECK(nn::py_float(1.0) == "1.0");
  CHECK(nn::py_float(123456.5) == "123456.5");
  CHECK(nn::py_float(1e16) == "1e+16");
  CHECK(nn::py_float(-0.0001) == "-0.0001");
  CHECK(nn::py_float(0.00001234) == "1.234e-05");
}

TEST_CASE("Linear, activations, Flatten, Sequential, Add and Concat forward", "[modules]") {
  Generator gen(11);
  auto fc = std::make_shared<nn::Linear>(4, 3, true, gen);
  Tensor x = randn({5, 4}, gen);
  CHECK_CLOSE(fc->forward(x), linear(x, fc->weight, fc->bias), 0, 0);
  nn::Sequential net{fc, std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(3, 2, true, gen),
                     std::make_shared<nn::Tanh>()};
  Tensor y = net.forward(x);
  Tensor ref = tanh(linear(relu(linear(x, fc->weight, fc->bias)),
                           std::static_pointer_cast<nn::Linear>(net[2])->weight,
                           std::static_pointer_cast<nn::Linear>(net[2])->bias));
  CHECK_CLOSE(y, ref, 0, 0);
  CHECK(net({x}).shape() == Shape{5, 2});
  CHECK_THROWS_WITH(net.forward(TensorList{x, x}), Catch::Contains("Sequential takes exactly one input, got 2"));

  // Backward through the modules reaches every parameter.
  sum(y).backward();
  for (auto& [k, p] : net.named_parameters()) {
    INFO(k);
    CHECK(p.grad().defined());
  }
  net.zero_grad();
  for (auto& p : net.parameters()) CHECK_FALSE(p.grad().defined());

  CHECK_CLOSE(nn::LeakyReLU(0.2).forward(x), leaky_relu(x, 0.2), 0, 0);
  CHECK_CLOSE(nn::ELU(0.5).forward(x), elu(x, 0.5), 0, 0);
  CHECK_CLOSE(nn::GELU("tanh").forward(x), gelu(x, "tanh"), 0, 0);
  CHECK_CLOSE(nn::Sigmoid().forward(x), sigmoid(x), 0, 0);
  CHECK_CLOSE(nn::Softplus(2, 10).forward(x), softplus(x, 2, 10), 0, 0);
  CHECK_THROWS_WITH(nn::GELU("fast"), Catch::Contains("approximate must be 'none' or 'tanh'"));
  Tensor img = randn({2, 3, 4, 5}, gen);
  CHECK(nn::Flatten().forward(img).shape() == Shape{2, 60});
  CHECK(nn::Flatten(0, 2).forward(img).shape() == Shape{24, 5});
  CHECK(nn::Identity().forward(img).same(img));

  nn::Add add;
  Tensor a = randn({2, 3}, gen), b = randn({2, 3}, gen), c = randn({3}, gen);
  CHECK_CLOSE(add.forward(TensorList{a, b, c}), a + b + c, 0, 0);
  CHECK_THROWS(add.forward(TensorList{}));
  nn::Concat cat1(1);
  CHECK(cat1.forward(TensorList{a, b}).shape() == Shape{2, 6});
  CHECK(cat1.forward(TensorList{a}).same(a));
}

TEST_CASE("to(dtype) converts in place, keeping tensor identity", "[modules]") {
  auto bn = std::make_shared<nn::BatchNorm1d>(3);
  auto fc = std::make_shared<nn::Linear>(2, 3);
  nn::Sequential net{fc, bn};
  Tensor w = fc->weight;
  Tensor w_reg = net.named_parameters()[0].second;
  std::vector<double> before = values(w);
  sum(fc->forward(ones({1, 2}))).backward();
  net.to(DType::F64);
  CHECK(w.dtype() == DType::F64);
  CHECK(w_reg.dtype() == DType::F64);
  CHECK(fc->weight.same(w));
  CHECK(values(w) == before);
  CHECK(w.requires_grad());
  CHECK(w.grad().dtype() == DType::F64);
  CHECK(bn->running_var.dtype() == DType::F64);
  CHECK(bn->num_batches_tracked.dtype() == DType::I64);  // integer buffers are left alone
  CHECK(fc->forward(ones({1, 2}, DType::F64)).dtype() == DType::F64);
  CHECK_THROWS(net.to(DType::I64));
}

// ---- tests that need conv2d / batch_norm / pooling / dropout (engine/ops/nn.cpp) ----------

TEST_CASE("conv-bn-relu-pool-flatten-linear net matches PyTorch (train, eval, backward)", "[modules]") {
  const auto& c = test::find_case(cases(), "net/forward");
  auto net = nn::sequential({
      std::make_shared<nn::Conv2d>(2, 3, 3, 1, 1), std::make_shared<nn::BatchNorm2d>(3),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(27, 4)});
  nn::StateDict sd;
  for (auto& [k, t] : net->state_dict()) sd.emplace_back(k, c.t("sd." + k));
  net->load_state_dict(sd);
  net->train();
  Tensor y1 = net->forward(c.t("x1"));
  CHECK_CLOSE(y1, c.t("y1"), 1e-5, 1e-5);
  Tensor y2 = net->forward(c.t("x2"));
  CHECK_CLOSE(y2, c.t("y2"), 1e-5, 1e-5);
  sum(y2 * c.t("g")).backward();
  for (auto& [k, t] : net->state_dict()) {
    INFO(k);
    if (k.find("num_batches_tracked") != std::string::npos) {
      CHECK(t.item() == 2);
      CHECK(c.t("after." + k).item() == 2);
    } else {
      CHECK_CLOSE(t, c.t("after." + k), 1e-5, 1e-6);
    }
  }
  for (auto& [k, p] : net->named_parameters()) {
    INFO(k);
    CHECK_CLOSE(p.grad(), c.t("grad." + k), 1e-4, 1e-5);
  }
  net->eval();
  CHECK_FALSE(net->is_training());
  CHECK_FALSE((*net)[1]->is_training());
  Tensor ye = net->forward(c.t("x1"));
  CHECK_CLOSE(ye, c.t("y_eval"), 1e-5, 1e-5);
  CHECK(net->state_dict()[6].second.item() == 2);  // eval forward does not count
}

TEST_CASE("BatchNorm with momentum=None keeps a cumulative average", "[modules]") {
  const auto& c = test::find_case(cases(), "bn_cumulative");
  nn::BatchNorm1d bn(3, 1e-5, std::nullopt);
  for (int i = 0; i < 3; ++i) {
    Tensor y = bn.forward(c.t(numbered("x", i)));
    CHECK_CLOSE(y, c.t(numbered("y", i)), 1e-5, 1e-5);
  }
  CHECK_CLOSE(bn.running_mean, c.t("after.running_mean"), 1e-5, 1e-6);
  CHECK_CLOSE(bn.running_var, c.t("after.running_var"), 1e-5, 1e-6);
  CHECK(bn.num_batches_tracked.item() == 3);
  CHECK_THROWS_WITH(bn.forward(zeros({2, 3, 4, 5})), Catch::Contains("expected 2D or 3D input (got 4D input)"));
  CHECK_THROWS_WITH(nn::BatchNorm2d(3).forward(zeros({2, 3})), Catch::Contains("expected 4D input (got 2D input)"));
}

TEST_CASE("BatchNorm without running stats uses batch statistics in eval mode too", "[modules]") {
  Generator gen(2);
  Tensor x = randn({4, 3, 2, 2}, gen);
  nn::BatchNorm2d tracked(3), untracked(3, 1e-5, 0.1, true, false);
  Tensor yt = untracked.forward(x);
  untracked.eval();
  CHECK_CLOSE(untracked.forward(x), yt, 0, 0);
  CHECK_CLOSE(tracked.forward(x), yt, 1e-6, 1e-6);
  tracked.eval();  // running stats after one step differ from the batch stats
  CHECK_FALSE(test::allclose(tracked.forward(x), yt, 1e-3, 1e-3));
}

TEST_CASE("Dropout zeroes and rescales in training, is the identity in eval", "[modules]") {
  manual_seed(123);
  nn::Dropout drop(0.25);
  Tensor x = ones({100000});
  Tensor y = drop.forward(x);
  std::vector<float> v = y.to_vector<float>();
  int64_t zeros_n = 0;
  for (float f : v) {
    if (f == 0.0f) ++zeros_n;
    else CHECK(f == Approx(1.0 / 0.75));
  }
  CHECK(zeros_n / 100000.0 == Approx(0.25).margin(0.01));
  // The mask comes from the default generator: re-seeding reproduces it.
  manual_seed(123);
  CHECK(drop.forward(x).to_vector<float>() == v);
  drop.eval();
  CHECK(drop.forward(x).same(x));
  CHECK_THROWS_WITH(nn::Dropout(1.5), Catch::Contains("between 0 and 1, but got 1.5"));
}

TEST_CASE("pooling modules forward the configured arguments", "[modules]") {
  Generator gen(4);
  Tensor x = randn({2, 3, 7, 7}, gen);
  CHECK_CLOSE(nn::MaxPool2d(3, 2, 1, true).forward(x), max_pool2d(x, {3, 3}, {2, 2}, {1, 1}, true), 0, 0);
  CHECK(nn::MaxPool2d(2).forward(x).shape() == Shape{2, 3, 3, 3});
  CHECK_CLOSE(nn::AvgPool2d(nn::Size2{2, 3}, 1, 1, false, false).forward(x),
              avg_pool2d(x, {2, 3}, {1, 1}, {1, 1}, false, false), 0, 0);
  CHECK(nn::AdaptiveAvgPool2d(1).forward(x).shape() == Shape{2, 3, 1, 1});
  CHECK_THROWS_WITH(nn::MaxPool2d(2, 2, 2), Catch::Contains("pad should be at most half of kernel size"));
  nn::Conv2d conv(3, 4, nn::Size2{3, 5}, 2, nn::Size2{1, 2});
  CHECK(conv.forward(x).shape() == Shape{2, 4, 4, 4});
  CHECK_THROWS_WITH(nn::Conv2d(3, 4, 3, 1, 0, 1, 2), Catch::Contains("in_channels must be divisible by groups"));
}

TEST_CASE("cuda: modules move to the GPU in place and match the CPU", "[cuda][modules]") {
  REQUIRE_CUDA_DEVICE();
  Generator gen(8);
  auto net = nn::sequential({
      std::make_shared<nn::Linear>(5, 4, true, gen), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::BatchNorm1d>(4), std::make_shared<nn::Linear>(4, 2, true, gen)});
  Tensor x = randn({6, 5}, gen);
  Tensor y_cpu = net->forward(x);
  Tensor w = net->named_parameters()[0].second;
  net->to(Device::cuda(0));
  CHECK(w.device() == Device::cuda(0));
  for (auto& [k, t] : net->state_dict()) CHECK(t.device() == Device::cuda(0));
  // The second forward updates the running stats again; compare with a fresh CPU copy.
  Tensor y_gpu = net->forward(x.to(Device::cuda(0)));
  CHECK(y_gpu.device() == Device::cuda(0));
  CHECK_CLOSE(y_gpu.cpu(), y_cpu, 1e-5, 1e-5);
  sum(y_gpu).backward();
  CHECK(w.grad().device() == Device::cuda(0));
  net->to(Device::cpu());
  CHECK(w.device() == Device::cpu());
  CHECK(w.grad().device() == Device::cpu());
}
