// TensorBoard beyond scalars: histograms, hparams and images. Each kind is written with
// TensorBoardWriter and read back by tests/app/read_tfevents.py (an independent wire-format
// reader); histograms and hparams are also compared with what PyTorch 1.13's own
// torch.utils.tensorboard.summary code builds for the same input (tests/app/tb_torch_oracle.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "engine/tensor/tensor.h"
#include "exporters/tensorboard.h"
#include "tests/support/process.h"
#include "tests/support/skip.h"
#include "tests/support/tempdir.h"

#ifndef DLTOOL_SOURCE_DIR
#error "DLTOOL_SOURCE_DIR must be defined (path of the source tree)"
#endif

namespace fs = std::filesystem;
using dl::exporters::HParams;
using dl::exporters::TensorBoardWriter;
using dl::test::read_file;
using dl::test::run_process;
using dl::test::TempDir;

namespace {

const std::string kPython = "/usr/bin/python3";
const std::string kReader = std::string(DLTOOL_SOURCE_DIR) + "/tests/app/read_tfevents.py";
const std::string kOracle = std::string(DLTOOL_SOURCE_DIR) + "/tests/app/tb_torch_oracle.py";

// "" when Debian's python3 with torch and numpy (the oracle's needs) is here, else why not.
const std::string& torch_missing() {
  static const std::string why = [] {
    const auto r = run_process({kPython, "-c", "import torch, numpy"}, {.timeout_s = 120});
    if (r.exit_code == 0) return std::string();
    std::string last = r.err.substr(0, r.err.find_last_not_of('\n') + 1);  // the error itself
    last = last.substr(last.find_last_of('\n') + 1);
    return kPython + " cannot import torch and numpy (the oracle needs them): " + last;
  }();
  return why;
}

// read_tfevents.py's lines for `file`, without the file_version line; REQUIREs success.
std::vector<std::string> reader_lines(const std::string& file) {
  const auto r = run_process({kPython, kReader, file});
  INFO("read_tfevents.py " << file << ": " << r.status_text() << "\n" << r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = r.out.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string line = r.out.substr(start, nl - start);
    if (line.rfind("file_version ", 0) != 0) lines.push_back(line);
  }
  return lines;
}

// The oracle's verdict for `args`: "ok\n" on agreement, else its findings and stderr.
std::string oracle(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kPython, kOracle};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = run_process(argv, {.timeout_s = 300});
  if (r.exit_code == 0 && r.err.empty()) return r.out;
  return r.out + "[" + r.status_text() + "] stderr: " + r.err;
}

template <class T>
std::string raw_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// Writes add_histogram(tag, values, step) into a fresh run directory under `tmp` (the event
// file's path into `events`) and returns the oracle's verdict on it against torch.
template <class T>
std::string histogram_vs_torch(const TempDir& tmp, const std::string& tag,
                               const std::vector<T>& values, std::int64_t step,
                               std::string& events) {
  const std::string kind = sizeof(T) == 4 ? "f32" : "f64";
  const std::string values_file = tmp.file(tag + "." + kind, raw_bytes(values));
  {
    TensorBoardWriter w(tmp.file("run-" + tag));
    w.add_histogram(tag, values, step);
    events = w.path();
  }
  return oracle({"histogram", events, tag, values_file, kind});
}

// torch's default histogram edges, rebuilt here only to pick test values that sit exactly on
// (and next to) bucket edges.
std::vector<double> positive_edges() {
  std::vector<double> e;
  for (double v = 1e-12; v < 1e20; v *= 1.1) e.push_back(v);
  return e;
}

// The PNG of the single image record in event file `file`, decoded by OpenCV (BGR order).
cv::Mat decode_only_png(const std::string& file) {
  // The PNG is the last bytes of the record's payload (encoded_image_string is the Image's last
  // field and Image is the Value's last); find it by its signature and end it at IEND + CRC.
  const std::string data = read_file(file);
  const std::size_t begin = data.find("\x89PNG\r\n\x1a\n");
  const std::size_t iend = data.find("IEND", begin);
  REQUIRE(begin != std::string::npos);
  REQUIRE(iend != std::string::npos);
  const std::vector<unsigned char> png(data.begin() + static_cast<std::ptrdiff_t>(begin),
                                       data.begin() + static_cast<std::ptrdiff_t>(iend + 8));
  return cv::imdecode(png, cv::IMREAD_UNCHANGED);
}

}  // namespace

// ---- histograms ---------------------------------------------------------------------------

TEST_CASE("add_histogram of float32 values: torch's buckets, counts and statistics",
          "[tensorboard]") {
  DLTOOL_SKIP_IF(!torch_missing().empty(), torch_missing());
  TempDir tmp;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values;
  for (int i = 0; i < 100000; ++i) values.push_back(normal(rng) * 0.05f);  // typical weights
  for (int i = 0; i < 1000; ++i) values.push_back(normal(rng) * 1e6f);     // a wide tail
  // Exactly on bucket edges (in float32: an edge rounded to float is near, not on, an edge of
  // double precision -- the float64 case below hits them exactly), zeros of both signs, and
  // values inside the bucket [0, 1e-12) and [-1e-12, 0).
  for (float v : {0.0f, -0.0f, 1e-13f, -1e-13f, 1e-12f, -1e-12f, 1.0f, -1.0f, 3.4e38f})
    values.push_back(v);
  std::string events;
  CHECK(histogram_vs_torch(tmp, "weights_fc1", values, 3, events) == "ok\n");
  const auto lines = reader_lines(events);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind("histogram 3 weights_fc1 ", 0) == 0);
}

TEST_CASE("add_histogram of float64 values on edges, beyond 1e20, inf and NaN: as torch",
          "[tensorboard]") {
  DLTOOL_SKIP_IF(!torch_missing().empty(), torch_missing());
  TempDir tmp;
  const std::vector<double> pos = positive_edges();
  REQUIRE(pos.size() == 774);  // 2 * 774 + 1 = 1549 edges
  std::vector<double> finite;
  for (std::size_t k : {std::size_t{0}, std::size_t{1}, std::size_t{300}, pos.size() - 1}) {
    for (double sign : {1.0, -1.0}) {
      finite.push_back(sign * pos[k]);                                       // on the edge
      finite.push_back(std::nextafter(sign * pos[k], 0.0));                  // just inside
      finite.push_back(std::nextafter(sign * pos[k], sign * HUGE_VAL));      // just outside
    }
  }
  finite.push_back(0.0);
  finite.push_back(-0.0);
  finite.push_back(5e-324);
  finite.push_back(2.5e20);  // beyond the outermost edge: counted in num/sum only
  // Every bucket's neighbourhood: log-uniform magnitudes from 1e-14 to 1e21, both signs.
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> exponent(-14.0, 21.0);
  for (int i = 0; i < 20000; ++i) finite.push_back((i % 2 ? -1.0 : 1.0) * std::pow(10.0, exponent(rng)));
  const double inf = std::numeric_limits<double>::infinity();

  std::string events;
  SECTION("finite values") {
    CHECK(histogram_vs_torch(tmp, "edges", finite, 0, events) == "ok\n");
  }
  SECTION("with inf and NaN (in no bucket; min/max/sum follow numpy)") {
    std::vector<double> v = finite;
    v.push_back(inf);
    v.push_back(-inf);
    v.push_back(std::nan(""));
    CHECK(histogram_vs_torch(tmp, "edges", v, 9, events) == "ok\n");
    const auto lines = reader_lines(events);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].rfind("histogram 9 edges nan nan " + std::to_string(v.size()) + ".0 nan ", 0) ==
          0);
  }
}

TEST_CASE("add_histogram of a Tensor equals the histogram of its values", "[tensorboard]") {
  TempDir tmp;
  std::vector<float> v;
  for (int i = 0; i < 12; ++i) v.push_back(static_cast<float>(i * i) * 0.37f - 9.0f);
  const dl::Tensor t = dl::from_vector(v, {3, 4});
  const dl::Tensor strided = t.transpose(0, 1);  // non-contiguous; same values, other order
  const dl::Tensor f64 = t.to(dl::DType::F64);
  std::string events;
  {
    TensorBoardWriter w(tmp.file("run"));
    w.add_histogram("h", v, 1);
    w.add_histogram("h", strided, 1);
    w.add_histogram("h", f64, 1);
    events = w.path();
  }
  const auto lines = reader_lines(events);
  REQUIRE(lines.size() == 3);
  CHECK(lines[1] == lines[0]);
  CHECK(lines[2] == lines[0]);
}

TEST_CASE("add_histogram rejects empty input and input without a countable value",
          "[tensorboard]") {
  TempDir tmp;
  std::string events;
  {
    TensorBoardWriter w(tmp.file("run"));
    CHECK_THROWS_MATCHES(w.add_histogram("grads/w", std::vector<float>{}, 0),
                         std::invalid_argument,
                         Catch::Message("add_histogram('grads/w'): the input has no element"));
    const std::vector<double> none = {std::nan(""), std::numeric_limits<double>::infinity(), 1e21};
    CHECK_THROWS_WITH(w.add_histogram("grads/w", none, 0),
                      Catch::Contains("grads/w") && Catch::Contains("histogram is empty"));
    CHECK_THROWS_AS(w.add_histogram("t", dl::Tensor(), 0), std::invalid_argument);
    events = w.path();
  }
  CHECK(reader_lines(events).empty());  // nothing half-written
}

// ---- hparams ------------------------------------------------------------------------------

TEST_CASE("add_hparams_run writes what torch's SummaryWriter.add_hparams writes",
          "[tensorboard]") {
  DLTOOL_SKIP_IF(!torch_missing().empty(), torch_missing());
  TempDir tmp;
  const HParams hparams = {{"optimizer", "adamw"}, {"lr", 3e-4},      {"batch_size", 64},
                           {"nesterov", true},     {"amsgrad", false}, {"schedule", std::string("cosine")}};
  const std::vector<std::pair<std::string, double>> metrics = {{"hparam/accuracy", 0.9125},
                                                               {"hparam/loss", 0.27}};
  const std::string spec = tmp.file(
      "spec.json",
      R"({"hparams": [["optimizer", "adamw"], ["lr", 0.0003], ["batch_size", 64],
                      ["nesterov", true], ["amsgrad", false], ["schedule", "cosine"]],
          "metrics": [["hparam/accuracy", 0.9125], ["hparam/loss", 0.27]]})");
  {
    TensorBoardWriter w(tmp.file("logs"));
    w.add_hparams_run("trial-3", hparams, metrics);
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(tmp.path / "logs" / "trial-3")) files.push_back(e.path());
  REQUIRE(files.size() == 1);
  CHECK(oracle({"hparams", files[0].string(), spec}) == "ok\n");
  CHECK_THROWS_AS(TensorBoardWriter(tmp.file("logs")).add_hparams_run("", hparams, metrics),
                  std::invalid_argument);
}

TEST_CASE("add_hparams in the run's own file: plugin records at the step, then the metrics",
          "[tensorboard]") {
  TempDir tmp;
  std::string events;
  {
    TensorBoardWriter w(tmp.file("run"));
    w.add_scalar("val/accuracy", 0.5, 100);
    w.add_hparams({{"lr", 0.1}, {"optimizer", "sgd"}, {"nesterov", true}}, {{"val/accuracy", 0.75}},
                  200);
    events = w.path();
  }
  const auto lines = reader_lines(events);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0].rfind("scalar 100 val/accuracy 0.5 ", 0) == 0);
  CHECK(lines[1] ==
        "hparams 200 _hparams_/experiment "
        R"({"version":0,"experiment":{"hparam_infos":[{"name":"lr","type":3},)"
        R"({"name":"optimizer","type":1},{"name":"nesterov","type":2}],)"
        R"("metric_infos":[{"group":"","tag":"val/accuracy"}]}})");
  // map<string, Value>: protobuf's serialization order of map entries is unspecified, so
  // compare the entries, not their order.
  const std::string start = "hparams 200 _hparams_/session_start_info ";
  REQUIRE(lines[2].rfind(start, 0) == 0);
  for (const char* entry : {R"(["lr","number",0.1])", R"(["optimizer","string","sgd"])",
                            R"(["nesterov","bool",true])"})
    CHECK_THAT(lines[2], Catch::Contains(entry));
  CHECK(lines[3] == R"(hparams 200 _hparams_/session_end_info {"version":0,"session_end_info":{"status":1}})");
  CHECK(lines[4].rfind("scalar 200 val/accuracy 0.75 ", 0) == 0);
}

TEST_CASE("add_hparams rejects a name given twice before writing anything", "[tensorboard]") {
  TempDir tmp;
  std::string events;
  {
    TensorBoardWriter w(tmp.file("run"));
    CHECK_THROWS_MATCHES(w.add_hparams({{"lr", 0.1}, {"lr", 0.2}}, {}, 0), std::invalid_argument,
                         Catch::Message("add_hparams: hparam 'lr' is given twice"));
    CHECK_THROWS_MATCHES(w.add_hparams({}, {{"acc", 1.0}, {"acc", 2.0}}, 0), std::invalid_argument,
                         Catch::Message("add_hparams: metric 'acc' is given twice"));
    events = w.path();
  }
  CHECK(reader_lines(events).empty());
}

// ---- images -------------------------------------------------------------------------------

TEST_CASE("add_image: an RGB(A)/gray HWC image as PNG with TensorBoard's colorspace",
          "[tensorboard]") {
  TempDir tmp;
  // 2 x 3 RGB: pixel (row, col) = (10 * row + col, 100 + col, 200 + row).
  std::vector<std::uint8_t> rgb;
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c)
      for (int v : {10 * r + c, 100 + c, 200 + r}) rgb.push_back(static_cast<std::uint8_t>(v));
  std::string events;
  {
    TensorBoardWriter w(tmp.file("run"));
    w.add_image("samples/rgb", rgb.data(), 2, 3, 3, 5);
    events = w.path();
  }
  const auto lines = reader_lines(events);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind("image 5 samples/rgb 2 3 3 ", 0) == 0);
  const cv::Mat decoded = decode_only_png(events);
  REQUIRE(decoded.rows == 2);
  REQUIRE(decoded.cols == 3);
  REQUIRE(decoded.type() == CV_8UC3);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c) {
      const auto px = decoded.at<cv::Vec3b>(r, c);  // OpenCV decodes to BGR
      CHECK(int(px[2]) == 10 * r + c);
      CHECK(int(px[1]) == 100 + c);
      CHECK(int(px[0]) == 200 + r);
    }

  SECTION("gray and RGBA, and the uint8 Tensor form") {
    TempDir tmp2;
    const std::vector<std::uint8_t> gray = {0, 50, 100, 150, 200, 250};
    std::vector<std::uint8_t> rgba;
    for (int i = 0; i < 4; ++i)
      for (int v : {i, 10 + i, 20 + i, 255 - i}) rgba.push_back(static_cast<std::uint8_t>(v));
    std::string file;
    {
      TensorBoardWriter w(tmp2.file("run"));
      w.add_image("gray", gray.data(), 3, 2, 1, 1);
      w.add_image("rgba", rgba.data(), 2, 2, 4, 2);
      w.add_image("tensor", dl::from_vector(rgb, {2, 3, 3}), 3);
      file = w.path();
    }
    const auto l = reader_lines(file);
    REQUIRE(l.size() == 3);
    CHECK(l[0].rfind("image 1 gray 3 2 1 ", 0) == 0);
    CHECK(l[1].rfind("image 2 rgba 2 2 4 ", 0) == 0);
    // Same pixels, same encoder: the Tensor form's PNG has the pointer form's size.
    CHECK(l[2] == "image 3 tensor" + lines[0].substr(std::string("image 5 samples/rgb").size()));
  }
}

TEST_CASE("add_image_png keeps the bytes, bad input is rejected", "[tensorboard]") {
  TempDir tmp;
  cv::Mat bgr(4, 5, CV_8UC3, cv::Scalar(1, 2, 3));
  std::vector<unsigned char> buf;
  REQUIRE(cv::imencode(".png", bgr, buf));
  const std::string png(buf.begin(), buf.end());
  std::string events;
  {
    TensorBoardWriter w(tmp.file("run"));
    w.add_image_png("png", png, 8);
    CHECK_THROWS_WITH(w.add_image_png("bad", "GIF89a not a png at all....", 0),
                      Catch::Contains("add_image('bad'): not PNG data"));
    const std::uint8_t px[4] = {};
    CHECK_THROWS_WITH(w.add_image("two", px, 1, 2, 2, 0),
                      Catch::Contains("channels must be 1, 3 or 4, got 2"));
    CHECK_THROWS_AS(w.add_image("zero", px, 0, 2, 1, 0), std::invalid_argument);
    CHECK_THROWS_WITH(w.add_image("f32", dl::from_vector(std::vector<float>(6), {1, 2, 3}), 0),
                      Catch::Contains("expected a uint8 [H, W, C] tensor"));
    events = w.path();
  }
  const auto lines = reader_lines(events);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "image 8 png 4 5 3 " + std::to_string(png.size()));
  CHECK(read_file(events).find(png) != std::string::npos);
}
