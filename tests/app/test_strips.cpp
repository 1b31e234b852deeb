// data.format: fashion_strips (datasets/formats/strips.cpp): plan_strips equals the Python
// construction (tests/fixtures/gen_strips.py), strips of small IDX files (shapes, pixels in their
// columns, zero padding, targets = the IDX labels of the images used), determinism and the seed,
// default num_strips, collate's target_lengths, the val split's required files, peek, and the
// real Fashion-MNIST files when installed.
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "datasets/format.h"
#include "datasets/formats/strips.h"
#include "datasets/idx.h"
#include "tests/support/fixtures.h"
#include "tests/support/open_format.h"
#include "tests/support/skip.h"
#include "tests/support/tempdir.h"

using namespace dl;
using namespace dl::data;
using dl::test::TempDir;
using Ids = std::vector<int64_t>;

namespace {

Ids ids(const Tensor& t) { return t.to_vector<int64_t>(); }

Splits open_strips(const std::string& root, AttrMap options, std::map<std::string, AttrMap> splits,
                   SplitOptions split_options = {}) {
  return dl::test::open_format("fashion_strips", root, std::move(options), std::move(splits), split_options);
}

// M tiny images [H = 2, W = 3] whose pixels encode the image index (10 i + position + 1) and
// labels i % 4, as train.idx / train-labels.idx in `dir`.
constexpr int64_t kH = 2, kW = 3;
void write_tiny_idx(const TempDir& dir, int64_t m, const std::string& prefix) {
  std::vector<uint8_t> px(static_cast<size_t>(m * kH * kW)), lab(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t p = 0; p < kH * kW; ++p)
      px[static_cast<size_t>(i * kH * kW + p)] = static_cast<uint8_t>(10 * i + p + 1);
    lab[static_cast<size_t>(i)] = static_cast<uint8_t>(i % 4);
  }
  write_idx_u8((dir.path / (prefix + "-images.idx")).string(), {m, kH, kW}, px.data(), true);
  write_idx_u8((dir.path / (prefix + "-labels.idx")).string(), {m}, lab.data(), false);
}

AttrMap files(const std::string& prefix, int64_t num_strips) {
  return {{"images", prefix + "-images.idx"}, {"labels", prefix + "-labels.idx"}, {"num_strips", num_strips}};
}

// Every strip of `d` against the plan and the source IDX images/labels (u8 [M, H, W], i64 [M]).
void check_strips(const Dataset& d, const StripPlan& plan, const Tensor& images, const Tensor& labels,
                  int64_t max_len) {
  const int64_t H = images.size(1), W = images.size(2);
  const std::vector<uint8_t> src = images.contiguous().to_vector<uint8_t>();
  const Ids lab = labels.to(DType::I64).to_vector<int64_t>();
  REQUIRE(d.size() + 1 == static_cast<int64_t>(plan.offsets.size()));
  for (int64_t i = 0; i < d.size(); ++i) {
    INFO("strip " << i);
    const Sample s = d.get(i);
    const Tensor& x = s.at(kInput);
    REQUIRE(x.shape() == Shape{1, H, W * max_len});
    REQUIRE(x.dtype() == DType::U8);
    const std::vector<uint8_t> px = x.to_vector<uint8_t>();
    const int64_t b = plan.offsets[static_cast<size_t>(i)], e = plan.offsets[static_cast<size_t>(i) + 1];
    CHECK(e - b >= 1);
    CHECK(e - b <= max_len);
    Ids want;
    for (int64_t k = b; k < e; ++k) want.push_back(lab[static_cast<size_t>(plan.images[static_cast<size_t>(k)])]);
    CHECK(ids(s.at(kTarget)) == want);
    for (int64_t r = 0; r < H; ++r)
      for (int64_t c = 0; c < W * max_len; ++c) {
        const int64_t k = c / W;  // which image's columns
        const uint8_t expect =
            k < e - b ? src[static_cast<size_t>((plan.images[static_cast<size_t>(b + k)] * H + r) * W + c % W)] : 0;
        if (px[static_cast<size_t>(r * W * max_len + c)] != expect) {
          FAIL_CHECK("pixel (" << r << ", " << c << ") is " << int(px[static_cast<size_t>(r * W * max_len + c)])
                               << ", expected " << int(expect));
          return;
        }
      }
  }
}

}  // namespace

TEST_CASE("fashion_strips: plan_strips equals the Python construction", "[datasets][strips]") {
  const auto cases = dl::test::load_fixtures("strips.txt");
  REQUIRE(cases.size() >= 5);
  for (const auto& c : cases) {
    INFO("case " << c.name);
    const StripPlan p = plan_strips(c.attr_i("num_images"), c.attr_i("num_strips"), c.attr_i("max_len"),
                                    static_cast<uint64_t>(c.attr_i("seed")), static_cast<uint64_t>(c.attr_i("stream")));
    CHECK(p.offsets == ids(c.t("offsets")));
    CHECK(p.images == ids(c.t("images")));
  }
  // Every image once before any twice.
  const StripPlan p = plan_strips(10, 40, 5, 3, 0);
  REQUIRE(p.images.size() >= 10);
  Ids first(p.images.begin(), p.images.begin() + 10);
  std::sort(first.begin(), first.end());
  CHECK(first == Ids{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK_THROWS_AS(plan_strips(0, 1, 5, 0, 0), std::invalid_argument);
  CHECK_THROWS_AS(plan_strips(5, 1, 0, 0, 0), std::invalid_argument);
}

TEST_CASE("fashion_strips: strips of IDX images, targets their labels, deterministic", "[datasets][strips]") {
  TempDir dir;
  write_tiny_idx(dir, 9, "train");
  write_tiny_idx(dir, 5, "test");
  const Tensor images = read_idx_u8((dir.path / "train-images.idx").string());
  const Tensor labels = read_idx_u8((dir.path / "train-labels.idx").string());
  const AttrMap opts = {{"max_len", int64_t{4}}, {"seed", int64_t{11}}};
  Splits s = open_strips(dir.path.string(), opts, {{"train", files("train", 25)}, {"test", files("test", 0)}});
  REQUIRE(s.train);
  const DatasetInfo& info = s.train->info();
  CHECK(info.input_shape == Shape{1, kH, kW * 4});
  CHECK(info.input_dtype == DType::U8);
  CHECK(info.target_kind == TargetKind::sequence);
  CHECK(info.target_shape == Shape{-1});
  CHECK(info.num_classes == 4);
  CHECK(s.train->size() == 25);
  check_strips(*s.train, plan_strips(9, 25, 4, 11, 0), images, labels, 4);
  // The test split: num_strips 0 = one strip per image, drawn from stream 2.
  REQUIRE(s.test);
  CHECK(s.test->size() == 5);
  check_strips(*s.test, plan_strips(5, 5, 4, 11, 2), read_idx_u8((dir.path / "test-images.idx").string()),
               read_idx_u8((dir.path / "test-labels.idx").string()), 4);
  CHECK_THAT(s.train->describe(0), Catch::StartsWith("train-images.idx strip 0: images ["));

  // Opening again gives the same strips; another seed others.
  Splits again = open_strips(dir.path.string(), opts, {{"train", files("train", 25)}});
  Splits other = open_strips(dir.path.string(), {{"max_len", int64_t{4}}, {"seed", int64_t{12}}},
                             {{"train", files("train", 25)}});
  bool differs = false;
  for (int64_t i = 0; i < 25; ++i) {
    CHECK(ids(again.train->get(i).at(kTarget)) == ids(s.train->get(i).at(kTarget)));
    CHECK(again.train->get(i).at(kInput).to_vector<uint8_t>() == s.train->get(i).at(kInput).to_vector<uint8_t>());
    differs = differs || s.train->describe(i) != other.train->describe(i);
  }
  CHECK(differs);

  // collate pads the ragged targets and adds their lengths.
  std::vector<Sample> batch;
  Ids lengths;
  for (int64_t i = 0; i < 6; ++i) {
    batch.push_back(s.train->get(i));
    lengths.push_back(batch.back().at(kTarget).size(0));
  }
  TensorDict b = collate(batch);
  CHECK(b.at(kInput).shape() == Shape{6, 1, kH, kW * 4});
  CHECK(ids(b.at("target_lengths")) == lengths);
  CHECK(b.at(kTarget).size(1) == *std::max_element(lengths.begin(), lengths.end()));
}

TEST_CASE("fashion_strips: carved and explicit validation splits, errors", "[datasets][strips]") {
  TempDir dir;
  write_tiny_idx(dir, 6, "train");
  SplitOptions carve;
  carve.val_size = 4;
  Splits s = open_strips(dir.path.string(), {}, {{"train", files("train", 20)}}, carve);
  CHECK(s.train->size() == 16);
  REQUIRE(s.val);
  CHECK(s.val->size() == 4);
  CHECK(s.val->info().target_kind == TargetKind::sequence);
  // An explicit val split needs its files (Fashion-MNIST has no validation file).
  const AttrMap val_without_files = {{"num_strips", int64_t{2}}};
  CHECK_THROWS_WITH(open_strips(dir.path.string(), {}, {{"train", files("train", 3)}, {"val", val_without_files}}),
                    Catch::Contains("data.val.images is required"));
  Splits v = open_strips(dir.path.string(), {}, {{"train", files("train", 3)}, {"val", files("train", 2)}});
  REQUIRE(v.val);
  CHECK(v.val->size() == 2);
  // A missing file is a DataError naming it.
  CHECK_THROWS_WITH(open_strips(dir.path.string(), {}, {{"train", files("nope", 3)}}),
                    Catch::Contains("nope-images.idx"));
  CHECK_THROWS_WITH(open_strips(dir.path.string(), {{"classes", std::vector<std::string>{"a", "b"}}},
                                {{"train", files("train", 3)}}),
                    Catch::Contains("data.classes names 2 classes but the labels have 4"));
  // peek: the training split's info from the header only.
  const FormatDef& def = format_def("fashion_strips");
  FormatArgs args;
  args.root = dir.path.string();
  args.options = {{"max_len", int64_t{3}}};
  fill_attr_defaults(def.attrs, args.options);
  args.splits["train"] = files("train", 3);
  fill_attr_defaults(def.split_attrs, args.splits["train"]);
  const DatasetInfo peeked = def.peek(args);
  CHECK(peeked.input_shape == Shape{1, kH, kW * 3});
  CHECK(peeked.target_kind == TargetKind::sequence);
}

TEST_CASE("fashion_strips: the real Fashion-MNIST files, [1, 28, 140] strips", "[datasets][strips][fashion]") {
  const std::string dir = kFashionMnistDir;
  DLTOOL_SKIP_IF(!std::filesystem::exists(dir + "/t10k-images-idx3-ubyte.gz"), "Fashion-MNIST is not installed");
  // No root: Fashion-MNIST's directory and file names are the defaults.
  Splits s = open_strips("", {}, {{"train", {{"num_strips", int64_t{40}}}}, {"test", {{"num_strips", int64_t{40}}}}});
  REQUIRE(s.test);
  CHECK(s.train->info().input_shape == Shape{1, 28, 140});
  CHECK(s.train->size() == 40);
  check_strips(*s.test, plan_strips(10000, 40, 5, 0, 2), read_idx_u8(dir + "/t10k-images-idx3-ubyte.gz"),
               read_idx_u8(dir + "/t10k-labels-idx1-ubyte.gz"), 5);
  // The plans pinned by the Python fixture are the ones the format uses.
  const auto cases = dl::test::load_fixtures("strips.txt");
  const auto& fx = dl::test::find_case(cases, "fashion_test");
  const Ids off = ids(fx.t("offsets")), img = ids(fx.t("images"));
  for (int64_t i = 0; i < 40; ++i) {
    std::string want = "t10k-images-idx3-ubyte.gz strip " + std::to_string(i) + ": images [";
    for (int64_t k = off[static_cast<size_t>(i)]; k < off[static_cast<size_t>(i) + 1]; ++k)
      want += (k == off[static_cast<size_t>(i)] ? "" : ", ") + std::to_string(img[static_cast<size_t>(k)]);
    CHECK(s.test->describe(i) == want + "]");
  }
}

TEST_CASE("fashion_strips: holdout keeps the last images for the val strips, out of every training strip",
          "[datasets][strips]") {
  TempDir dir;
  write_tiny_idx(dir, 10, "train");
  const Tensor images = read_idx_u8((dir.path / "train-images.idx").string());
  const Tensor labels = read_idx_u8((dir.path / "train-labels.idx").string());
  const AttrMap opts = {{"max_len", int64_t{3}}, {"seed", int64_t{5}}, {"holdout", int64_t{4}}};
  Splits s = open_strips(dir.path.string(), opts, {{"train", files("train", 30)}});
  REQUIRE(s.train);
  REQUIRE(s.val);
  CHECK(s.train->size() == 30);
  CHECK(s.val->size() == 4);  // holdout_strips 0: one strip per held-out image
  // Train: images 0-5 with stream 0; val: images 6-9 with stream 1, indices counted from image 6.
  check_strips(*s.train, plan_strips(6, 30, 3, 5, 0), images.narrow(0, 0, 6), labels.narrow(0, 0, 6), 3);
  check_strips(*s.val, plan_strips(4, 4, 3, 5, 1), images.narrow(0, 6, 4), labels.narrow(0, 6, 4), 3);
  // No pixel of a held-out image is in a training strip (pixel values encode the image index),
  // and describe() names the file's own image indices.
  for (int64_t i = 0; i < s.train->size(); ++i)
    for (uint8_t v : s.train->get(i).at(kInput).to_vector<uint8_t>()) REQUIRE((v == 0 || (v - 1) / 10 < 6));
  const StripPlan val_plan = plan_strips(4, 4, 3, 5, 1);
  std::string want = "train-images.idx strip 0: images [";
  for (int64_t k = val_plan.offsets[0]; k < val_plan.offsets[1]; ++k)
    want += (k == val_plan.offsets[0] ? "" : ", ") + std::to_string(6 + val_plan.images[static_cast<size_t>(k)]);
  CHECK(s.val->describe(0) == want + "]");
  // holdout_strips sets the val split's size.
  AttrMap more = opts;
  more["holdout_strips"] = int64_t{9};
  CHECK(open_strips(dir.path.string(), more, {{"train", files("train", 5)}}).val->size() == 9);
  // Errors: holdout with an explicit val split, and a holdout that leaves nothing to train on.
  CHECK_THROWS_WITH(open_strips(dir.path.string(), opts, {{"train", files("train", 3)}, {"val", files("train", 2)}}),
                    Catch::Contains("data.holdout 4 and data.val both give a validation split"));
  AttrMap all = opts;
  all["holdout"] = int64_t{10};
  CHECK_THROWS_WITH(open_strips(dir.path.string(), all, {{"train", files("train", 3)}}),
                    Catch::Contains("data.holdout 10 of its 10 images leaves none to train on"));
  // The format makes the val split itself (configs may refer to val/ metrics).
  CHECK(format_def("fashion_strips").makes_val(opts));
  CHECK_FALSE(format_def("fashion_strips").makes_val({{"max_len", int64_t{3}}}));
}
