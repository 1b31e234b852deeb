// A resume trusts nothing it reads: every bad value in a checkpoint's /optimizer, /scheduler,
// /trainer or /rng ends in exit 1 with the file, the group and the attribute named (never a
// SIGFPE, a run "at step -1" or a silent clamp), a resume that cannot be exact says so, and a
// model that does not fit names the file on eval, --init-from and resume.
//
// Each case trains a tiny model once with the real binary (tiny IDX files written here, so no
// data set is needed), edits the checkpoint in memory and writes it back through
// save_checkpoint (which re-seals the CRC-32C header), then runs `dltool resume` on it.
#include <hdf5.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "datasets/idx.h"
#include "exporters/checkpoint.h"
#include "tests/support/process.h"
#include "tests/support/tempdir.h"

namespace {

using dl::Checkpoint;
using dl::test::TempDir;
using Catch::Matchers::Contains;

// 64 training samples of 4x4 pixels in 3 classes, batch 8: 8 batches per epoch. max_steps 12
// stops in epoch 1 (0-based) after batch 4, so last.h5 holds epoch 1, batch_in_epoch 4.
struct Fixture {
  TempDir dir;
  std::string config, last;

  Fixture() {
    auto idx = [&](const std::string& stem, int64_t n) {
      std::vector<uint8_t> img(static_cast<size_t>(n * 16)), lab(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        lab[i] = static_cast<uint8_t>(i % 3);
        for (int64_t p = 0; p < 16; ++p) img[i * 16 + p] = static_cast<uint8_t>((i * 37 + p * 11 + lab[i] * 60) % 256);
      }
      dl::data::write_idx_u8(dir.file(stem + "-images"), {n, 4, 4}, img.data(), false);
      dl::data::write_idx_u8(dir.file(stem + "-labels"), {n}, lab.data(), false);
    };
    idx("train", 64);
    idx("test", 16);
    config = dir.file("tiny.yaml", R"(model:
  layers: [flatten, {type: linear, out_features: 8}, relu, {type: dropout, p: 0.1}, {type: linear, out_features: 3}]
data:
  dataset: tiny
  format: idx
  root: )" + dir.path.string() + R"(
  train: {images: train-images, labels: train-labels}
  test: {images: test-images, labels: test-labels}
  loader: {batch_size: 8}
optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
scheduler: {type: cosine_annealing, T_max: auto, interval: step}
train: {epochs: 3, max_steps: 12, log_every: 4}
)");
    dl::test::ProcessResult r = dltool({"train", config, "--run-dir", run_dir(), "--quiet"});
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    last = run_dir() + "/checkpoints/last.h5";
  }

  std::string run_dir() const { return (dir.path / "run").string(); }

  static dl::test::ProcessResult dltool(const std::vector<std::string>& args, bool merge = true) {
    std::vector<std::string> argv = {DLTOOL_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return dl::test::run_process(argv, {.merge_stderr = merge, .timeout_s = 120});
  }

  // last.h5 edited by `edit`, saved (and sealed) as NAME.h5.
  std::string edited(const std::string& name, const std::function<void(Checkpoint&)>& edit) const {
    Checkpoint c = dl::load_checkpoint(last);
    edit(c);
    std::string path = (dir.path / (name + ".h5")).string();
    dl::save_checkpoint(path, c);
    return path;
  }

  // `dltool resume FILE` into a fresh run directory, continuing to step 16.
  dl::test::ProcessResult resume(const std::string& file, bool merge = true) const {
    static int n = 0;
    return dltool({"resume", file, "train.max_steps=16", "--run-dir", (dir.path / ("r" + std::to_string(++n))).string(),
                   "--log-format", "plain"},
                  merge);
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The resume fails cleanly (exit 1, no signal) naming the file and each of `parts`.
void refused(const std::string& file, const std::vector<std::string>& parts) {
  dl::test::ProcessResult r = fixture().resume(file);
  INFO(r.out);
  CHECK(r.term_signal == 0);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Contains(file) && Contains("cannot resume from"));
  for (const auto& p : parts) CHECK_THAT(r.out, Contains(p));
  CHECK_THAT(r.out, !Contains("resumed from"));
}

}  // namespace

TEST_CASE("resume: the issue's reproducers exit 1 naming file, group and attribute", "[resume][restore]") {
  Fixture& f = fixture();
  SECTION("a good checkpoint resumes") {
    dl::test::ProcessResult r = f.resume(f.last, /*merge=*/false);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Contains("resumed from") && Contains("at step 12"));
    CHECK(r.err.find("warning") == std::string::npos);
  }
  SECTION("T_max = 0 (was SIGFPE)") {
    refused(f.edited("tmax0", [](Checkpoint& c) { c.scheduler->scalars["T_max"] = 0; }),
            {"attribute 'T_max' of /scheduler is 0, expected an integer >= 1"});
  }
  SECTION("global_step = -1 (resumed at step -1)") {
    refused(f.edited("step_neg", [](Checkpoint& c) { c.trainer["global_step"] = int64_t{-1}; }),
            {"attribute 'global_step' of /trainer is -1, expected an integer >= 0"});
  }
  SECTION("global_step at the int64 maximum (ran 9.2e18 steps)") {
    refused(f.edited("step_max", [](Checkpoint& c) { c.trainer["global_step"] = std::numeric_limits<int64_t>::max(); }),
            {"attribute 'global_step' of /trainer is 9223372036854775807", "epoch 1 and batch_in_epoch 4 at 8 batches"});
  }
  SECTION("NaN last_epoch") {
    refused(f.edited("last_nan", [](Checkpoint& c) { c.scheduler->scalars["last_epoch"] = kNaN; }),
            {"attribute 'last_epoch' of /scheduler is .nan, expected 12"});
  }
  SECTION("no /rng: resumes, saying plainly on stderr that it is not exact") {
    std::string file = f.edited("no_rng", [](Checkpoint& c) { c.rng.clear(); });
    dl::test::ProcessResult r = f.resume(file, /*merge=*/false);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.err, Contains("warning: " + file + " has no /rng/cpu") && Contains("not bit-identical"));
    CHECK_THAT(r.out, Contains("resumed from"));
  }
}

TEST_CASE("resume: every restored value is checked with the config's rules", "[resume][restore]") {
  Fixture& f = fixture();
  using Edit = std::function<void(Checkpoint&)>;
  struct Case {
    const char* name;
    Edit edit;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {"epoch_neg", [](Checkpoint& c) { c.trainer["epoch"] = int64_t{-1}; },
       {"attribute 'epoch' of /trainer is -1, expected an integer >= 0"}},
      {"epoch_fraction", [](Checkpoint& c) { c.trainer["epoch"] = 1.5; },
       {"attribute 'epoch' of /trainer is 1.5, expected an integer >= 0"}},
      {"batch_beyond_epoch", [](Checkpoint& c) { c.trainer["batch_in_epoch"] = int64_t{9}; },
       {"attribute 'batch_in_epoch' of /trainer is 9, expected an integer in [0, 8]"}},
      {"window_inf", [](Checkpoint& c) { c.trainer["window_loss"] = HUGE_VAL; },
       {"attribute 'window_loss' of /trainer is .inf, expected a finite number"}},
      {"window_steps", [](Checkpoint& c) { c.trainer["window_steps"] = int64_t{13}; },
       {"attribute 'window_steps' of /trainer is 13, expected an integer in [0, 12]"}},
      {"trainer_missing_attr", [](Checkpoint& c) { c.trainer.erase("window_steps"); },
       {"/trainer has no attribute 'window_steps'"}},
      {"trainer_unknown_attr", [](Checkpoint& c) { c.trainer["epochz"] = int64_t{1}; },
       {"attribute 'epochz' of /trainer is unknown here"}},
      {"no_trainer", [](Checkpoint& c) { c.trainer.clear(); }, {"/trainer is missing"}},
      {"no_optimizer", [](Checkpoint& c) { c.optimizer.reset(); }, {"/optimizer is missing"}},
      {"zero_param_groups", [](Checkpoint& c) { c.optimizer->param_groups.clear(); },
       {"/optimizer/param_groups holds 0 group(s), the config's optimizer has 1"}},
      {"lr_nan", [](Checkpoint& c) { c.optimizer->param_groups[0].options["lr"] = kNaN; },
       {"attribute 'lr' of /optimizer/param_groups/0 is .nan, expected a number >= 0"}},
      {"momentum_neg", [](Checkpoint& c) { c.optimizer->defaults["momentum"] = -0.5; },
       {"attribute 'momentum' of /optimizer is -0.5, expected a number >= 0"}},
      {"nesterov_2", [](Checkpoint& c) { c.optimizer->param_groups[0].options["nesterov"] = 2; },
       {"attribute 'nesterov' of /optimizer/param_groups/0 is 2.0, expected 0 or 1"}},
      {"optimizer_type", [](Checkpoint& c) { c.optimizer->type = "Adam"; },
       {"attribute 'type' of /optimizer is 'Adam', but the config's optimizer is SGD"}},
      {"params_renamed", [](Checkpoint& c) { c.optimizer->param_groups[0].names[0] = "9.weight"; },
       {"attribute 'params' of /optimizer/param_groups/0 does not list the model's parameters", "'9.weight'"}},
      {"slot_missing", [](Checkpoint& c) { c.optimizer->state.at("1.weight").slots.clear(); },
       {"/optimizer/state/1.weight holds [none], SGD with these settings keeps [momentum_buffer]"}},
      {"slot_nan", [](Checkpoint& c) {
         dl::Tensor& t = c.optimizer->state.at("1.bias").slots.at("momentum_buffer");
         static_cast<float*>(t.raw_data())[2] = static_cast<float>(kNaN);
       },
       {"/optimizer/state/1.bias/momentum_buffer holds .nan at flat index 2"}},
      {"step_neg", [](Checkpoint& c) { c.optimizer->state.at("1.bias").step = -3; },
       {"attribute 'step' of /optimizer/state/1.bias is -3"}},
      {"no_scheduler", [](Checkpoint& c) { c.scheduler.reset(); },
       {"/scheduler is missing, but the config has a scheduler (cosine_annealing)"}},
      {"last_epoch_off", [](Checkpoint& c) { c.scheduler->scalars["last_epoch"] = 5; },
       {"attribute 'last_epoch' of /scheduler is 5.0, expected 12: the scheduler steps once per optimizer step"}},
      {"eta_min_neg", [](Checkpoint& c) { c.scheduler->scalars["eta_min"] = -1; },
       {"attribute 'eta_min' of /scheduler is -1.0, expected a number >= 0"}},
      {"base_lrs_len", [](Checkpoint& c) { c.scheduler->lists["base_lrs"].push_back(0.1); },
       {"attribute 'base_lrs' of /scheduler has 2 entries, expected one per param group (1)"}},
      {"base_lrs_neg", [](Checkpoint& c) { c.scheduler->lists["base_lrs"][0] = -0.1; },
       {"attribute 'base_lrs' of /scheduler entry 0 is -0.1, expected a number >= 0"}},
      {"scheduler_unknown", [](Checkpoint& c) { c.scheduler->scalars["gamma"] = 0.5; },
       {"attribute 'gamma' of /scheduler is unknown here"}},
      {"rng_size", [](Checkpoint& c) { c.rng["cpu"].resize(3); },
       {"/rng/cpu holds 3 bytes, expected 16"}},
      {"rng_name", [](Checkpoint& c) { c.rng["gpu0"] = c.rng["cpu"]; },
       {"/rng/gpu0 is not named after a device"}},
  };
  for (const Case& k : cases) {
    SECTION(k.name) { refused(f.edited(k.name, k.edit), k.expect); }
  }
}

TEST_CASE("resume: an integer beyond int64 is refused, not clamped", "[resume][restore]") {
  Fixture& f = fixture();
  // h5py writes a Python int >= 2**63 as uint64; HDF5 would clamp it to the int64 maximum.
  std::string file = f.edited("u64", [](Checkpoint&) {});
  hid_t fid = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(fid >= 0);
  hid_t g = H5Gopen2(fid, "trainer", H5P_DEFAULT);
  REQUIRE(H5Adelete(g, "global_step") >= 0);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(g, "global_step", H5T_STD_U64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  const uint64_t big = (uint64_t{1} << 63) + 5;
  REQUIRE(H5Awrite(a, H5T_NATIVE_UINT64, &big) >= 0);
  H5Aclose(a);
  H5Sclose(space);
  H5Gclose(g);
  REQUIRE(H5Fclose(fid) >= 0);
  // The edit breaks the CRC: blank the dltool header (the documented way to accept an edit).
  std::string bytes = dl::test::read_file(file);
  std::memset(bytes.data(), 0, 512);
  dl::test::write_file(file, bytes);
  dl::test::ProcessResult r = f.resume(file);
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Contains(file) && Contains("attribute 'global_step' of /trainer holds 9223372036854775813") &&
                        Contains("beyond the int64 range"));
}

TEST_CASE("checkpoint: a user block version other than dltool's is refused", "[checkpoint][restore]") {
  Fixture& f = fixture();
  const std::string good = dl::test::read_file(f.last);
  const std::string magic = "dltool.checkpoint user block 1\n";
  REQUIRE(good.compare(0, magic.size(), magic) == 0);
  // Only the header changes (its NUL padding absorbs a longer number); the CRC covers the rest.
  auto with_version = [&](const std::string& v) {
    std::string header = good.substr(0, 512);
    header.replace(0, magic.size(), "dltool.checkpoint user block " + v + "\n");
    header.resize(512);
    std::string path = (f.dir.path / ("ub" + v + ".h5")).string();
    dl::test::write_file(path, header + good.substr(512));
    return path;
  };
  for (const char* v : {"-1", "0"}) {
    std::string file = with_version(v);
    dl::test::ProcessResult r = Fixture::dltool({"inspect", file});
    INFO(r.out);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.out, Contains(file) && Contains(std::string("has version ") + v) && Contains("corrupt"));
  }
  std::string newer = with_version("2");
  dl::test::ProcessResult r = Fixture::dltool({"inspect", newer});
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Contains(newer) && Contains("written by a newer dltool"));
}

TEST_CASE("eval, --init-from and resume name the file when its weights do not fit", "[resume][restore]") {
  Fixture& f = fixture();
  std::string file = f.edited("missing_key", [](Checkpoint& c) {
    c.model.erase(c.model.begin());  // drops 1.weight
  });
  // The config named is the one whose model was built: the recipe, or the checkpoint's own.
  auto check = [&](const dl::test::ProcessResult& r, const std::string& config) {
    INFO(r.out);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.out, Contains("cannot load the weights of '" + file + "' into the model of " + config) &&
                          Contains("Missing key(s)") && Contains("1.weight"));
  };
  check(Fixture::dltool({"eval", file, "--config", f.config}), f.config);
  check(Fixture::dltool({"eval", file}), file + ":/config");
  check(Fixture::dltool({"train", f.config, "--init-from", file, "--run-dir", (f.dir.path / "init").string()}), f.config);
  check(f.resume(file), file + ":/config");
}
