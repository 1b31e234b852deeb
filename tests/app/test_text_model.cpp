// Models on token ids: a data.format text dataset gives the model an int64 input (train, eval,
// validate, bench, export), `num_classes` in layer attributes is the corpus's vocabulary size,
// bits_per_token is the mean next-token cross-entropy in bits and checkpoint.best minimises
// it, and the exported ONNX model (int64 input) runs in ONNX Runtime with dltool's numbers.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "cli/run/evaluate.h"
#include "cli/run/setup.h"
#include "cli/run/trainer.h"
#include "configs/config.h"
#include "engine/ops.h"
#include "exporters/checkpoint.h"
#include "tests/app/text_model_util.h"
#include "tests/support/fixtures.h"
#include "tests/support/onnxruntime.h"
#include "tests/support/process.h"

using namespace dl;
using dl::test::TempDir;

namespace {

dl::test::ProcessResult dltool(std::vector<std::string> args) {
  args.insert(args.begin(), DLTOOL_BINARY);
  return dl::test::run_process(args, {.merge_stderr = true});
}

}  // namespace

TEST_CASE("text model: an int64 input and num_classes from the corpus, trains, evaluates bits_per_token",
          "[text][generate]") {
  TempDir dir;
  const Config cfg = load_config(dir.file("lm.yaml", test::tiny_char_lm(dir)));
  const data::DatasetInfo info = train::peek_data(cfg);
  const train::ModelData md = train::model_data(cfg, info);
  CHECK(md.input.dtype == DType::I64);
  CHECK(md.input.shape == Shape{12});
  CHECK(md.num_classes == info.num_classes);
  // The resolved YAML keeps the keyword; the model gets the number.
  CHECK_THAT(cfg.resolved_yaml, Catch::Contains("out_features: num_classes"));
  const ModelSpec spec = train::resolve_model_spec(cfg, 17);
  CHECK(attr_int(spec.nodes[0].attrs, "num_embeddings") == 17);
  CHECK(attr_int(spec.nodes[2].attrs, "out_features") == 17);
  try {
    train::resolve_model_spec(cfg, 0);
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.what(), Catch::Contains("node 'embed'") && Catch::Contains("num_embeddings: num_classes"));
  }

  train::RunOptions opt;
  opt.run_dir = dir.file("run");
  opt.mode = exporters::ProgressReporter::Mode::quiet;
  train::Trainer t(cfg, opt);
  CHECK(t.model().model_inputs().at(0).dtype == DType::I64);
  CHECK(t.model().output_shape() == Shape{info.num_classes, 12});
  train::RunResult r = t.run();
  CHECK(r.steps == 6);
  for (double l : r.losses) CHECK(std::isfinite(l));
  REQUIRE(r.val);
  REQUIRE(r.val->bits_per_token);
  // Every window has 12 positions: the mean loss per sample is the mean per token.
  CHECK(*r.val->bits_per_token == Approx(r.val->loss / std::log(2.0)).epsilon(1e-4));
  CHECK(train::metric_value(*r.val, "bits_per_token") == r.val->bits_per_token);
  // Accuracy counts positions: the fraction of the val tokens predicted (samples x 12).
  CHECK(r.val->accuracy >= 0.0);
  CHECK(r.val->accuracy <= 1.0);
  int64_t counted = 0;
  for (const auto& row : r.val->confusion)
    for (int64_t c : row) counted += c;
  CHECK(counted == r.val->samples * 12);
  // best.h5 keeps the lowest val/bits_per_token (mode auto).
  CHECK(train::lower_is_better("bits_per_token"));
  CHECK(train::lower_is_better("rmse"));
  CHECK(!train::lower_is_better("accuracy"));
  REQUIRE(std::filesystem::exists(dir.file("run/checkpoints/best.h5")));
  const Checkpoint best = load_checkpoint(dir.file("run/checkpoints/best.h5"));
  const double best_value = std::get<double>(best.trainer.at("best_value"));
  CHECK(best_value <= *r.val->bits_per_token + 1e-12);

  // `dltool eval` and `validate` of the run build the same int64 model.
  train::EvalResult e = train::evaluate_weights(cfg, t.model().state_dict(), "run", "val");
  REQUIRE(e.bits_per_token);
  CHECK(*e.bits_per_token == Approx(*r.val->bits_per_token).epsilon(1e-6));
  dl::test::ProcessResult v = dltool({"validate", dir.file("lm.yaml")});
  INFO(v.out);
  CHECK(v.exit_code == 0);
  dl::test::ProcessResult ev = dltool({"eval", dir.file("run"), "--split", "val"});
  INFO(ev.out);
  CHECK(ev.exit_code == 0);
  CHECK_THAT(ev.out, Catch::Contains("bits/token"));
  CHECK(e.confusion.size() == 19);
  CHECK_THAT(ev.out, Catch::Contains("confusion matrix (rows"));  // 19 classes: the whole table
  dl::test::ProcessResult b = dltool({"bench", dir.file("lm.yaml"), "--steps", "1", "--warmup", "0"});
  INFO(b.out);
  CHECK(b.exit_code == 0);
}

TEST_CASE("text model: dltool eval lists the most frequent confusions instead of a matrix of over 30 classes",
          "[text][eval]") {
  TempDir dir;
  const std::string recipe = dir.file("lm.yaml", test::tiny_char_lm(dir));
  std::string text;  // 36 distinct characters, newline and <unk>
  for (int i = 0; i < 30; ++i) text += "abcdefghijklmnopqrstuvwxyz0123456789\n";
  dir.file("corpus.txt", text);
  REQUIRE(dltool({"train", recipe, "--run-dir", dir.file("run"), "--quiet"}).exit_code == 0);
  dl::test::ProcessResult ev = dltool({"eval", dir.file("run"), "--split", "val"});
  INFO(ev.out);
  CHECK(ev.exit_code == 0);
  CHECK_THAT(ev.out, Catch::Contains("most frequent confusions (38 classes; --json has the whole confusion matrix)"));
  CHECK_THAT(ev.out, Catch::Contains("predicted as"));
  CHECK_THAT(ev.out, !Catch::Contains("confusion matrix (rows"));
  dl::test::ProcessResult js = dltool({"eval", dir.file("run"), "--split", "val", "--json"});
  CHECK_THAT(js.out, Catch::Contains("\"confusion_matrix\""));
}

TEST_CASE("text model: dltool export declares an int64 input, ONNX Runtime matches dltool at batch 1 and 7",
          "[text][generate][onnxruntime]") {
  DLTOOL_REQUIRE_ORT();
  TempDir dir;
  const std::string yaml = test::tiny_char_lm(dir);
  const Config cfg = load_config_string(yaml, dir.file("lm.yaml"));
  train::RunOptions opt;
  opt.run_dir = dir.file("run");
  opt.mode = exporters::ProgressReporter::Mode::quiet;
  opt.final_test = false;
  train::Trainer t(cfg, opt);
  t.run();
  const std::string onnx = dir.file("lm.onnx");
  dl::test::ProcessResult x = dltool({"export", dir.file("run"), "-o", onnx});
  INFO(x.out);
  REQUIRE(x.exit_code == 0);
  CHECK_THAT(x.out, Catch::Contains("[batch, 12]"));
  CHECK(dl::test::python_onnx_check(onnx) == "");
  GraphModel& model = t.model();
  model.eval();
  const int64_t V = model.output_shape()[0];
  for (int64_t n : {1, 7}) {
    std::vector<int64_t> ids(static_cast<size_t>(n * 12));
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 5 + 3) % static_cast<size_t>(V));
    const Tensor tokens = from_vector(ids, {n, 12});
    Tensor want;
    {
      NoGradGuard ng;
      want = model.forward(tokens).contiguous();
    }
    std::string report;
    const bool close = dl::test::allclose(dl::test::ort_run(onnx, tokens), want, 1e-4, 1e-5, &report);
    INFO("batch " << n << ": " << report);
    CHECK(close);
  }
}
