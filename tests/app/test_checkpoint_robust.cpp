// Checkpoint files under hostile conditions, through the real dltool binary: half-precision
// weights on every path that applies a state_dict, a disk that fills up at the final save,
// h5dump/h5copy on what dltool writes, and the temporary files a killed save leaves behind.
// (Random SIGKILLs during saves: tests/app/test_checkpoint_atomic.cpp.)
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>

#include "tests/app/checkpoint_test_util.h"
#include "tests/support/fixtures.h"

using namespace ckpt_test;
using Catch::Contains;
using dl::Checkpoint;

namespace {

bool have_fashion_mnist() { return fs::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"); }

std::string fixture(const std::string& name) { return dl::test::source_path("tests/fixtures/" + name); }

// A CPU tensor of `dt` holding the raw 16-bit patterns `bits`.
Tensor from_bits(const std::vector<uint16_t>& bits, DType dt) {
  Tensor t = dl::empty({static_cast<int64_t>(bits.size())}, dt);
  std::memcpy(t.raw_data(), bits.data(), bits.size() * 2);
  return t;
}
std::vector<uint16_t> bits_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  const auto* p = static_cast<const uint16_t*>(c.raw_data());
  return {p, p + c.numel()};
}
uint16_t bits_of(float v, DType dt) { return bits_of(dl::from_vector(std::vector<float>{v}, {1}).to(dt))[0]; }

// All 65536 patterns of a 16-bit float type.
std::vector<uint16_t> all_patterns() {
  std::vector<uint16_t> v(65536);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint16_t>(i);
  return v;
}

}  // namespace

TEST_CASE("float16 and bfloat16 convert to and from every dtype, rounding like PyTorch", "[checkpoint][half]") {
  SECTION("every float16 and bfloat16 value survives a round trip through float32 and float64") {
    for (DType half : {DType::F16, DType::BF16}) {
      const int exp_shift = half == DType::F16 ? 10 : 7;
      const uint16_t exp_mask = half == DType::F16 ? 0x7C00 : 0x7F80;
      const std::vector<uint16_t> in = all_patterns();
      for (DType wide : {DType::F32, DType::F64}) {
        INFO(dl::dtype_name(half) << " via " << dl::dtype_name(wide));
        const std::vector<uint16_t> back = bits_of(from_bits(in, half).to(wide).to(half));
        int bad = 0;
        for (size_t i = 0; i < in.size(); ++i) {
          const bool nan = (in[i] & exp_mask) == exp_mask && (in[i] & ((1u << exp_shift) - 1)) != 0;
          const bool back_nan = (back[i] & exp_mask) == exp_mask && (back[i] & ((1u << exp_shift) - 1)) != 0;
          bad += nan ? !back_nan : back[i] != in[i];
        }
        CHECK(bad == 0);
      }
    }
  }
  SECTION("float32 -> float16 rounds to nearest even, overflows to inf, keeps NaN") {
    const float inf = std::numeric_limits<float>::infinity();
    CHECK(bits_of(1.0f, DType::F16) == 0x3C00);
    CHECK(bits_of(0.1f, DType::F16) == 0x2E66);
    CHECK(bits_of(-2.0f, DType::F16) == 0xC000);
    CHECK(bits_of(65504.0f, DType::F16) == 0x7BFF);            // the largest float16
    CHECK(bits_of(65519.996f, DType::F16) == 0x7BFF);          // just below the midpoint to inf
    CHECK(bits_of(65520.0f, DType::F16) == 0x7C00);            // the midpoint: to inf (even)
    CHECK(bits_of(1e10f, DType::F16) == 0x7C00);
    CHECK(bits_of(-inf, DType::F16) == 0xFC00);
    CHECK((bits_of(std::nanf(""), DType::F16) & 0x7E00) == 0x7E00);
    CHECK(bits_of(1.0f + std::ldexp(1.0f, -11), DType::F16) == 0x3C00);      // tie -> even
    CHECK(bits_of(1.0f + 3 * std::ldexp(1.0f, -11), DType::F16) == 0x3C02);  // tie -> even (up)
    CHECK(bits_of(std::ldexp(1.0f, -14), DType::F16) == 0x0400);             // smallest normal
    CHECK(bits_of(std::ldexp(1.0f, -24), DType::F16) == 0x0001);             // smallest subnormal
    CHECK(bits_of(std::ldexp(1.0f, -25), DType::F16) == 0x0000);             // tie -> even (zero)
    CHECK(bits_of(std::ldexp(1.5f, -25), DType::F16) == 0x0001);
    CHECK(bits_of(std::ldexp(3.0f, -25), DType::F16) == 0x0002);             // 1.5 subnormal ulps: tie -> even
    CHECK(bits_of(-std::ldexp(1.0f, -30), DType::F16) == 0x8000);            // underflow keeps the sign
  }
  SECTION("float32 -> bfloat16 rounds to nearest even, keeps NaN") {
    CHECK(bits_of(1.0f, DType::BF16) == 0x3F80);
    CHECK(bits_of(1.0f + std::ldexp(1.0f, -8), DType::BF16) == 0x3F80);      // tie -> even
    CHECK(bits_of(1.0f + 3 * std::ldexp(1.0f, -8), DType::BF16) == 0x3F82);  // tie -> even (up)
    CHECK(bits_of(std::numeric_limits<float>::max(), DType::BF16) == 0x7F80);
    CHECK((bits_of(std::nanf(""), DType::BF16) & 0x7FC0) == 0x7FC0);
  }
  SECTION("integers and bools") {
    Tensor h = dl::from_vector(std::vector<int64_t>{3, -2, 0, 70000}, {4}).to(DType::F16);
    CHECK(bits_of(h) == std::vector<uint16_t>{0x4200, 0xC000, 0x0000, 0x7C00});
    CHECK(h.to(DType::I64).to_vector<int64_t>()[1] == -2);
    // inf (70000 overflowed) -> int64 is x86's "integer indefinite", defined, not UB
    CHECK(h.to(DType::I64).to_vector<int64_t>()[3] == std::numeric_limits<int64_t>::min());
    CHECK(from_bits({0x4100, 0x0000, 0x8001}, DType::F16).to(DType::Bool).to_vector<uint8_t>() ==
          std::vector<uint8_t>{1, 0, 1});                                         // 2.5, 0, -tiny
    CHECK(from_bits({0x4100}, DType::BF16).to(DType::I64).to_vector<int64_t>()[0] == 8);  // 8.0
    CHECK(from_bits({0x4100}, DType::F16).to_vector<double>()[0] == 2.5);
  }
}

// ---------------------------------------------------------------------------------------------
// Half-precision PyTorch state_dicts (tests/fixtures/gen_half.py: model.half().state_dict() and
// model.bfloat16().state_dict() of the parity LeNet, written by h5py).
// ---------------------------------------------------------------------------------------------
TEST_CASE("half-precision state_dicts from PyTorch load as PyTorch rounded them", "[checkpoint][half]") {
  const Checkpoint f32 = dl::load_checkpoint(fixture("parity_lenet_final.h5"), true);
  for (auto [file, dt] : {std::pair{"parity_lenet_final_f16.h5", DType::F16}, {"parity_lenet_final_bf16.h5", DType::BF16}}) {
    INFO(file);
    const Checkpoint half = dl::load_checkpoint(fixture(file), true);
    REQUIRE(half.model.size() == f32.model.size());
    for (size_t i = 0; i < half.model.size(); ++i) {
      const auto& [key, t] = half.model[i];
      INFO(key);
      CHECK(key == f32.model[i].first);
      CHECK(t.dtype() == dt);  // loaded as stored; converted where a model takes it
      // Our float32 -> half rounding gives PyTorch's bits, and half -> float32 is exact.
      const Tensor& w = f32.model[i].second;
      CHECK(bits_of(w.to(dt)) == bits_of(t));
      CHECK(bits_of(t.to(DType::F32).to(dt)) == bits_of(t));
    }
  }
}

namespace {

// Accuracy and loss of `weights` (a weights-only file) under the LeNet recipe on 1000 val samples.
std::pair<double, double> eval_lenet(const std::string& weights) {
  auto r = dltool({"eval", weights, "--config", dl::test::source_path("recipes/fashion_mnist/lenet.yaml"),
                   "data.val_size=1000", "--split", "val", "--json"});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  auto number = [&](const std::string& key) {
    size_t p = r.out.find("\"" + key + "\":");
    REQUIRE(p != std::string::npos);
    return std::stod(r.out.substr(p + key.size() + 3));
  };
  return {number("accuracy"), number("loss")};
}

}  // namespace

TEST_CASE("half-precision weights work in inspect --stats, eval, --init-from and export", "[checkpoint][half]") {
  const std::string f16 = fixture("parity_lenet_final_f16.h5"), bf16 = fixture("parity_lenet_final_bf16.h5");
  for (const auto& [file, name] : {std::pair{f16, "float16"}, {bf16, "bfloat16"}}) {
    INFO(file);
    auto i = dltool({"inspect", file, "--stats"});
    INFO(i.out);
    CHECK(i.exit_code == 0);
    CHECK_THAT(i.out, Contains("fc1.weight") && Contains(name) && Contains("total parameters: 61706"));
  }
  if (!have_fashion_mnist()) {
    WARN("Fashion-MNIST not installed: eval/--init-from/export with half weights skipped");
    return;
  }
  const auto [acc32, loss32] = eval_lenet(fixture("parity_lenet_final.h5"));
  for (const auto& [file, tol] : {std::pair{f16, 0.001}, {bf16, 0.01}}) {
    INFO(file);
    // Same predictions up to the rounding of the weights (float16: 11 bits, bfloat16: 8).
    const auto [acc, loss] = eval_lenet(file);
    CHECK(std::fabs(acc - acc32) <= 2 * tol);
    CHECK(std::fabs(loss - loss32) <= tol * 10 * std::fabs(loss32));

    TempDir d;
    auto t = dltool({"train", dl::test::source_path("recipes/fashion_mnist/lenet.yaml"), "train.max_steps=1",
                     "data.val_size=100", "--init-from", file, "--run-dir", d.file("run"), "--log-format", "plain"});
    INFO(t.out);
    CHECK(t.exit_code == 0);
    CHECK_THAT(t.out, Contains("initialised weights from " + file));

    auto e = dltool({"export", file, "--config", dl::test::source_path("recipes/fashion_mnist/lenet.yaml"),
                     "--format", "onnx", "-o", d.file("lenet.onnx")});
    INFO(e.out);
    CHECK(e.exit_code == 0);
    CHECK(fs::file_size(d.file("lenet.onnx")) > 61706 * 4);  // float32 initializers
  }
}

TEST_CASE("resume accepts a checkpoint whose weights and optimizer state are float16", "[checkpoint][half]") {
  TempDir d;
  const std::string cfg = tiny_recipe(d, 16, "");
  const std::string run = d.file("run"), last = run + "/checkpoints/last.h5";
  REQUIRE(dltool({"train", cfg, "train.max_steps=4", "--run-dir", run, "--quiet"}).exit_code == 0);
  // Rewrite last.h5 in half precision, as a mixed-precision trainer might keep it.
  Checkpoint c = dl::load_checkpoint(last);
  for (auto& [k, t] : c.model)
    if (t.dtype() == DType::F32) t = t.to(DType::F16);
  REQUIRE(c.optimizer);
  for (auto& [k, ps] : c.optimizer->state)
    for (auto& [slot, t] : ps.slots) t = t.to(DType::F16);
  dl::save_checkpoint(last, c);
  auto i = dltool({"inspect", last});
  CHECK_THAT(i.out, Contains("float16"));
  auto r = dltool({"resume", run, "train.max_steps=6", "--log-format", "plain"});
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Contains("resumed from") && Contains("step=6/6"));
  const Checkpoint after = dl::load_checkpoint(last);
  for (const auto& [k, t] : after.model) CHECK(t.dtype() != DType::F16);  // the model's own dtype again
}

// ---------------------------------------------------------------------------------------------
// HDF5 tools read every part of a checkpoint dltool writes.
// ---------------------------------------------------------------------------------------------
namespace {

// h5dump reads `file`, and h5copy copies each of `groups` out of it into a file h5dump reads.
void check_hdf5_tools(const TempDir& d, const std::string& file, const std::vector<std::string>& groups) {
  std::string out;
  CHECK(run_command("/usr/bin/h5dump '" + file + "' >/dev/null", out) == 0);
  INFO(out);
  for (const auto& group : groups) {
    INFO(file << " " << group);
    const std::string copy = d.file("copy" + std::to_string(std::hash<std::string>{}(file + group)) + ".h5");
    out.clear();
    CHECK(run_command("/usr/bin/h5copy -i '" + file + "' -o '" + copy + "' -s " + group + " -d " + group, out) == 0);
    INFO(out);
    out.clear();
    CHECK(run_command("/usr/bin/h5dump '" + copy + "' >/dev/null", out) == 0);
  }
}

}  // namespace

TEST_CASE("h5dump and h5copy read every group of the checkpoints dltool writes", "[checkpoint][interop]") {
  if (::access("/usr/bin/h5copy", X_OK) != 0 || ::access("/usr/bin/h5dump", X_OK) != 0) {
    WARN("hdf5-tools (h5dump, h5copy) not installed: skipped");
    return;
  }
  TempDir d;
  const std::vector<std::string> groups = {"/config", "/model", "/optimizer", "/scheduler", "/trainer", "/rng"};
  SECTION("a training run's last.h5") {
    // /trainer has 10 attributes, an empty best_metric among them: h5copy crashed on it.
    const std::string cfg = tiny_recipe(d, 8, "scheduler: {type: cosine_annealing, T_max: auto, interval: step}\n");
    const std::string run = d.file("run"), last = run + "/checkpoints/last.h5";
    REQUIRE(dltool({"train", cfg, "train.max_steps=2", "--run-dir", run, "--quiet"}).exit_code == 0);
    check_hdf5_tools(d, last, groups);
  }
  SECTION("many attributes of every kind in every group") {
    // HDF5's 1.8 format moves an object's attributes to "dense" storage beyond 8 of them, where
    // h5copy crashes on any variable-length string: dltool keeps them compact.
    Checkpoint c;
    c.config_yaml = "model: {}\n";
    c.model.emplace_back("w", filled({2, 2}, DType::F32, 1.5));
    dl::OptimizerState o;
    o.type = "adamw";
    dl::OptimizerGroupState g;
    g.names = {"w", ""};
    for (int i = 0; i < 12; ++i) {
      o.defaults["h" + std::to_string(i)] = i * 0.5;
      g.options["h" + std::to_string(i)] = i * 0.25;
    }
    o.param_groups = {g, dl::OptimizerGroupState{{}, {{"lr", 0.1}}}};
    o.state["w"].step = 3;
    o.state["w"].slots["exp_avg"] = filled({2, 2}, DType::F32, 0.5);
    c.optimizer = o;
    dl::SchedulerState sc;
    sc.type = "cosine";
    for (int i = 0; i < 12; ++i) sc.scalars["s" + std::to_string(i)] = i;
    sc.lists["base_lrs"] = {0.1, 0.2};
    sc.lists["empty"] = {};
    c.scheduler = sc;
    for (int i = 0; i < 12; ++i) c.trainer["i" + std::to_string(i)] = int64_t{i};
    c.trainer["best_metric"] = std::string();
    c.trainer["note"] = std::string("val/accuracy");
    c.trainer["best_value"] = 0.5;
    c.rng["cpu"] = std::vector<uint8_t>(16, 7);
    const std::string path = d.file("many.h5");
    dl::save_checkpoint(path, c);
    check_hdf5_tools(d, path, groups);
    const Checkpoint back = dl::load_checkpoint(path);  // and the values come back as written
    CHECK(back.trainer.at("best_metric") == dl::AttrScalar(std::string()));
    CHECK(back.trainer.at("note") == dl::AttrScalar(std::string("val/accuracy")));
    CHECK(back.trainer.size() == c.trainer.size());
    REQUIRE(back.optimizer);
    CHECK(back.optimizer->defaults == o.defaults);
    CHECK(back.optimizer->param_groups.at(0).names == g.names);
    CHECK(back.optimizer->param_groups.at(1).names.empty());
    REQUIRE(back.scheduler);
    CHECK(back.scheduler->scalars == sc.scalars);
    CHECK(back.scheduler->lists == sc.lists);
  }
}

// ---------------------------------------------------------------------------------------------
// A disk that fills up at the final save.
// ---------------------------------------------------------------------------------------------
TEST_CASE("a full disk at the final save exits 1 naming the file and keeps last.h5", "[checkpoint][atomic]") {
  TempDir d;
  const std::string cfg = tiny_recipe(d, 256, "");  // a checkpoint of about 0.2 MB
  const std::string run = d.file("run"), ckdir = run + "/checkpoints", last = ckdir + "/last.h5";
  // Measure a checkpoint, then give the checkpoint directory room for one and a half of them:
  // the first run's final save fits, the resumed run's final save (a second copy) does not.
  REQUIRE(dltool({"train", cfg, "train.max_steps=2", "--run-dir", d.file("probe"), "--quiet"}).exit_code == 0);
  const uint64_t size = fs::file_size(d.file("probe/checkpoints/last.h5"));
  TmpfsMount disk(ckdir, std::to_string(size * 3 / 2 + 4096));
  if (!disk.mounted) {
    WARN("cannot mount a tmpfs here (" << std::strerror(disk.err) << "): skipped");
    return;
  }
  auto first = dltool({"train", cfg, "train.max_steps=2", "--run-dir", run, "--quiet"});
  INFO(first.out);
  REQUIRE(first.exit_code == 0);
  const std::string before = read_file(last);
  auto r = dltool({"resume", run, "train.max_steps=4", "--log-format", "plain"});
  INFO(r.out);
  CHECK(r.term_signal == 0);  // no crash at exit (HDF5 objects left open used to segfault)
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Contains("cannot save checkpoint '" + last + "'") && Contains("no space left on device"));
  CHECK(read_file(last) == before);  // the previous checkpoint, intact
  CHECK(std::get<int64_t>(dl::load_checkpoint(last).trainer.at("global_step")) == 2);
  CHECK_FALSE(fs::exists(last + ".tmp"));
}

// ---------------------------------------------------------------------------------------------
// Temporary files of a killed save are removed when the next run starts, and nothing else.
// ---------------------------------------------------------------------------------------------
TEST_CASE("stale temporary files of a killed save are removed at start, and only those", "[checkpoint][atomic]") {
  TempDir d;
  const std::string cfg = tiny_recipe(d, 8, "checkpoint: {every_steps: 1, keep_last: 0}\n");
  const std::string run = d.file("run"), ckdir = run + "/checkpoints";
  const std::vector<std::string> ours = {"step-7.h5.tmp", "step-123456.h5.tmp", "last.h5.tmp", "best.h5.tmp",
                                         "last.h5.link.tmp"};
  const std::vector<std::string> others = {"step-7.h5.tmp.keep", "step-x.h5.tmp", "mystep-7.h5.tmp", "step-.h5.tmp",
                                           "notes.tmp", "last.h5.tmp2", "other.h5.tmp", "step-7.h5"};
  auto plant = [&] {
    fs::create_directories(ckdir);
    for (const auto& n : ours) write_file(ckdir + "/" + n, "partial save");
    for (const auto& n : others) write_file(ckdir + "/" + n, "not ours");
    fs::create_directories(ckdir + "/step-8.h5.tmp");  // a directory is never ours
  };
  auto check_left = [&](const std::string& out) {
    for (const auto& n : ours) {
      INFO(n);
      CHECK_FALSE(fs::exists(ckdir + "/" + n));
    }
    for (const auto& n : others) {
      INFO(n);
      CHECK(fs::exists(ckdir + "/" + n));
    }
    CHECK(fs::is_directory(ckdir + "/step-8.h5.tmp"));
    // One log line naming what was removed.
    CHECK_THAT(out, Contains("removed 5 temporary file(s) left in " + ckdir + " by an interrupted save: "
                             "best.h5.tmp, last.h5.link.tmp, last.h5.tmp, step-123456.h5.tmp, step-7.h5.tmp"));
  };
  plant();
  auto t = dltool({"train", cfg, "train.max_steps=2", "--run-dir", run, "--log-format", "plain"});
  INFO(t.out);
  REQUIRE(t.exit_code == 0);
  check_left(t.out);
  plant();
  auto r = dltool({"resume", run, "train.max_steps=3", "--log-format", "plain"});
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  check_left(r.out);
  // Nothing stale: no message.
  auto again = dltool({"resume", run, "train.max_steps=4", "--log-format", "plain"});
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.out, !Contains("temporary file"));
}
