// dltool generate CHECKPOINT [--prompt TEXT] [--length N] [--temperature T] [--top-k K] [--seed S]:
// text sampled from a character- or byte-level language model trained on data.format text
// (cli/run/generate.h), printed after its prompt.
#include <cmath>
#include <iostream>

#include "cli/command.h"
#include "cli/run/checkpointing.h"
#include "cli/run/generate.h"
#include "cli/run/trainer.h"
#include "cli/training.h"
#include "exporters/checkpoint.h"

namespace dl::cli {
namespace {

struct GenerateArgs {
  std::string checkpoint;
  std::string prompt = "\n";
  train::GenerateOptions options;
  int threads = 1;
};

std::function<int()> setup_generate(CLI::App& sub) {
  auto a = std::make_shared<GenerateArgs>();
  sub.footer(
      "The model is the checkpoint's (its config's model, data.format text, and its vocabulary). Each token is drawn "
      "from the model's output at the last position after the last seq_len tokens so far (one model run per token; "
      "at the start the window is right-padded, which a causal model such as an LSTM never reads). Prompt "
      "characters outside the vocabulary are read as <unk> with a warning. The same checkpoint, prompt and seed "
      "give the same text.");
  sub.add_option("checkpoint", a->checkpoint, "checkpoint (.h5) or run directory")->required();
  sub.add_option("--prompt", a->prompt, "text the sample continues (default: a newline)");
  sub.add_option("--length", a->options.length, "tokens (characters or bytes) to sample")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub.add_option("--temperature", a->options.temperature,
                 "divides the logits before the softmax: < 1 sharper, > 1 more random; 0 = greedy (argmax)")
      ->capture_default_str()
      ->check([](const std::string& v) -> std::string {
        double t = -1;
        try {
          t = std::stod(v);
        } catch (const std::exception&) {
        }
        return t >= 0 && std::isfinite(t) ? "" : "--temperature must be a number >= 0 (0 = greedy), got " + v;
      });
  sub.add_option("--top-k", a->options.top_k, "sample among the k most likely tokens only (0 = all)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  sub.add_option("--seed", a->options.seed, "seed of the sampling")->capture_default_str();
  sub.add_option("--threads", a->threads,
                 "CPU threads (default 1: a batch of one sequence gains nothing from more, and waits on them)")
      ->capture_default_str()->check(CLI::Range(1, 256));
  return [a]() -> int {
    const std::string path = train::resolve_checkpoint_path(a->checkpoint);
    const Checkpoint ckpt = load_checkpoint(path, /*weights_only=*/true);
    const Config cfg = checkpoint_config(ckpt, path, "", {});
    train::set_num_threads(a->threads);
    try {
      train::TextGenerator gen = train::load_text_generator(cfg, ckpt.model, ckpt.class_names, path);
      std::vector<std::string> unknown;
      const std::vector<int64_t> prompt = gen.encode(a->prompt, &unknown);
      if (!unknown.empty()) {
        std::string list;
        for (size_t i = 0; i < unknown.size() && i < 10; ++i) list += (i ? " " : "") + unknown[i];
        std::cerr << "warning: " << unknown.size() << " prompt character(s) not in the model's vocabulary read as <unk>: "
                  << list << (unknown.size() > 10 ? " ..." : "") << "\n";
      }
      std::cout << a->prompt << gen.decode(gen.sample(prompt, a->options)) << "\n";
    } catch (const train::GenerateError& e) {
      std::cerr << "error: " << e.what() << "\n";
      return kExitUsage;
    }
    return kExitOk;
  };
}

}  // namespace

DL_REGISTER_COMMAND(generate, "generate", "Sample text from a character-level language model checkpoint (data.format text)",
                    setup_generate);

}  // namespace dl::cli
