// data.format: text_classification (datasets/formats/text_classes.cpp) and the variable-length
// inputs it gives: records cut by separator lines or lines, their bytes as ids, class = file,
// max_len / min_len, the errors; batches padded with input_lengths; a model reading
// input_lengths from the batch (train, eval, validate, bench, export), and its refusal on data
// of one length.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "cli/run/setup.h"
#include "cli/run/trainer.h"
#include "configs/config.h"
#include "datasets/dataloader.h"
#include "datasets/dataset.h"
#include "datasets/format.h"
#include "engine/autograd/autograd.h"
#include "engine/ops.h"
#include "exporters/checkpoint.h"
#include "tests/support/fixtures.h"
#include "tests/support/onnxruntime.h"
#include "tests/support/open_format.h"
#include "tests/support/process.h"
#include "tests/support/tempdir.h"

using namespace dl;
using namespace dl::data;
using dl::test::TempDir;
using Strings = std::vector<std::string>;
using Ids = std::vector<int64_t>;

namespace {

Splits open_records(const std::string& root, AttrMap options, Strings files, SplitOptions split = {}) {
  return dl::test::open_format("text_classification", root, std::move(options), {{"train", {{"files", files}}}},
                               split);
}

Ids ids(const std::string& s) { return Ids(s.begin(), s.end()); }
Ids ids(const Tensor& t) {
  REQUIRE(t.dtype() == DType::I64);
  return Ids(t.data<int64_t>(), t.data<int64_t>() + t.numel());
}

template <class E>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(no error of the expected type)";
}

dl::test::ProcessResult dltool(std::vector<std::string> args) {
  args.insert(args.begin(), DLTOOL_BINARY);
  return dl::test::run_process(args, {.merge_stderr = true});
}

// Two classes of short records; `extra` is appended to the data section.
std::string tiny_recipe(TempDir& dir, const std::string& model_nodes, const std::string& extra = "") {
  std::string a, b;
  for (int i = 0; i < 24; ++i) {
    a += std::string(static_cast<size_t>(1 + i % 7), 'a') + "x" + std::to_string(i) + "\n%\n";
    b += "b" + std::string(static_cast<size_t>(3 + i % 5), 'y') + "\nzz\n%\n";
  }
  dir.file("one", a);
  dir.file("two", b);
  return "data:\n"
         "  format: text_classification\n"
         "  root: " + dir.path.string() + "\n"
         "  separator: '%'\n"
         "  max_len: 16\n"
         "  train: {files: [one, two]}\n"
         "  val_fraction: 0.25\n"
         "  loader: {batch_size: 8, shuffle: true}\n" + extra +
         "model:\n  nodes:\n" + model_nodes +
         "loss: {type: cross_entropy}\n"
         "optimizer: {type: adam, lr: 0.01}\n"
         "train: {epochs: 2, log_every: 1, seed: 0, device: cpu}\n"
         "metrics: [accuracy]\n";
}

const char* kPackedNodes =
    "    - {name: embed, type: embedding, inputs: [input], num_embeddings: 256, embedding_dim: 4, padding_idx: 0}\n"
    "    - {name: lstm, type: lstm, inputs: [embed, input_lengths], hidden_size: 6, batch_first: true, "
    "bidirectional: true}\n"
    "    - {name: h_n, type: flatten, inputs: [lstm.1]}\n"
    "    - {name: fc, type: linear, out_features: num_classes}\n";

}  // namespace

TEST_CASE("text_classification: separator records, byte ids, class = file, file:line", "[datasets][text]") {
  TempDir dir;
  dir.file("jokes", "Why?\nBecause.\n%\nShort\n%\n%\nLast one");  // no final newline; an empty record
  dir.file("verse", "%\nRoses\n%\nViolets\n");                     // a separator first; a final newline
  Splits s = open_records(dir.path.string(), {{"separator", std::string("%")}}, {"jokes", "verse"});
  REQUIRE(!s.val);
  REQUIRE(!s.test);
  const Dataset& d = *s.train;
  const DatasetInfo& info = d.info();
  CHECK(info.class_names == Strings{"jokes", "verse"});
  CHECK(info.num_classes == 2);
  CHECK(info.input_dtype == DType::I64);
  CHECK(info.variable_length);
  CHECK(info.input_shape == Shape{256});  // max_len: the longest a sample can be
  CHECK(info.target_kind == TargetKind::class_index);
  REQUIRE(d.size() == 5);
  const std::vector<std::string> text = {"Why?\nBecause.", "Short", "Last one", "Roses", "Violets"};
  const Ids classes = {0, 0, 0, 1, 1};
  const Strings where = {"jokes:1", "jokes:4", "jokes:7", "verse:2", "verse:4"};
  for (int64_t i = 0; i < d.size(); ++i) {
    INFO("record " << i);
    const Sample smp = d.get(i);
    CHECK(ids(smp.at(kInput)) == ids(text[static_cast<size_t>(i)]));
    CHECK(smp.at(kTarget).dim() == 0);
    CHECK(ids(smp.at(kTarget)) == Ids{classes[static_cast<size_t>(i)]});
    CHECK(d.class_of(i) == classes[static_cast<size_t>(i)]);
    CHECK_THAT(d.describe(i), Catch::EndsWith(where[static_cast<size_t>(i)]));
  }
}

TEST_CASE("text_classification: one record per line, max_len cuts, min_len skips, classes names",
          "[datasets][text]") {
  TempDir dir;
  dir.file("a.txt", "abcdefgh\nab\n\nabcd\n");
  dir.file("b.txt", "xyz\n");
  Splits s = open_records(dir.path.string(),
                          {{"max_len", int64_t{4}}, {"min_len", int64_t{3}}, {"classes", Strings{"first", "second"}}},
                          {"a.txt", "b.txt"});
  const Dataset& d = *s.train;
  CHECK(d.info().class_names == Strings{"first", "second"});
  CHECK(d.info().input_shape == Shape{4});
  REQUIRE(d.size() == 3);  // "ab" is shorter than min_len, the blank line is no record
  CHECK(ids(d.get(0).at(kInput)) == ids("abcd"));  // "abcdefgh" cut to max_len
  CHECK(ids(d.get(1).at(kInput)) == ids("abcd"));
  CHECK(ids(d.get(2).at(kInput)) == ids("xyz"));
  CHECK(d.describe(0).find("a.txt:1") != std::string::npos);
  CHECK(d.describe(1).find("a.txt:4") != std::string::npos);
  const Strings& notes = d.info().notes;
  REQUIRE(notes.size() == 2);
  CHECK_THAT(notes[0], Catch::Contains("1 training record(s) longer than data.max_len = 4"));
  CHECK_THAT(notes[1], Catch::Contains("1 training record(s) shorter than data.min_len = 3"));
}

TEST_CASE("text_classification: batches pad with 0 and add input_lengths", "[datasets][text]") {
  TempDir dir;
  dir.file("a", "one\nthree33\n");
  dir.file("b", "22\n");
  Splits s = open_records(dir.path.string(), {}, {"a", "b"});
  LoaderOptions o;
  o.batch_size = 3;
  o.transform = TransformPipeline();  // token ids: no to_float
  DataLoader loader(s.train, o);
  loader.start_epoch(0);
  auto b = loader.next();
  REQUIRE(b);
  CHECK(b->input().shape() == Shape{3, 7});
  CHECK(ids(b->input()) == Ids{'o', 'n', 'e', 0, 0, 0, 0, 't', 'h', 'r', 'e', 'e', '3', '3', '2', '2', 0, 0, 0, 0, 0});
  REQUIRE(b->tensors.has("input_lengths"));
  CHECK(ids(b->tensors.at("input_lengths")) == Ids{3, 7, 2});
  CHECK(ids(b->target()) == Ids{0, 0, 1});
}

TEST_CASE("text_classification: bad files and options are errors naming the file, the place and the fix",
          "[datasets][text][errors]") {
  TempDir dir;
  dir.file("good", "fine\n%\nalso fine\n");
  dir.file("binary", std::string("ok\n%\nbad\0byte\n", 15));
  dir.file("seps", "%\n%\n");
  dir.file("good2", "fine too\n");
  const std::string root = dir.path.string();
  const AttrMap pct = {{"separator", std::string("%")}};

  CHECK_THAT(error_of<DataError>([&] { open_records(root, pct, {"good", "binary"}); }),
             Catch::Contains("binary:3") && Catch::Contains("NUL byte") && Catch::Contains("binary file"));
  CHECK_THAT(error_of<DataError>([&] { open_records(root, pct, {"good", "seps"}); }),
             Catch::Contains("seps") && Catch::Contains("has no record") && Catch::Contains("data.separator"));
  CHECK_THAT(error_of<DataError>([&] { open_records(root, pct, {"good", "missing"}); }),
             Catch::Contains("missing") && Catch::Contains("cannot open"));
  CHECK_THAT(error_of<std::invalid_argument>([&] { open_records(root, pct, {"good"}); }),
             Catch::Contains("at least 2 classes"));
  CHECK_THAT(error_of<std::invalid_argument>([&] { open_records(root, {{"classes", Strings{"x", "y", "z"}}}, {"good", "seps"}); }),
             Catch::Contains("2 file(s) but there are 3 classes"));
  CHECK_THAT(error_of<std::invalid_argument>([&] { open_records(root, {{"min_len", int64_t{9}}, {"max_len", int64_t{4}}}, {"good", "seps"}); }),
             Catch::Contains("data.min_len 9 is above data.max_len 4"));
  // A test split lists one file per class too.
  CHECK_THAT(error_of<std::invalid_argument>([&] {
               dl::test::open_format("text_classification", root, pct,
                                     {{"train", {{"files", Strings{"good", "good2"}}}}, {"test", {{"files", Strings{"good"}}}}});
             }),
             Catch::Contains("data.test.files gives 1 file(s) but there are 2 classes"));
}

TEST_CASE("text_classification: a model on input_lengths gives each record the output it has alone",
          "[text][rnn][train]") {
  TempDir dir;
  const Config cfg = load_config(dir.file("t.yaml", tiny_recipe(dir, kPackedNodes)));
  const data::Splits splits = train::open_data(cfg);
  const train::ModelData md = train::model_data(cfg, splits.train->info());
  CHECK(md.input_lengths);
  REQUIRE(md.inputs().size() == 2);
  CHECK(md.inputs()[1].name == "input_lengths");
  auto model = train::build_model(cfg, md, 0);
  REQUIRE(model->model_inputs().size() == 2);
  model->eval();
  NoGradGuard ng;

  // A batch of 5 records of different lengths, as the loader pads it.
  LoaderOptions o = train::loader_options(cfg, /*training=*/false);
  o.batch_size = 5;
  DataLoader loader(splits.train, o);
  loader.start_epoch(0);
  auto b = loader.next();
  REQUIRE(b);
  REQUIRE(b->tensors.has("input_lengths"));
  const Tensor batched = model->forward(train::batch_model_inputs(*model, *b, Device::cpu()));
  REQUIRE(batched.shape() == Shape{5, 2});
  const Ids lengths = ids(b->tensors.at("input_lengths"));
  bool padding_would_matter = false;
  for (int64_t i = 0; i < 5; ++i) {
    const Tensor alone_x = b->input().narrow(0, i, 1).narrow(1, 0, lengths[static_cast<size_t>(i)]).contiguous();
    const Tensor alone = model->forward(train::model_inputs_of(*model, alone_x, Tensor()));
    CHECK_CLOSE(batched.narrow(0, i, 1), alone, 1e-6, 1e-6);
    // Without the lengths the LSTM would read the padding of the shorter records.
    const Tensor padded_x = b->input().narrow(0, i, 1).contiguous();
    const Tensor unpacked = model->forward(train::model_inputs_of(*model, padded_x, Tensor()));
    if (lengths[static_cast<size_t>(i)] < b->input().size(1))
      padding_would_matter |= max(abs(unpacked - alone)).item() > 1e-4;
  }
  CHECK(padding_would_matter);
}

TEST_CASE("text_classification: dltool train, eval, validate, data, bench and export of a packed model",
          "[text][rnn][train][onnxruntime]") {
  TempDir dir;
  const std::string recipe = dir.file("t.yaml", tiny_recipe(dir, kPackedNodes));
  dl::test::ProcessResult tr = dltool({"train", recipe, "--run-dir", dir.file("run"), "--quiet"});
  INFO(tr.out);
  REQUIRE(tr.exit_code == 0);
  dl::test::ProcessResult ev = dltool({"eval", dir.file("run"), "--split", "val"});
  INFO(ev.out);
  CHECK(ev.exit_code == 0);
  CHECK_THAT(ev.out, Catch::Contains("accuracy"));
  dl::test::ProcessResult v = dltool({"validate", recipe});
  INFO(v.out);
  CHECK(v.exit_code == 0);
  dl::test::ProcessResult da = dltool({"data", recipe});
  INFO(da.out);
  CHECK(da.exit_code == 0);
  CHECK_THAT(da.out, Catch::Contains("dim 0 varies, up to 16: batches are padded to their longest sample and add input_lengths"));
  dl::test::ProcessResult be = dltool({"bench", recipe, "--steps", "1", "--warmup", "0"});
  INFO(be.out);
  CHECK(be.exit_code == 0);

  // Export: a second graph input input_lengths; ONNX Runtime on records padded to max_len.
  const std::string onnx = dir.file("t.onnx");
  dl::test::ProcessResult x = dltool({"export", dir.file("run"), "-o", onnx});
  INFO(x.out);
  REQUIRE(x.exit_code == 0);
  CHECK_THAT(x.out, Catch::Contains("[batch, 16]"));
  dl::test::ProcessResult xv = dltool({"export", dir.file("run"), "-o", dir.file("v.onnx"), "--verify"});
  CHECK(xv.exit_code != 0);
  CHECK_THAT(xv.out, Catch::Contains("NOT verified") && Catch::Contains("input_lengths"));
  DLTOOL_REQUIRE_ORT();
  const Config cfg = load_config(recipe);
  const data::Splits splits = train::open_data(cfg);
  auto model = train::build_model(cfg, train::model_data(cfg, splits.train->info()), 0);
  model->load_state_dict(load_checkpoint(dir.file("run/checkpoints/last.h5")).model, true);
  model->eval();
  for (int64_t n : {1, 7}) {
    Ids tokens(static_cast<size_t>(n * 16), 0), lengths;
    for (int64_t i = 0; i < n; ++i) {
      const Ids rec = ids(splits.train->get(i * 3).at(kInput));
      std::copy(rec.begin(), rec.end(), tokens.begin() + i * 16);
      lengths.push_back(static_cast<int64_t>(rec.size()));
    }
    const Tensor tx = from_vector(tokens, {n, 16}), tl = from_vector(lengths, {n});
    Tensor want;
    {
      NoGradGuard ng;
      want = model->forward(TensorList{tx, tl}).contiguous();
    }
    std::string report;
    const bool close = dl::test::allclose(dl::test::ort_run(onnx, {{"input", tx}, {"input_lengths", tl}}), want, 1e-4,
                                          1e-5, &report);
    INFO("batch " << n << ": " << report);
    CHECK(close);
  }
}

TEST_CASE("a model reading input_lengths from data of one length is a config error naming the node and the fix",
          "[text][rnn][errors]") {
  TempDir dir;
  dir.file("corpus.txt", "hello world, hello again\n");
  const std::string recipe = dir.file(
      "lm.yaml",
      "data: {format: text, root: " + dir.path.string() + ", seq_len: 4, train: {file: corpus.txt}}\n"
      "model:\n  nodes:\n"
      "    - {name: embed, type: embedding, inputs: [input], num_embeddings: num_classes, embedding_dim: 4}\n"
      "    - {name: rnn, type: lstm, inputs: [embed, input_lengths], hidden_size: 4, batch_first: true}\n"
      "    - {name: fc, type: linear, inputs: [rnn], out_features: num_classes}\n"
      "    - {name: logits, type: permute, dims: [0, 2, 1]}\n"
      "loss: {type: cross_entropy}\n");
  for (const Strings& args : {Strings{"validate", recipe}, Strings{"train", recipe, "--run-dir", dir.file("run")}}) {
    dl::test::ProcessResult r = dltool(args);
    INFO(args[0] << ": " << r.out);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.out, Catch::Contains("node 'rnn' (lstm") && Catch::Contains("reads input_lengths") &&
                          Catch::Contains("data.format 'text' gives inputs of one length") &&
                          Catch::Contains("text_classification"));
  }
}
