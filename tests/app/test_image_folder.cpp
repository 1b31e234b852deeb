// data.format image_folder (datasets/formats/image_folder.cpp): samples, order, classes and
// pixels against torchvision's ImageFolder (tests/fixtures/gen_image_folder.py), lazy and
// in-memory decoding, peek, splits, and every bad-input error naming the file.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "datasets/dataloader.h"
#include "datasets/format.h"
#include "datasets/formats/image_folder.h"
#include "datasets/sample.h"
#include "tests/support/fixtures.h"
#include "tests/support/tempdir.h"

namespace fs = std::filesystem;
using namespace dl;
using namespace dl::data;
using Catch::Matchers::Contains;
using dl::test::TempDir;

namespace {

const FormatDef& image_folder() { return format_def("image_folder"); }

// data: {format: image_folder, root: ROOT, color: COLOR, <split>: {dir: DIR}...}
FormatArgs folder_args(const std::string& root, const std::map<std::string, std::string>& dirs,
                       const std::string& color = "rgb", bool in_memory = false) {
  FormatArgs a;
  a.root = root;
  a.options["color"] = color;
  for (const auto& [split, dir] : dirs) a.splits[split]["dir"] = dir;
  a.in_memory = in_memory;
  return a;
}

Splits open_folder(const FormatArgs& a) { return image_folder().open(a); }

// Writes `m` (BGR or gray, as OpenCV stores it) to root/rel in the format of rel's extension.
std::string write_image(const fs::path& root, const std::string& rel, const cv::Mat& m) {
  const fs::path p = root / rel;
  fs::create_directories(p.parent_path());
  REQUIRE(cv::imwrite(p.string(), m));
  return p.string();
}

cv::Mat gray_image(int h, int w, int seed) {
  cv::Mat m(h, w, CV_8UC1);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) m.at<uint8_t>(y, x) = static_cast<uint8_t>(seed * 31 + y * w + x);
  return m;
}

cv::Mat color_image(int h, int w, int seed) {
  cv::Mat m(h, w, CV_8UC3);
  cv::randu(m, cv::Scalar::all(seed), cv::Scalar::all(256));
  return m;
}

std::vector<int64_t> pixels(const Tensor& t) { return t.to(DType::I64).to_vector<int64_t>(); }

// root/<class>/<n>.png, gray 6x5 images: {"a": 2, "b": 3} -> a/0.png a/1.png b/0.png ...
void write_gray_tree(const fs::path& root, const std::map<std::string, int>& counts) {
  int seed = 0;
  for (const auto& [cls, n] : counts)
    for (int i = 0; i < n; ++i) write_image(root, cls + "/" + std::to_string(i) + ".png", gray_image(6, 5, seed++));
}

std::string error_of_open(const FormatArgs& a) {
  try {
    open_folder(a);
  } catch (const DataError& e) {
    return e.what();
  }
  FAIL("open did not throw DataError");
  return "";
}

std::string error_of_get(const Dataset& d, int64_t i) {
  try {
    d.get(i);
  } catch (const DataError& e) {
    return e.what();
  }
  FAIL("get(" << i << ") did not throw DataError");
  return "";
}

}  // namespace

TEST_CASE("image_folder is registered under its torchvision name with its keys", "[datasets][image_folder]") {
  const FormatDef* d = find_format_def("torchvision.datasets.ImageFolder");
  REQUIRE(d != nullptr);
  CHECK(d->name == "image_folder");
  REQUIRE(find_attr(d->attrs, "color") != nullptr);
  CHECK(find_attr(d->attrs, "color")->choices == std::vector<std::string>{"rgb", "gray"});
  REQUIRE(find_attr(d->split_attrs, "dir") != nullptr);
  CHECK(find_attr(d->split_attrs, "dir")->required);
  CHECK(d->peek);
}

TEST_CASE("image_folder: samples, order, classes and pixels equal torchvision's ImageFolder",
          "[datasets][image_folder]") {
  // 15 files of 9 formats in nested folders (torchvision's order: sorted(os.walk) by directory
  // path, so cat/sub-x/ comes before cat/sub/deeper/), a skipped .txt, an upper-case class.
  const auto cases = dl::test::load_fixtures("image_folder.txt");
  const std::string root = dl::test::source_path("tests/fixtures/image_folder");
  const auto& classes = dl::test::find_case(cases, "classes");
  for (const bool in_memory : {false, true}) {
    for (const std::string color : {"rgb", "gray"}) {
      INFO("color " << color << ", in_memory " << in_memory);
      const Splits s = open_folder(folder_args(root, {{"train", "train"}}, color, in_memory));
      REQUIRE(s.train);
      CHECK_FALSE(s.val);
      CHECK_FALSE(s.test);
      const Dataset& d = *s.train;
      CHECK(d.name() == "train");
      REQUIRE(d.size() == static_cast<int64_t>(cases.size()) - 1);
      const DatasetInfo& info = d.info();
      CHECK(info.class_names == std::vector<std::string>{"Zebra", "cat", "dog"});
      CHECK(classes.attr("names") == "Zebra cat dog");
      CHECK(info.num_classes == 3);
      CHECK(info.target_kind == TargetKind::class_index);
      CHECK(info.input_dtype == DType::U8);
      CHECK(info.input_shape == Shape{color == "rgb" ? 3 : 1, 4, 5});  // the first image's
      for (int64_t i = 0; i < d.size(); ++i) {
        const auto& c = dl::test::find_case(cases, "sample" + std::to_string(i));
        INFO(c.attr("path"));
        CHECK(d.describe(i) == (fs::path(root) / "train" / c.attr("path")).string());
        CHECK(d.class_of(i) == c.attr_i("target"));
        const Sample smp = d.get(i);
        CHECK(smp.at(kTarget).dtype() == DType::I64);
        CHECK(smp.at(kTarget).dim() == 0);
        CHECK(smp.at(kTarget).item() == static_cast<double>(c.attr_i("target")));
        const Tensor& x = smp.at(kInput);
        CHECK(x.dtype() == DType::U8);
        const Tensor& want = c.t(color);
        REQUIRE(x.shape() == want.shape());
        CHECK(pixels(x) == want.to_vector<int64_t>());
      }
    }
  }
}

TEST_CASE("image_folder: val and test splits, peek, concurrent get", "[datasets][image_folder]") {
  TempDir tmp;
  write_gray_tree(tmp.path / "train", {{"ankle boot", 3}, {"bag", 2}});
  write_gray_tree(tmp.path / "val", {{"ankle boot", 1}, {"bag", 1}});
  write_gray_tree(tmp.path / "test", {{"ankle boot", 1}, {"bag", 2}});
  const FormatArgs a = folder_args(tmp.path.string(), {{"train", "train"}, {"val", "val"}, {"test", "test"}}, "gray");
  const Splits s = open_folder(a);
  REQUIRE((s.train && s.val && s.test));
  CHECK(s.train->size() == 5);
  CHECK(s.val->size() == 2);
  CHECK(s.test->size() == 3);
  CHECK(s.val->name() == "val");
  CHECK(s.test->info().class_names == std::vector<std::string>{"ankle boot", "bag"});
  CHECK(s.test->class_of(2) == 1);
  CHECK(s.test->describe(1) == (tmp.path / "test/bag/0.png").string());

  // peek: classes and the first image's shape, without decoding the others (a corrupt later
  // file does not stop it; open() only fails when that file is read).
  write_image(tmp.path, "train/bag/9.png", gray_image(2, 2, 0));
  dl::test::write_file((tmp.path / "train/bag/8.png").string(), "not a png");
  const DatasetInfo p = image_folder().peek(a);
  CHECK(p.input_shape == Shape{1, 6, 5});
  CHECK(p.class_names == std::vector<std::string>{"ankle boot", "bag"});
  CHECK(p.num_classes == 2);

  // get() is called from loader threads at once: same samples as one thread.
  const Splits s2 = open_folder(a);
  const Dataset& d = *s2.train;
  std::vector<std::vector<int64_t>> seq;
  for (int64_t i = 0; i < 5; ++i) seq.push_back(pixels(d.get(i).at(kInput)));
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 50; ++rep)
        for (int64_t i = 0; i < 5; ++i) bad[t] += pixels(d.get(i).at(kInput)) != seq[static_cast<size_t>(i)];
    });
  for (auto& th : threads) th.join();
  CHECK(bad == std::vector<int>(4, 0));
  CHECK_THAT(error_of_get(d, 5), Contains((tmp.path / "train/bag/8.png").string()));
  CHECK(pixels(d.get(6).at(kInput)).size() == 4);  // 2x2: sizes may differ within a folder
}

TEST_CASE("image_folder: images of different sizes load, collate refuses to stack them", "[datasets][image_folder]") {
  TempDir tmp;
  write_image(tmp.path, "train/a/0.png", color_image(4, 6, 1));
  write_image(tmp.path, "train/a/1.jpg", color_image(5, 3, 2));
  write_image(tmp.path, "train/b/0.bmp", color_image(4, 6, 3));
  const Splits s = open_folder(folder_args(tmp.path.string(), {{"train", "train"}}));
  CHECK(s.train->get(0).at(kInput).shape() == Shape{3, 4, 6});
  CHECK(s.train->get(1).at(kInput).shape() == Shape{3, 5, 3});
  CHECK_NOTHROW(collate({s.train->get(0), s.train->get(2)}));
  CHECK_THROWS_AS(collate({s.train->get(0), s.train->get(1)}), std::invalid_argument);
}

TEST_CASE("image_folder: BGR files become R, G, B planes, gray files are replicated for rgb",
          "[datasets][image_folder]") {
  TempDir tmp;
  cv::Mat bgr(1, 2, CV_8UC3);
  bgr.at<cv::Vec3b>(0, 0) = {10, 20, 30};  // B, G, R
  bgr.at<cv::Vec3b>(0, 1) = {200, 100, 0};
  write_image(tmp.path, "train/c/x.png", bgr);
  write_image(tmp.path, "train/c/y.bmp", bgr);
  write_image(tmp.path, "train/g/z.png", gray_image(1, 2, 0));  // pixels 0, 1
  const Splits s = open_folder(folder_args(tmp.path.string(), {{"train", "train"}}));
  CHECK(pixels(s.train->get(0).at(kInput)) == std::vector<int64_t>{30, 0, 20, 100, 10, 200});
  CHECK(pixels(s.train->get(1).at(kInput)) == std::vector<int64_t>{30, 0, 20, 100, 10, 200});
  CHECK(pixels(s.train->get(2).at(kInput)) == std::vector<int64_t>{0, 1, 0, 1, 0, 1});
  // PIL's convert("L"): (R*19595 + G*38470 + B*7471 + 0x8000) >> 16.
  const Splits g = open_folder(folder_args(tmp.path.string(), {{"train", "train"}}, "gray"));
  CHECK(pixels(g.train->get(0).at(kInput)) ==
        std::vector<int64_t>{(30 * 19595 + 20 * 38470 + 10 * 7471 + 0x8000) >> 16,
                             (0 * 19595 + 100 * 38470 + 200 * 7471 + 0x8000) >> 16});
}

TEST_CASE("image_folder: the DataLoader batches decoded images with workers", "[datasets][image_folder]") {
  TempDir tmp;
  write_gray_tree(tmp.path / "train", {{"a", 5}, {"b", 4}});
  const Splits s = open_folder(folder_args(tmp.path.string(), {{"train", "train"}}, "gray"));
  LoaderOptions o;
  o.batch_size = 4;
  o.workers = 2;
  DataLoader loader(s.train, o);
  loader.start_epoch(0);
  std::vector<int64_t> targets;
  while (auto b = loader.next()) {
    CHECK(b->input().dtype() == DType::F32);
    CHECK(b->input().shape() == Shape{b->size(), 1, 6, 5});
    for (int64_t t : b->target().to_vector<int64_t>()) targets.push_back(t);
  }
  CHECK(targets == std::vector<int64_t>{0, 0, 0, 0, 0, 1, 1, 1, 1});
}

TEST_CASE("image_folder: bad input is a DataError naming the file or folder", "[datasets][image_folder]") {
  TempDir tmp;
  const std::string root = tmp.path.string();
  const FormatArgs train_only = folder_args(root, {{"train", "train"}});

  SECTION("missing root") {
    CHECK_THAT(error_of_open(train_only),
               Contains("data.train.dir") && Contains(root + "/train") && Contains("does not exist"));
  }
  SECTION("the split's folder is a file") {
    dl::test::write_file(tmp.file("train"), "x");
    CHECK_THAT(error_of_open(train_only), Contains(root + "/train") && Contains("not a directory"));
  }
  SECTION("no class folders") {
    write_image(tmp.path, "train/loose.png", gray_image(2, 2, 0));
    CHECK_THAT(error_of_open(train_only),
               Contains("couldn't find any class folder in '" + root + "/train'") && Contains("<class>/<image>"));
  }
  SECTION("an empty class folder (a non-image file is skipped)") {
    write_gray_tree(tmp.path / "train", {{"full", 1}});
    fs::create_directories(tmp.path / "train/lonely/deeper");
    dl::test::write_file((tmp.path / "train/lonely/readme.txt").string(), "x");
    dl::test::write_file((tmp.path / "train/lonely/photo.gif").string(), "x");
    CHECK_THAT(error_of_open(train_only), Contains("found no valid file for the classes lonely") && Contains(".png") &&
                                              Contains("2 other files skipped"));
  }
  SECTION("a split without dir") {
    write_gray_tree(tmp.path / "train", {{"a", 1}});
    FormatArgs a = train_only;
    a.splits["test"] = {};
    CHECK_THROWS_WITH(open_folder(a), Contains("data.test.dir is required"));
  }
  SECTION("train and test with different classes") {
    write_gray_tree(tmp.path / "train", {{"a", 1}, {"b", 1}, {"c", 1}});
    write_gray_tree(tmp.path / "test", {{"a", 1}, {"b", 1}, {"d", 1}});
    CHECK_THAT(error_of_open(folder_args(root, {{"train", "train"}, {"test", "test"}})),
               Contains(root + "/test") && Contains(root + "/train") && Contains("missing in test: c") &&
                   Contains("not in train: d"));
  }
  SECTION("broken files: open indexes them, get() names them; in_memory fails at open") {
    write_gray_tree(tmp.path / "train", {{"a", 1}});
    const cv::Mat img = color_image(16, 16, 5);
    std::vector<uchar> png, jpg, sr;
    cv::imencode(".png", img, png);
    cv::imencode(".jpg", img, jpg);
    cv::imencode(".sr", img, sr);
    const std::string sun_raster(sr.begin(), sr.end());
    const std::string good_jpg(jpg.begin(), jpg.end());
    struct Bad {
      std::string name, bytes, message;
    };
    const std::vector<Bad> bad = {
        {"b/corrupt.png", std::string(png.begin(), png.begin() + 40) + std::string(200, '\x5a'), "cannot decode"},
        {"b/truncated.png", std::string(png.begin(), png.begin() + static_cast<long>(png.size() * 6 / 10)),
         "cannot decode"},
        {"b/truncated.jpg", good_jpg.substr(0, good_jpg.size() * 7 / 10), "truncated JPEG"},
        {"b/text.jpeg", "hello, I am a text file\n", "not a PNG/JPEG/BMP"},
        {"b/sunraster.png", sun_raster, "not a PNG/JPEG/BMP"},  // OpenCV decodes it; ImageFolder does not
        {"b/empty.bmp", "", "empty file"},
    };
    fs::create_directories(tmp.path / "train/b");
    for (const Bad& b : bad) dl::test::write_file((tmp.path / "train" / b.name).string(), b.bytes);
    // A JPEG with bytes after its end marker is complete (cameras append trailers).
    dl::test::write_file((tmp.path / "train/b/trailer.jpg").string(), good_jpg + "TRAILER");

    const Splits s = open_folder(train_only);
    REQUIRE(s.train->size() == 8);  // a/0.png, then b/ by name
    for (int64_t i = 1; i < s.train->size(); ++i) {
      const std::string path = s.train->describe(i);
      INFO(path);
      if (path.ends_with("trailer.jpg")) {
        CHECK(s.train->get(i).at(kInput).shape() == Shape{3, 16, 16});
        continue;
      }
      const Bad& b = *std::find_if(bad.begin(), bad.end(), [&](const Bad& x) { return path.ends_with(x.name); });
      CHECK_THAT(error_of_get(*s.train, i), Contains(path) && Contains(b.message) && Contains("replace or delete"));
    }
    FormatArgs mem = train_only;
    mem.in_memory = true;
    CHECK_THAT(error_of_open(mem), Contains(root + "/train/b/corrupt.png"));  // the first bad one in order
  }
}

TEST_CASE("decode_image: errors name the source and never crash on odd bytes", "[datasets][image_folder]") {
  for (const std::string& bytes : {std::string(), std::string("\xFF\xD8\xFF", 3), std::string("\xFF\xD8\xFF\xD9", 4),
                                   std::string("\x89PNG\r\n\x1a\n", 8), std::string("BM") + std::string(60, '\0')}) {
    CHECK_THROWS_AS(decode_image(bytes, ImageColor::rgb, "mem.bin"), DataError);
    CHECK_THROWS_WITH(decode_image(bytes, ImageColor::gray, "mem.bin"), Contains("mem.bin"));
  }
}

TEST_CASE("image_folder: a decoded image is kept, later reads skip the file", "[datasets][image_folder]") {
  TempDir tmp;
  write_gray_tree(tmp.path / "train", {{"a", 3}, {"b", 3}});
  const FormatArgs a = folder_args(tmp.path.string(), {{"train", "train"}}, "gray");
  // The first reads come from 4 threads at once (they race to store each image): all correct.
  const Splits s = open_folder(a);
  const Dataset& d = *s.train;
  std::vector<std::vector<int64_t>> want;
  for (int64_t i = 0; i < 6; ++i) want.push_back(pixels(image_folder().open(a).train->get(i).at(kInput)));
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int64_t i = 0; i < 6; ++i) {
        const int64_t k = (i + t) % 6;
        bad[t] += pixels(d.get(k).at(kInput)) != want[static_cast<size_t>(k)];
      }
    });
  for (auto& th : threads) th.join();
  CHECK(bad == std::vector<int>(4, 0));
  // Once decoded, an image no longer needs its file (later epochs do not decode again).
  fs::remove_all(tmp.path / "train/b");
  for (int64_t i = 0; i < 6; ++i) CHECK(pixels(d.get(i).at(kInput)) == want[static_cast<size_t>(i)]);
  // A dataset opened afresh reads the files again.
  write_image(tmp.path, "train/b/0.png", gray_image(6, 5, 40));
  const std::vector<int64_t> fresh = pixels(open_folder(a).train->get(3).at(kInput));
  CHECK(fresh != want[3]);
  CHECK(pixels(d.get(3).at(kInput)) == want[3]);
}
