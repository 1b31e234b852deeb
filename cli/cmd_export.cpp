// dltool export CHECKPOINT -o FILE [--format onnx] [--opset N] [--static-batch [--batch-size N]]
//   [--input-names NAME] [--output-names NAME] [--config RECIPE] [--input-shape C,H,W] [--verify]
// The model graph of the checkpoint's config, with the checkpoint's weights, as an ONNX file.
#include <iomanip>
#include <iostream>
#include <numeric>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "cli/command.h"
#include "cli/training.h"
#include "datasets/dataloader.h"
#include "cli/run/trainer.h"
#include "engine/ops.h"
#include "cli/run/checkpointing.h"
#include "cli/run/setup.h"
#include "exporters/atomic_file.h"
#include "exporters/checkpoint.h"
#include "exporters/onnx_export.h"
#include "exporters/onnx_verify.h"

namespace dl::cli {
namespace {

struct ExportArgs {
  std::string checkpoint;
  std::vector<std::string> overrides;
  std::string output;
  std::string format = "onnx";
  int64_t opset = onnx_export::kDefaultOpset;
  bool static_batch = false;
  int64_t batch_size = 1;
  std::vector<std::string> input_names{"input"}, output_names{"output"};
  std::string config;
  std::vector<int64_t> input_shape;
  std::string input_dtype;  // "" = the data's (float32 with --input-shape)
  bool verify = false;
  int64_t verify_samples = 8;
  double rtol = 1e-4, atol = 1e-5;
};

// The resolved config without train.device and train.threads: they say where the weights were
// trained, not what the model is, and would make the same weights export to different bytes.
std::string portable_config(const Config& cfg) {
  YAML::Node root = YAML::Load(cfg.resolved_yaml);
  if (root["train"]) {
    root["train"].remove("device");
    root["train"].remove("threads");
  }
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

std::string one_name(const std::vector<std::string>& names, const char* flag, const char* what) {
  if (names.size() != 1)
    throw CLI::ValidationError(flag, std::string("the model has one ") + what + ", so give exactly one name");
  return names[0];
}

// A verification batch: the first `n` test images (train images when the config has no test
// split) through the config's transforms, or a seeded standard-normal batch (token 0 for an
// int64 input) when the data files cannot be read, or hold fewer than `n` samples and `exact`
// asks for n (a static batch); the source is said either way.
Tensor sample_batch(const Config& cfg, const ModelInput& input, int64_t n, bool exact, std::string& source) {
  const Shape& sample = input.shape;
  try {
    data::Splits splits = train::open_data(cfg);
    const bool test = splits.test != nullptr;
    data::DatasetPtr ds = test ? splits.test : splits.train;
    if (train::model_input_shape(cfg, ds->info().input_shape) != sample) {
      source = "a random normal batch (seed 0; the data's sample shape differs from --input-shape)";
    } else if (exact && ds->size() < n) {
      source = "a random normal batch (seed 0; the data has fewer samples than --batch-size)";
    } else {
      n = std::min(n, ds->size());
      const std::string kind = test ? "test" : "training";
      source = n == 1 ? "the first " + kind + " sample" : "the first " + std::to_string(n) + " " + kind + " samples";
      data::LoaderOptions o = train::loader_options(cfg, /*training=*/false);
      o.batch_size = n;
      o.workers = 0;
      data::DataLoader loader(ds, std::move(o));
      loader.start_epoch(0);
      return loader.next()->input();
    }
  } catch (const std::exception& e) {
    source = std::string("a random normal batch (seed 0; the data is not readable: ") + e.what() + ")";
  }
  Generator gen(0);
  Shape shape{n};
  shape.insert(shape.end(), sample.begin(), sample.end());
  return input.dtype == DType::I64 ? zeros(shape, DType::I64) : randn(shape, gen);
}

std::string join_dims(const std::vector<std::string>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + dims[i];
  return s + "]";
}

std::function<int()> setup_export(CLI::App& sub) {
  auto a = std::make_shared<ExportArgs>();
  sub.add_option("checkpoint", a->checkpoint, "checkpoint (.h5) or run directory")->required();
  sub.add_option("overrides", a->overrides, "key=value overrides of the config (with --config)");
  sub.add_option("-o,--output", a->output, "the file to write, e.g. model.onnx")->required();
  sub.add_option("--format", a->format, "export format")->check(CLI::IsMember({"onnx"}));
  sub.add_option("--opset", a->opset, "ONNX opset version")
      ->check(CLI::Range(onnx_export::kMinOpset, onnx_export::kMaxOpset));
  sub.add_flag("--static-batch", a->static_batch, "fix the batch dimension to --batch-size (default: dynamic)");
  sub.add_option("--batch-size", a->batch_size, "the fixed batch size with --static-batch")->check(CLI::PositiveNumber);
  sub.add_option("--input-names", a->input_names, "name of the graph input (default: input)")->delimiter(',');
  sub.add_option("--output-names", a->output_names, "name of the graph output (default: output)")->delimiter(',');
  sub.add_option("--config", a->config, "recipe to build the model from (default: the checkpoint's own config)");
  sub.add_option("--input-shape", a->input_shape,
                 "per-sample input shape C,H,W (default: read from the config's training images)")
      ->delimiter(',')->check(CLI::PositiveNumber);
  sub.add_option("--input-dtype", a->input_dtype,
                 "dtype of the input: float32, or int64 for token ids (default: the data's; float32 with --input-shape)")
      ->check(CLI::IsMember({"float32", "int64"}));
  sub.add_flag("--verify", a->verify, "run the written file in OpenCV's DNN module and compare with dltool's output");
  sub.add_option("--verify-samples", a->verify_samples, "batch size of the --verify run")->check(CLI::PositiveNumber);
  sub.add_option("--rtol", a->rtol, "--verify: relative tolerance")->check(CLI::NonNegativeNumber);
  sub.add_option("--atol", a->atol, "--verify: absolute tolerance")->check(CLI::NonNegativeNumber);
  return [a]() -> int {
    std::string path = train::resolve_checkpoint_path(a->checkpoint);
    Checkpoint ckpt = load_checkpoint(path, /*weights_only=*/true);
    Config cfg = checkpoint_config(ckpt, path, a->config, a->overrides);

    train::ModelData data;
    if (!a->input_shape.empty()) {
      data.input.shape.assign(a->input_shape.begin(), a->input_shape.end());
    } else {
      try {
        data = train::peek_model_data(cfg);
      } catch (const std::exception& e) {
        throw DataError(std::string(e.what()) + "\n(the input shape comes from the training images' header; "
                                                "without the data pass it, e.g. --input-shape 1,28,28)");
      }
    }
    if (!a->input_dtype.empty()) data.input.dtype = a->input_dtype == "int64" ? DType::I64 : DType::F32;
    // `num_classes` in the model's attributes: the classes the weights were trained for.
    if (!ckpt.class_names.empty()) data.num_classes = static_cast<int64_t>(ckpt.class_names.size());
    std::shared_ptr<GraphModel> model = train::build_model(cfg, data, static_cast<uint64_t>(cfg.train.seed));
    try {
      model->load_state_dict(ckpt.model, /*strict=*/true);
    } catch (const std::exception& e) {
      throw CheckpointError(path, "its weights do not fit the model of " + cfg.source_path + ": " + e.what() +
                                      (a->config.empty() ? "" : "\n(export with the recipe it was trained with, or "
                                                                "without --config to use the checkpoint's own)"));
    }
    model->eval();

    onnx_export::Options o;
    o.opset = a->opset;
    o.dynamic_batch = !a->static_batch;
    o.batch_size = a->batch_size;
    o.input_name = one_name(a->input_names, "--input-names", "input");
    o.output_name = one_name(a->output_names, "--output-names", "output");
    o.graph_name = cfg.name.empty() ? "dltool" : cfg.name;
    o.metadata = {{"dltool.config", portable_config(cfg)}};
    if (!ckpt.class_names.empty())  // newline-joined class names, index order
      o.metadata.emplace_back("dltool.classes", std::accumulate(std::next(ckpt.class_names.begin()), ckpt.class_names.end(),
                                                                ckpt.class_names.front(), [](std::string a, const std::string& b) { return a + "\n" + b; }));
    const std::string bytes = onnx_export::export_onnx(train::resolve_model_spec(cfg, data.num_classes), *model, o);
    write_file_atomic(a->output, bytes);

    const onnx_export::ModelInfo info = onnx_export::describe(bytes);
    std::cout << "wrote " << a->output << " (ONNX opset " << info.opset << ", IR version " << info.ir_version << ", "
              << info.nodes << " nodes, " << info.initializers << " initializers holding " << info.parameters
              << " values, " << bytes.size() << " bytes)\n"
              << "  input  '" << info.input_name << "' " << join_dims(info.input_dims) << "\n"
              << "  output '" << info.output_name << "' " << join_dims(info.output_dims) << "\n";
    if (!a->verify) return kExitOk;
    if (model->model_inputs().size() > 1) {
      std::cerr << "verify: NOT verified: the model also reads input_lengths and OpenCV's DNN module runs graphs of "
                   "one input\n(the file was written and passed the ONNX checker; run it in ONNX Runtime with both "
                   "inputs to compare)\n";
      return kExitFailure;
    }

    std::string source, note;
    int64_t n = a->static_batch ? a->batch_size : a->verify_samples;
    if (std::string node = onnx_export::batch_coupling_node(bytes); !node.empty()) {
      note = " (OpenCV DNN 4.6 computes node '" + node + "', a mean over the batch, per sample";
      if (a->static_batch && n > 1) {
        note += ": a mismatch here is OpenCV's)";
      } else {
        note += ", so the check runs at batch size 1)";
        n = 1;
      }
    }
    Tensor x = sample_batch(cfg, data.input, n, /*exact=*/a->static_batch, source);
    Tensor ref;
    {
      NoGradGuard no_grad;
      ref = model->forward(x).contiguous();
    }
    onnx_export::VerifyResult r = onnx_export::verify_with_opencv(a->output, x, ref, a->rtol, a->atol);
    if (!r.ran) {
      std::cerr << "verify: NOT verified: " << r.runtime << " cannot run " << a->output << ": " << r.message
                << "\n(the file was written and passed the ONNX checker; run it in ONNX Runtime to compare)\n";
      return kExitFailure;
    }
    std::ostringstream diff;
    diff << std::setprecision(3) << "max abs diff " << r.max_abs_diff << ", max rel diff " << r.max_rel_diff
         << " (rtol " << a->rtol << ", atol " << a->atol << ")";
    std::cout << "verify: " << r.runtime << " vs dltool on " << source << note << ": " << diff.str() << ": "
              << (r.within_tolerance ? "ok" : "FAILED") << "\n";
    return r.within_tolerance ? kExitOk : kExitFailure;
  };
}

}  // namespace

DL_REGISTER_COMMAND(export_cmd, "export", "Export a checkpoint's model to ONNX (-o FILE), optionally --verify it",
                    setup_export);

}  // namespace dl::cli
