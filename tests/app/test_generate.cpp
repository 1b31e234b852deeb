// `dltool generate` (cli/run/generate.h, cli/cmd_generate.cpp): token picking (greedy, tiny
// temperature, top-k), the prompt's encoding (control characters, <unk>), seeded determinism
// and length on a trained tiny character model, and the errors: not a text model, a wrong
// output layout, bad flags.
#include <catch2/catch.hpp>

#include <filesystem>

#include "cli/run/generate.h"
#include "cli/run/trainer.h"
#include "configs/config.h"
#include "exporters/checkpoint.h"
#include "tests/app/text_model_util.h"
#include "tests/support/process.h"

using namespace dl;
using dl::test::TempDir;
using Ids = std::vector<int64_t>;

namespace {

dl::test::ProcessResult dltool(std::vector<std::string> args) {
  args.insert(args.begin(), DLTOOL_BINARY);
  return dl::test::run_process(args);
}

// Trains the tiny model of text_model_util.h into dir/run; returns its last.h5.
std::string trained_checkpoint(const TempDir& dir) {
  const Config cfg = load_config_string(test::tiny_char_lm(dir), dir.file("lm.yaml"));
  train::RunOptions opt;
  opt.run_dir = dir.file("run");
  opt.mode = exporters::ProgressReporter::Mode::quiet;
  opt.final_test = false;
  train::Trainer(cfg, opt).run();
  return train::resolve_checkpoint_path(dir.file("run"));
}

train::TextGenerator generator_of(const std::string& path) {
  const Checkpoint ckpt = load_checkpoint(path, /*weights_only=*/true);
  const Config cfg = load_config_string(ckpt.config_yaml, path);
  return train::load_text_generator(cfg, ckpt.model, ckpt.class_names, path);
}

}  // namespace

TEST_CASE("generate: pick_token is greedy at temperature 0 and tiny temperatures, top-k limits the draw",
          "[generate]") {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f};
  for (double u : {0.0, 0.3, 0.999})
    CHECK(train::pick_token(logits, 0.0, 0, u) == 1);  // argmax; the lower id of the tie 1/3
  for (double u : {0.0, 0.999}) {
    CHECK(train::pick_token(logits, 1e-6, 0, u) == (u < 0.5 ? 1 : 3));  // only the tied maxima remain
    CHECK(train::pick_token(logits, 5.0, 1, u) == 1);                  // top-1 = greedy at any temperature
  }
  // Equal logits, top 2 of 4: ids 0 and 1, half the mass each.
  const std::vector<float> flat(4, 0.0f);
  CHECK(train::pick_token(flat, 1.0, 2, 0.49) == 0);
  CHECK(train::pick_token(flat, 1.0, 2, 0.51) == 1);
  CHECK(train::pick_token(flat, 1.0, 0, 0.99) == 3);
  CHECK(train::pick_token(flat, 1.0, 100, 0.99) == 3);  // k > V: all
}

TEST_CASE("generate: seeded sampling from a trained char model: determinism, length, greedy, prompt encoding",
          "[generate][text]") {
  TempDir dir;
  const std::string ckpt = trained_checkpoint(dir);
  train::TextGenerator gen = generator_of(ckpt);
  CHECK(gen.seq_len() == 12);
  std::vector<std::string> unknown;
  const Ids prompt = gen.encode("the cat\n", &unknown);
  CHECK(unknown.empty());
  CHECK(prompt.size() == 8);
  CHECK(gen.decode(prompt) == "the cat\n");  // the newline is the token "<0x0A>"
  // Characters outside the vocabulary are <unk> (0), reported once each time they occur.
  CHECK(gen.encode("tQe\xC3\xA9", &unknown) == Ids{gen.encode("t", nullptr)[0], 0, gen.encode("e", nullptr)[0], 0});
  CHECK(unknown == std::vector<std::string>{"Q", "\xC3\xA9"});
  CHECK(gen.decode({0}) == "\xEF\xBF\xBD");

  train::GenerateOptions o;
  o.length = 30;  // longer than seq_len: the window slides
  o.seed = 7;
  const Ids a = gen.sample(prompt, o), b = gen.sample(prompt, o);
  CHECK(a.size() == 30);
  CHECK(a == b);
  for (int64_t id : a) CHECK((id >= 0 && id < gen.vocab_size()));
  o.seed = 8;
  o.temperature = 3.0;  // flat: another seed draws another text
  CHECK(gen.sample(prompt, o) != a);
  // A tiny temperature is greedy, whatever the seed.
  o.temperature = 0.0;
  const Ids greedy = gen.sample(prompt, o);
  o.temperature = 1e-6;
  o.seed = 123;
  CHECK(gen.sample(prompt, o) == greedy);
  o.length = 0;
  CHECK(gen.sample(prompt, o).empty());
  CHECK_THROWS_AS(gen.sample({}, o), train::GenerateError);

  // The command: prompt + sampled text, the same for the same seed; a run directory works.
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"generate", dir.file("run"), "--prompt", "the ", "--length", "25"};
    args.insert(args.end(), extra.begin(), extra.end());
    return dltool(args);
  };
  dl::test::ProcessResult r1 = run({"--seed", "3"}), r2 = run({"--seed", "3"});
  INFO(r1.out << r1.err);
  CHECK(r1.exit_code == 0);
  CHECK(r1.out == r2.out);
  CHECK(r1.out.rfind("the ", 0) == 0);
  // One character per token (ASCII, or U+FFFD for a sampled <unk>), then a newline.
  std::string chars = r1.out;
  for (size_t at; (at = chars.find("\xEF\xBF\xBD")) != std::string::npos;) chars.replace(at, 3, "?");
  CHECK(chars.size() == 4 + 25 + 1);
  dl::test::ProcessResult greedy_cli = run({"--temperature", "0", "--top-k", "3"});
  CHECK(greedy_cli.exit_code == 0);
  dl::test::ProcessResult unk = dltool({"generate", ckpt, "--prompt", "Zat", "--length", "3"});
  CHECK(unk.exit_code == 0);
  CHECK_THAT(unk.err, Catch::Contains("warning: 1 prompt character(s) not in the model's vocabulary read as <unk>: Z"));
}

TEST_CASE("generate: errors for bad flags, non-text checkpoints and models that are not next-token models",
          "[generate][text]") {
  TempDir dir;
  const std::string ckpt = trained_checkpoint(dir);
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--temperature", "-1"}, {"--length", "x"}, {"--top-k", "-2"}, {"--no-such-flag"}}) {
    std::vector<std::string> args = {"generate", ckpt};
    args.insert(args.end(), bad.begin(), bad.end());
    dl::test::ProcessResult r = dltool(args);
    INFO(bad[0] << ": " << r.out << r.err);
    CHECK(r.exit_code == 2);
  }
  dl::test::ProcessResult empty = dltool({"generate", ckpt, "--prompt", ""});
  CHECK(empty.exit_code == 2);
  CHECK_THAT(empty.err, Catch::Contains("the prompt is empty"));
  CHECK(dltool({"generate", dir.file("missing.h5")}).exit_code != 0);

  // A checkpoint of another data format.
  Checkpoint c = load_checkpoint(ckpt, /*weights_only=*/true);
  Config cfg = load_config_string(c.config_yaml, ckpt);
  Config images = cfg;
  images.data.format = "idx";
  CHECK_THROWS_WITH(train::load_text_generator(images, c.model, c.class_names, ckpt),
                    Catch::Contains("not a text corpus (data.format: text)"));
  CHECK_THROWS_WITH(train::load_text_generator(cfg, c.model, {}, ckpt), Catch::Contains("holds no vocabulary"));

  // A model whose output is not [V, T] or [T, V]: the LSTM's hidden states ([T, 16]).
  Config no_head = load_config_string(test::tiny_char_lm(dir), dir.file("lm.yaml"));
  no_head.model.nodes.resize(2);
  no_head.model.output = "lstm";
  const train::ModelData md = train::model_data(no_head, train::peek_data(no_head));
  try {
    train::TextGenerator(train::build_model(no_head, md, 0), c.class_names, false);
    FAIL("expected a GenerateError");
  } catch (const train::GenerateError& e) {
    CHECK_THAT(e.what(), Catch::Contains("output per sample is [12, 16]"));
  }
  // A float input.
  Config floats = load_config_string("model: {layers: [{type: linear, out_features: 4}]}\n"
                                     "data: {dataset: fashion_mnist}\n",
                                     "f.yaml");
  try {
    train::TextGenerator(train::build_model(floats, Shape{12}, 0), c.class_names, false);
    FAIL("expected a GenerateError");
  } catch (const train::GenerateError& e) {
    CHECK_THAT(e.what(), Catch::Contains("float32 [12]") && Catch::Contains("int64 token ids"));
  }
}
