// Image transforms (datasets/transforms/geometry.cpp, interpolate.cpp, color.cpp): the functional
// forms against torchvision 0.14 (tests/fixtures/transforms.txt from gen_transforms.py), and the
// registered random transforms' logic (deterministic per generator, p = 0 / 1, parameters in
// range and drawn as torchvision's get_params, the same numbers as the functional form).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "datasets/transforms.h"
#include "datasets/transforms/kernels.h"
#include "tests/support/fixtures.h"

using namespace dl;
using namespace dl::data;
using dl::test::FixtureCase;

namespace {

const std::vector<FixtureCase>& fixtures() {
  static const auto cases = dl::test::load_fixtures("transforms.txt");
  return cases;
}

bool is_u8_input(const std::string& name) { return name == "u8" || name == "u8g" || name == "ramp"; }

Tensor as_u8(const Tensor& t) {
  auto v = t.to_vector<int64_t>();
  return from_vector(std::vector<uint8_t>(v.begin(), v.end()), t.shape());
}

Tensor input(const FixtureCase& c) {
  const std::string& name = c.attr("input");
  const Tensor& t = dl::test::find_case(fixtures(), "inputs").t(name);
  return is_u8_input(name) ? as_u8(t) : t;
}

Tensor expected(const FixtureCase& c) { return is_u8_input(c.attr("input")) ? as_u8(c.t("y")) : c.t("y"); }

std::vector<double> doubles(const std::string& text) {
  std::istringstream s(text);
  std::vector<double> v;
  for (double x; s >> x;) v.push_back(x);
  return v;
}

// Largest |got - want| and how many elements differ at all; shapes and dtypes must agree.
struct Diff {
  double max = 0;
  int64_t count = 0;
};
Diff diff(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  REQUIRE(got.dtype() == want.dtype());
  auto a = got.to(DType::F64).contiguous().to_vector<double>(),
       b = want.to(DType::F64).contiguous().to_vector<double>();
  Diff d;
  for (size_t i = 0; i < a.size(); ++i) {
    double e = std::fabs(a[i] - b[i]);
    d.max = std::max(d.max, e);
    d.count += e > 0;
  }
  return d;
}

// Runs `f` on every fixture case whose name starts with `prefix` and checks its output: u8
// images within u8_tol (0: exact), float ones within f32_tol. Returns the number of cases.
template <class F>
int check_cases(const std::string& prefix, double u8_tol, double f32_tol, F f) {
  int n = 0;
  for (const auto& c : fixtures()) {
    if (c.name.rfind(prefix, 0) != 0) continue;
    INFO("case " << c.name);
    Tensor got = f(input(c), c);
    Diff d = diff(got, expected(c));
    INFO("max diff " << d.max << " in " << d.count << " elements");
    CHECK(d.max <= (is_u8_input(c.attr("input")) ? u8_tol : f32_tol));
    ++n;
  }
  return n;
}

Tensor image_u8(int64_t c, int64_t h, int64_t w) {
  std::vector<uint8_t> v(static_cast<size_t>(c * h * w));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>((i * 37 + 11) % 251);
  return from_vector(v, {c, h, w});
}

bool same(const Tensor& a, const Tensor& b) { return a.shape() == b.shape() && diff(a, b).max == 0; }

}  // namespace

TEST_CASE("transforms: crop, center_crop, pad and flips equal torchvision's", "[transforms]") {
  CHECK(check_cases("crop", 0, 0, [](const Tensor& x, const FixtureCase& c) {
          return fn::crop(x, c.attr_i("top"), c.attr_i("left"), c.attr_i("height"), c.attr_i("width"));
        }) == 8);
  CHECK(check_cases("center_crop", 0, 0, [](const Tensor& x, const FixtureCase& c) {
          return fn::center_crop(x, c.attr_i("height"), c.attr_i("width"));
        }) == 8);
  CHECK(check_cases("pad_", 0, 0, [](const Tensor& x, const FixtureCase& c) {
          return fn::pad(x, c.attr_ints("padding"), c.attr_f("fill"), fn::parse_pad_mode(c.attr("mode")));
        }) == 24);
  CHECK(check_cases("hflip", 0, 0, [](const Tensor& x, const FixtureCase&) { return fn::hflip(x); }) == 2);
  CHECK(check_cases("vflip", 0, 0, [](const Tensor& x, const FixtureCase&) { return fn::vflip(x); }) == 2);
}

TEST_CASE(
    "transforms: resize and resized_crop match torchvision (nearest and bilinear exactly, bicubic to a few float32 "
    "ulp)",
    "[transforms]") {
  auto resize = [](const Tensor& x, const FixtureCase& c) {
    auto [h, w] = fn::resized_size(x.size(1), x.size(2), c.attr_ints("size"));
    return fn::resize(x, h, w, fn::parse_interp(c.attr("mode")));
  };
  // Nearest and bilinear reproduce PyTorch's float32 arithmetic (including its fused
  // multiply-adds), so u8 results are exact, with torch.round's ties to even on the ramp.
  CHECK(check_cases("resize_nearest", 0, 0, resize) == 11);
  CHECK(check_cases("resize_bilinear", 0, 0, resize) == 11);
  // Bicubic: PyTorch's rounding order is not reproduced; floats differ by a few ulp, which
  // can move a u8 value across a .5 (then by 1).
  CHECK(check_cases("resize_bicubic", 1, 1e-5, resize) == 11);
  auto resized_crop = [](const Tensor& x, const FixtureCase& c) {
    auto size = c.attr_ints("size");
    return fn::resized_crop(x, c.attr_i("top"), c.attr_i("left"), c.attr_i("height"), c.attr_i("width"), size[0],
                            size[1], fn::parse_interp(c.attr("mode")));
  };
  CHECK(check_cases("resized_crop_nearest", 0, 0, resized_crop) == 2);
  // On a float crop (a strided view in torchvision) PyTorch takes another kernel path: 1 ulp.
  CHECK(check_cases("resized_crop_bilinear", 0, 1e-6, resized_crop) == 2);
  CHECK(check_cases("resized_crop_bicubic", 1, 1e-5, resized_crop) == 2);

  int sizes = 0;
  for (const auto& c : fixtures()) {
    if (c.name.rfind("size_resize", 0) != 0) continue;
    INFO("case " << c.name);
    auto [h, w] = fn::resized_size(c.attr_i("h"), c.attr_i("w"), c.attr_ints("size"), c.attr_i("max_size"));
    CHECK(std::vector<int64_t>{h, w} == c.attr_ints("out"));
    ++sizes;
  }
  CHECK(sizes == 7);
  CHECK_THROWS_WITH(fn::resized_size(7, 9, {5}, 5), Catch::Contains("max_size = 5 must be strictly greater"));
}

TEST_CASE("transforms: rotate matches torchvision's F.rotate with a fill (as RandomRotation calls it)",
          "[transforms]") {
  auto rotate = [](const Tensor& x, const FixtureCase& c) {
    std::optional<std::pair<double, double>> center;
    if (c.has("center")) {
      auto v = doubles(c.attr("center"));
      center = std::pair{v[0], v[1]};
    }
    return fn::rotate(x, c.attr_f("angle"), fn::parse_interp(c.attr("mode")), c.attr_i("expand") != 0, center,
                      doubles(c.attr("fill")));
  };
  CHECK(check_cases("rotate", 0, 1e-5, rotate) == 16);
  int sizes = 0;
  for (const auto& c : fixtures()) {
    if (c.name.rfind("size_rotate", 0) != 0) continue;
    INFO("case " << c.name);
    auto [h, w] = fn::rotated_size(c.attr_i("h"), c.attr_i("w"), c.attr_f("angle"));
    CHECK(std::vector<int64_t>{h, w} == c.attr_ints("out"));
    ++sizes;
  }
  CHECK(sizes == 4);
  CHECK_THROWS_WITH(fn::rotate(image_u8(3, 4, 4), 10, fn::Interp::Nearest, false, std::nullopt, {1, 2}),
                    Catch::Contains("fill has 2 values for 3 channel(s)"));
}

TEST_CASE("transforms: grayscale, brightness, contrast, saturation and hue match torchvision", "[transforms]") {
  CHECK(check_cases("gray", 0, 1e-6, [](const Tensor& x, const FixtureCase& c) {
          return fn::rgb_to_grayscale(x, c.attr_i("channels"));
        }) == 4);
  CHECK(check_cases("brightness", 0, 1e-6, [](const Tensor& x, const FixtureCase& c) {
          return fn::adjust_brightness(x, c.attr_f("factor"));
        }) == 6);
  CHECK(check_cases("contrast", 0, 1e-6, [](const Tensor& x, const FixtureCase& c) {
          return fn::adjust_contrast(x, c.attr_f("factor"));
        }) == 12);
  CHECK(check_cases("saturation", 0, 1e-6, [](const Tensor& x, const FixtureCase& c) {
          return fn::adjust_saturation(x, c.attr_f("factor"));
        }) == 6);
  CHECK(check_cases("hue", 0, 1e-6,
                    [](const Tensor& x, const FixtureCase& c) { return fn::adjust_hue(x, c.attr_f("factor")); }) == 10);
  CHECK_THROWS_WITH(fn::adjust_hue(image_u8(3, 2, 2), 0.6), Catch::Contains("[-0.5, 0.5]"));
  CHECK_THROWS_WITH(fn::adjust_contrast(image_u8(2, 2, 2), 0.5), Catch::Contains("expected 1 or 3 channels"));
}

// ---- the registered transforms ---------------------------------------------------------------

namespace {

TransformPtr make(const std::string& name, AttrMap attrs = {}) { return make_transform(name, attrs); }

// How many of `draws` applications of t (one generator) give exactly `want`.
int64_t count_equal(const Transform& t, const Tensor& x, const Tensor& want, int draws, uint64_t seed = 5) {
  Generator g(seed);
  int64_t n = 0;
  for (int i = 0; i < draws; ++i) n += same(t.apply(x, g), want);
  return n;
}

}  // namespace

TEST_CASE("transforms: the registry holds torchvision's transforms with their names, randomness and examples",
          "[transforms]") {
  const std::map<std::string, std::pair<std::string, bool>> want = {
      {"resize", {"torchvision.transforms.Resize", false}},
      {"center_crop", {"torchvision.transforms.CenterCrop", false}},
      {"pad", {"torchvision.transforms.Pad", false}},
      {"random_crop", {"torchvision.transforms.RandomCrop", true}},
      {"random_resized_crop", {"torchvision.transforms.RandomResizedCrop", true}},
      {"random_horizontal_flip", {"torchvision.transforms.RandomHorizontalFlip", true}},
      {"random_vertical_flip", {"torchvision.transforms.RandomVerticalFlip", true}},
      {"random_rotation", {"torchvision.transforms.RandomRotation", true}},
      {"color_jitter", {"torchvision.transforms.ColorJitter", true}},
      {"grayscale", {"torchvision.transforms.Grayscale", false}},
      {"random_grayscale", {"torchvision.transforms.RandomGrayscale", true}},
  };
  for (const auto& [name, torch] : want) {
    INFO(name);
    const TransformDef* def = find_transform_def(name);
    REQUIRE(def != nullptr);
    CHECK(def->torch_name == torch.first);
    CHECK(def->random == torch.second);
    CHECK(!def->doc.empty());
    CHECK(def->example.find("type: " + name) != std::string::npos);
  }
  // torchvision's defaults.
  auto default_of = [](const std::string& t, const std::string& attr) {
    return format_attr(*find_attr(transform_def(t).attrs, attr)->default_value);
  };
  CHECK(default_of("resize", "interpolation") == "bilinear");
  CHECK(default_of("random_resized_crop", "scale") == "[0.08, 1.0]");
  CHECK(default_of("random_rotation", "interpolation") == "nearest");
  CHECK(default_of("random_horizontal_flip", "p") == "0.5");
  CHECK(default_of("random_grayscale", "p") == "0.1");
  CHECK(default_of("pad", "padding_mode") == "constant");
}

TEST_CASE("transforms: deterministic ones equal their functional form and report their output shape", "[transforms]") {
  Generator g(1);
  Tensor x = image_u8(3, 7, 9);
  auto resize = make("resize", {{"size", std::vector<int64_t>{4}}});
  CHECK(resize->out_shape({3, 7, 9}) == Shape{3, 4, 5});
  CHECK(same(resize->apply(x, g), fn::resize(x, 4, 5)));
  auto cc = make("center_crop", {{"size", std::vector<int64_t>{5, 6}}});
  CHECK(cc->out_shape({3, 7, 9}) == Shape{3, 5, 6});
  CHECK(same(cc->apply(x, g), fn::center_crop(x, 5, 6)));
  auto pad = make("pad", {{"padding", std::vector<int64_t>{1, 2}}, {"padding_mode", std::string("reflect")}});
  CHECK(pad->out_shape({3, 7, 9}) == Shape{3, 11, 11});
  CHECK(same(pad->apply(x, g), fn::pad(x, {1, 2}, 0, fn::PadMode::Reflect)));
  CHECK_THROWS_WITH(pad->out_shape({3, 2, 9}), Catch::Contains("'reflect' needs padding smaller than the height (2)"));
  auto gray = make("grayscale", {{"num_output_channels", int64_t{3}}});
  CHECK(gray->out_shape({3, 7, 9}) == Shape{3, 7, 9});
  CHECK(same(gray->apply(x, g), fn::rgb_to_grayscale(x, 3)));
  CHECK_THROWS_WITH(gray->out_shape({2, 7, 9}), Catch::Contains("1 or 3 channels"));
  // The generator is not touched by deterministic transforms.
  CHECK(g.offset() == Generator(1).offset());
}

TEST_CASE("transforms: random flips and random_grayscale apply with probability p", "[transforms]") {
  Tensor x = image_u8(3, 5, 6);
  for (const char* name : {"random_horizontal_flip", "random_vertical_flip"}) {
    INFO(name);
    Tensor flipped = std::string(name) == "random_horizontal_flip" ? fn::hflip(x) : fn::vflip(x);
    CHECK(count_equal(*make(name, {{"p", 0.0}}), x, flipped, 200) == 0);
    CHECK(count_equal(*make(name, {{"p", 1.0}}), x, flipped, 200) == 200);
    int64_t n = count_equal(*make(name), x, flipped, 2000);
    CHECK(n > 900);
    CHECK(n < 1100);
  }
  Tensor grey = fn::rgb_to_grayscale(x, 3);
  CHECK(count_equal(*make("random_grayscale", {{"p", 0.0}}), x, grey, 100) == 0);
  CHECK(count_equal(*make("random_grayscale", {{"p", 1.0}}), x, grey, 100) == 100);
  int64_t n = count_equal(*make("random_grayscale"), x, grey, 2000);
  CHECK(n > 150);
  CHECK(n < 250);
  // One draw per sample whatever p is: p does not shift the rest of the stream.
  Generator a(3), b(3);
  make("random_horizontal_flip", {{"p", 0.0}})->apply(x, a);
  make("random_horizontal_flip", {{"p", 1.0}})->apply(x, b);
  CHECK(a.next_u64() == b.next_u64());
}

TEST_CASE("transforms: random_crop draws a uniform window of the padded image", "[transforms]") {
  Tensor x = image_u8(1, 6, 6);
  auto t = make("random_crop", {{"size", std::vector<int64_t>{6, 6}}, {"padding", std::vector<int64_t>{2}}});
  CHECK(t->out_shape({1, 6, 6}) == Shape{1, 6, 6});
  Tensor padded = fn::pad(x, {2});
  // Every output is the padded image's window at some (top, left) in [0, 4]^2; all 25 appear,
  // each about 1/25 of the time.
  std::map<std::pair<int64_t, int64_t>, int> seen;
  Generator g(7);
  for (int i = 0; i < 2500; ++i) {
    Tensor y = t->apply(x, g);
    bool found = false;
    for (int64_t top = 0; top <= 4 && !found; ++top)
      for (int64_t left = 0; left <= 4 && !found; ++left)
        if (same(y, fn::crop(padded, top, left, 6, 6))) {
          ++seen[{top, left}];
          found = true;
        }
    REQUIRE(found);
  }
  CHECK(seen.size() == 25);
  for (const auto& [pos, n] : seen) CHECK(n > 50);
  // Same generator state, same crop (what exact resume relies on).
  Generator g1(9), g2(9);
  CHECK(same(t->apply(x, g1), t->apply(x, g2)));
  // Replaying the draw: the functional form at random_crop_box's window.
  Generator g3(11), g4(11);
  auto box = fn::random_crop_box(10, 10, 6, 6, g4);
  CHECK(same(t->apply(x, g3), fn::crop(padded, box.top, box.left, 6, 6)));

  auto small = make("random_crop", {{"size", std::vector<int64_t>{8, 8}}});
  CHECK_THROWS_WITH(small->out_shape({1, 6, 6}),
                    Catch::Contains("required crop size (8, 8) is larger than input image size (6, 6)"));
  // pad_if_needed pads both sides by the missing size (torchvision), here with edge values.
  auto needed =
      make("random_crop",
           {{"size", std::vector<int64_t>{8, 7}}, {"pad_if_needed", true}, {"padding_mode", std::string("edge")}});
  CHECK(needed->out_shape({1, 6, 6}) == Shape{1, 8, 7});
  Generator g5(13), g6(13);
  auto b2 = fn::random_crop_box(10, 8, 8, 7, g6);
  CHECK(same(needed->apply(x, g5), fn::crop(fn::pad(x, {1, 2}, 0, fn::PadMode::Edge), b2.top, b2.left, 8, 7)));
}

TEST_CASE("transforms: random_resized_crop follows RandomResizedCrop.get_params", "[transforms]") {
  Generator g(17);
  int fallback = 0;
  for (int i = 0; i < 2000; ++i) {
    auto b = fn::random_resized_crop_box(30, 40, {0.08, 1.0}, {3.0 / 4, 4.0 / 3}, g);
    REQUIRE(b.height >= 1);
    REQUIRE(b.width >= 1);
    REQUIRE(b.top >= 0);
    REQUIRE(b.left >= 0);
    REQUIRE(b.top + b.height <= 30);
    REQUIRE(b.left + b.width <= 40);
    const double area = static_cast<double>(b.height * b.width) / 1200.0;
    const double ratio = static_cast<double>(b.width) / static_cast<double>(b.height);
    // Rounding w and h to integers moves the area and ratio a little.
    CHECK(area >= 0.05);
    CHECK(ratio >= 0.6);
    CHECK(ratio <= 1.6);
    fallback += b.height == 30 && b.width == 40;
  }
  CHECK(fallback < 40);  // a 4:3 image rarely needs all 10 tries
  // Impossible areas: 10 failed tries, then the central crop clamped to the ratio range.
  auto b = fn::random_resized_crop_box(10, 40, {2.0, 3.0}, {1.0, 2.0}, g);
  CHECK(b.height == 10);
  CHECK(b.width == 20);
  CHECK(b.top == 0);
  CHECK(b.left == 10);
  // The transform = resized_crop at the box drawn from the same generator state.
  Tensor x = image_u8(3, 30, 40);
  auto t = make("random_resized_crop", {{"size", std::vector<int64_t>{16, 16}}});
  CHECK(t->out_shape({3, 30, 40}) == Shape{3, 16, 16});
  for (uint64_t seed : {1, 2, 3}) {
    Generator g1(seed), g2(seed);
    auto box = fn::random_resized_crop_box(30, 40, {0.08, 1.0}, {3.0 / 4, 4.0 / 3}, g2);
    CHECK(same(t->apply(x, g1), fn::resized_crop(x, box.top, box.left, box.height, box.width, 16, 16)));
  }
  CHECK_THROWS_WITH(make("random_resized_crop", {{"size", int64_t{8}}, {"scale", std::vector<double>{0.9, 0.1}}}),
                    Catch::Contains("scale must be [min, max]"));
}

TEST_CASE("transforms: random_rotation draws a uniform angle in [-d, d] or [min, max]", "[transforms]") {
  Tensor x = image_u8(3, 9, 9);
  auto t = make("random_rotation", {{"degrees", std::vector<double>{30}}, {"fill", std::vector<double>{1, 2, 3}}});
  CHECK(t->out_shape({3, 9, 9}) == Shape{3, 9, 9});
  CHECK_THROWS_WITH(t->out_shape({1, 9, 9}), Catch::Contains("fill has 3 values for 1 channel(s)"));
  double lo = 1e9, hi = -1e9;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    Generator g1(seed), g2(seed);
    double angle = fn::uniform(g2, -30, 30);
    lo = std::min(lo, angle);
    hi = std::max(hi, angle);
    if (seed < 5)
      CHECK(same(t->apply(x, g1), fn::rotate(x, angle, fn::Interp::Nearest, false, std::nullopt, {1, 2, 3})));
  }
  CHECK(lo >= -30);
  CHECK(lo < -25);
  CHECK(hi < 30);
  CHECK(hi > 25);
  // A degenerate range [a, a] always rotates by a.
  auto fixed =
      make("random_rotation", {{"degrees", std::vector<double>{90, 90}}, {"interpolation", std::string("bilinear")}});
  Tensor want = fn::rotate(x, 90, fn::Interp::Bilinear);
  CHECK(count_equal(*fixed, x, want, 5) == 5);
  CHECK_THROWS_WITH(make("random_rotation", {{"degrees", std::vector<double>{-5}}}),
                    Catch::Contains("d >= 0 (or [d])"));
  CHECK_THROWS_WITH(make("random_rotation", {{"degrees", std::vector<double>{5}}, {"expand", true}}),
                    Catch::Contains("batches cannot be collated"));
}

TEST_CASE("transforms: color_jitter applies its factors in a random order", "[transforms]") {
  Tensor x = image_u8(3, 6, 6);
  // Fixed factors: brightness 0.5 and contrast 1.5 in either order, both orders appear.
  auto t = make("color_jitter",
                {{"brightness", std::vector<double>{0.5, 0.5}}, {"contrast", std::vector<double>{1.5, 1.5}}});
  Tensor bc = fn::adjust_contrast(fn::adjust_brightness(x, 0.5), 1.5);
  Tensor cb = fn::adjust_brightness(fn::adjust_contrast(x, 1.5), 0.5);
  REQUIRE(!same(bc, cb));
  int64_t n_bc = count_equal(*t, x, bc, 400), n_cb = count_equal(*t, x, cb, 400);
  CHECK(n_bc + n_cb == 400);
  CHECK(n_bc > 150);
  CHECK(n_cb > 150);
  // A single value v is [max(0, 1 - v), 1 + v] (hue [-v, v]); 0 switches a jitter off.
  CHECK(count_equal(*make("color_jitter"), x, x, 10) == 10);
  // Saturation and hue leave a 1-channel image as it is (torchvision, as PIL).
  Tensor grey = image_u8(1, 6, 6);
  auto sh = make("color_jitter", {{"saturation", std::vector<double>{0.9}}, {"hue", std::vector<double>{0.5}}});
  CHECK(count_equal(*sh, grey, grey, 10) == 10);
  // Deterministic per generator state, and different across states.
  auto all = make("color_jitter", {{"brightness", std::vector<double>{0.4}},
                                   {"contrast", std::vector<double>{0.4}},
                                   {"saturation", std::vector<double>{0.4}},
                                   {"hue", std::vector<double>{0.1}}});
  Generator g1(21), g2(21), g3(22);
  Tensor y1 = all->apply(x, g1);
  CHECK(same(y1, all->apply(x, g2)));
  CHECK(!same(y1, all->apply(x, g3)));
  CHECK_THROWS_WITH(make("color_jitter", {{"hue", std::vector<double>{0.7}}}), Catch::Contains("hue"));
  CHECK_THROWS_WITH(make("color_jitter", {{"brightness", std::vector<double>{1.5, 0.5}}}),
                    Catch::Contains("brightness"));
}

TEST_CASE("transforms: option errors name the option", "[transforms]") {
  CHECK_THROWS_WITH(make("resize", {{"size", std::vector<int64_t>{4, 5}}, {"max_size", int64_t{9}}}),
                    Catch::Contains("max_size needs a single size"));
  CHECK_THROWS_WITH(make("resize", {{"size", std::vector<int64_t>{4}}, {"interpolation", std::string("lanczos")}}),
                    Catch::Contains("interpolation"));
  CHECK_THROWS_WITH(make("resize", {{"size", std::vector<int64_t>{4, 5, 6}}}), Catch::Contains("s, [s] or [h, w]"));
  CHECK_THROWS_WITH(make("resize", {{"size", std::vector<int64_t>{0}}}), Catch::Contains("s, [s] or [h, w]"));
  CHECK_THROWS_WITH(make("pad", {{"padding", std::vector<int64_t>{1, 2, 3}}}), Catch::Contains("1, 2 or 4 integers"));
  CHECK_THROWS_WITH(make("grayscale", {{"num_output_channels", int64_t{2}}}), Catch::Contains("1 or 3"));
  CHECK_THROWS_WITH(make("random_horizontal_flip", {{"p", 1.5}}), Catch::Contains("p"));
}

TEST_CASE("transforms: a pipeline of augmentations and pixel maps runs them in order on one generator",
          "[transforms]") {
  TransformPipeline p;
  p.add("random_crop", {{"size", int64_t{6}}, {"padding", std::vector<int64_t>{2}}})
      .add("random_horizontal_flip", {})
      .add("color_jitter", {{"brightness", std::vector<double>{0.3}}})
      .to_float()
      .normalize({0.5}, {0.25});
  CHECK(p.out_shape({1, 6, 6}) == Shape{1, 6, 6});
  CHECK(p.out_dtype(DType::U8) == DType::F32);
  CHECK_THROWS_WITH(p.out_shape({1, 6, 6, 1}), Catch::Contains("random_crop"));
  Tensor x = image_u8(1, 6, 6);
  for (uint64_t seed : {1, 2, 3, 4}) {
    Generator g1(seed), g2(seed);
    Tensor got = p(x, g1);
    // By hand: the same draws in the same order, then (v / 255 - 0.5) / 0.25 in float32.
    Tensor y = make("random_crop", {{"size", int64_t{6}}, {"padding", std::vector<int64_t>{2}}})->apply(x, g2);
    y = make("random_horizontal_flip")->apply(y, g2);
    y = make("color_jitter", {{"brightness", std::vector<double>{0.3}}})->apply(y, g2);
    auto v = y.to_vector<uint8_t>();
    std::vector<float> want(v.size());
    for (size_t i = 0; i < v.size(); ++i) want[i] = (static_cast<float>(v[i]) / 255.0f - 0.5f) / 0.25f;
    CHECK(same(got, from_vector(want, {1, 6, 6})));
  }
}

TEST_CASE("transforms: a single number is torchvision's scalar form of a list option", "[transforms]") {
  Tensor x = image_u8(3, 7, 9);
  auto same_transform = [&](const std::string& name, const AttrMap& scalar, const AttrMap& list) {
    INFO(name);
    auto a = make_transform(name, scalar), b = make_transform(name, list);
    CHECK(a->out_shape({3, 7, 9}) == b->out_shape({3, 7, 9}));
    for (uint64_t seed : {1, 2, 3}) {
      Generator g1(seed), g2(seed);
      CHECK(same(a->apply(x, g1), b->apply(x, g2)));
    }
  };
  same_transform("resize", {{"size", int64_t{4}}}, {{"size", std::vector<int64_t>{4}}});
  same_transform("pad", {{"padding", int64_t{2}}}, {{"padding", std::vector<int64_t>{2, 2, 2, 2}}});
  same_transform("random_crop", {{"size", int64_t{5}}, {"padding", int64_t{1}}},
                 {{"size", std::vector<int64_t>{5, 5}}, {"padding", std::vector<int64_t>{1}}});
  same_transform("random_rotation", {{"degrees", 15.0}, {"fill", 9.0}},
                 {{"degrees", std::vector<double>{-15, 15}}, {"fill", std::vector<double>{9, 9, 9}}});
  same_transform("color_jitter", {{"brightness", 0.4}, {"hue", int64_t{0}}},
                 {{"brightness", std::vector<double>{0.6, 1.4}}});
  same_transform("center_crop", {{"size", std::vector<int64_t>{5}}}, {{"size", std::vector<int64_t>{5, 5}}});
}
