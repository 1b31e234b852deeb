#include "tests/support/onnxruntime.h"

#include <unistd.h>

#include <bit>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/tempdir.h"

#ifndef DLTOOL_NODE
#define DLTOOL_NODE ""
#endif
#ifndef DLTOOL_ORT_NODE_MODULES
#define DLTOOL_ORT_NODE_MODULES ""
#endif
#ifndef DLTOOL_SOURCE_DIR
#error "DLTOOL_SOURCE_DIR must be defined (CMakeLists.txt)"
#endif

namespace fs = std::filesystem;

namespace dl::test {

namespace {

static_assert(std::endian::native == std::endian::little, "ort_run.js exchanges little-endian float32/int64");

constexpr const char* kPython = "/usr/bin/python3";
constexpr double kTimeoutS = 300;

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : std::string(fallback);
}

bool is_executable_file(const std::string& p) {
  std::error_code ec;
  return !p.empty() && fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

std::string script_path() { return std::string(DLTOOL_SOURCE_DIR) + "/tests/onnx/ort_run.js"; }

// The JSON string value of "key" in a one-line object written by JSON.stringify.
std::string json_string(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":\"";
  size_t at = line.find(k);
  if (at == std::string::npos) throw std::runtime_error("ort_run.js printed no \"" + key + "\": " + line);
  std::string s;
  for (at += k.size(); at < line.size() && line[at] != '"'; ++at) {
    if (line[at] == '\\' && at + 1 < line.size()) ++at;  // names with escapes are kept approximately
    s += line[at];
  }
  return s;
}

dl::Shape json_dims(const std::string& line) {
  const std::string k = "\"dims\":[";
  size_t at = line.find(k);
  if (at == std::string::npos) throw std::runtime_error("ort_run.js printed no \"dims\": " + line);
  at += k.size();
  const size_t end = line.find(']', at);
  if (end == std::string::npos) throw std::runtime_error("ort_run.js printed bad \"dims\": " + line);
  dl::Shape dims;
  std::stringstream ss(line.substr(at, end - at));
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    dims.push_back(std::stoll(item));
  }
  return dims;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string node_executable() {
  const std::string configured = env_or("DLTOOL_NODE", DLTOOL_NODE);
  if (!configured.empty()) return is_executable_file(configured) ? configured : "";
  // Not found at configure time: maybe installed since.
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    const std::string cand = (dir.empty() ? std::string(".") : dir) + "/node";
    if (is_executable_file(cand)) return cand;
  }
  return "";
}

std::string ort_node_modules() { return env_or("DLTOOL_ORT_NODE_MODULES", DLTOOL_ORT_NODE_MODULES); }

bool ort_available(std::string* why) {
  auto no = [&](const std::string& w) {
    if (why) *why = w;
    return false;
  };
  const std::string node = node_executable();
  if (node.empty()) {
    const std::string configured = env_or("DLTOOL_NODE", DLTOOL_NODE);
    return no(configured.empty() ? "node not found (neither at configure time nor in PATH)"
                                 : "node '" + configured + "' is not an executable file");
  }
  const std::string mods = ort_node_modules();
  if (mods.empty()) return no("no onnxruntime-node directory configured (DLTOOL_ORT_NODE_MODULES is empty)");
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(mods) / "onnxruntime-node" / "package.json", ec)) {
    return no("onnxruntime-node is not installed in '" + mods + "'");
  }
  if (!fs::is_regular_file(script_path(), ec)) return no("'" + script_path() + "' is missing");
  return true;
}

std::string ort_unavailable_message() {
  std::string why;
  if (ort_available(&why)) return "";
  return "ONNX Runtime unavailable: " + why +
         ". Install it with scripts/setup_ort.sh (npm onnxruntime-node into build/ort), or point "
         "DLTOOL_ORT_NODE_MODULES / DLTOOL_NODE at an existing install";
}

bool ort_required() {
  const char* v = std::getenv("DLTOOL_REQUIRE_ORT");
  return v && std::strcmp(v, "1") == 0;
}

namespace {

// Writes `t` (float32 or int64, copied to the host) raw into `path`; returns its DIMS text
// ("7,6,5") for ort_run.js.
std::string write_input(const std::string& path, const dl::Tensor& input, const std::string& what) {
  if (!input.defined()) throw std::invalid_argument("ort_run: undefined " + what + " tensor");
  if (input.dtype() != DType::F32 && input.dtype() != DType::I64)
    throw std::invalid_argument("ort_run: " + what + " must be float32 or int64, got " + input.str());
  const dl::Tensor x = input.cpu().contiguous();
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(x.raw_data()), static_cast<std::streamsize>(x.numel() * x.element_size()));
  if (!f) throw std::runtime_error("ort_run: cannot write " + path);
  std::string dims;
  for (int64_t d : x.shape()) dims += (dims.empty() ? "" : ",") + std::to_string(d);
  return dims;
}

const char* dtype_word(const dl::Tensor& t) { return t.dtype() == DType::I64 ? "int64" : "float32"; }

// Runs ort_run.js with `args` (after the script) and reads the output it wrote to `out_path`.
dl::Tensor run_script(const std::string& model_path, const std::vector<std::string>& args, const std::string& out_path,
                      const std::string& inputs_text, OrtRunInfo* info) {
  ProcessOptions opt;
  opt.env["ORT_NODE_MODULES"] = ort_node_modules();
  opt.timeout_s = kTimeoutS;
  std::vector<std::string> argv = {node_executable(), script_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  const ProcessResult r = run_process(argv, opt);
  if (r.exit_code != 0) {
    throw std::runtime_error("ONNX Runtime failed on '" + model_path + "' (" + inputs_text + ", " + r.status_text() +
                             "):\n" + trim(r.err) + (r.out.empty() ? "" : "\n" + trim(r.out)));
  }
  std::string json;  // the last line that is a JSON object
  {
    std::stringstream ss(r.out);
    std::string line;
    while (std::getline(ss, line)) {
      if (!line.empty() && line.front() == '{') json = trim(line);
    }
  }
  if (json.empty()) throw std::runtime_error("ort_run: ort_run.js printed no JSON line; stdout:\n" + r.out);
  const dl::Shape out_dims = json_dims(json);
  if (info) {
    info->input_name = json_string(json, "input_name");
    info->output_name = json_string(json, "output_name");
  }

  std::ifstream f(out_path, std::ios::binary);
  if (!f) throw std::runtime_error("ort_run: ort_run.js wrote no " + out_path);
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const int64_t n = shape_numel(out_dims);
  if (static_cast<int64_t>(bytes.size()) != n * static_cast<int64_t>(sizeof(float))) {
    throw std::runtime_error("ort_run: output " + shape_str(out_dims) + " needs " + std::to_string(n * sizeof(float)) +
                             " bytes, ort_run.js wrote " + std::to_string(bytes.size()));
  }
  dl::Tensor y = dl::empty(out_dims);
  if (n > 0) std::memcpy(y.raw_data(), bytes.data(), bytes.size());
  return y;
}

}  // namespace

dl::Tensor ort_run(const std::string& model_path, const dl::Tensor& input, OrtRunInfo* info) {
  TempDir dir;
  const std::string in_path = dir.file("input.bin"), out_path = dir.file("output.bin");
  const std::string dims = write_input(in_path, input, "the input");
  if (!ort_available()) throw std::runtime_error("ort_run: " + ort_unavailable_message());
  return run_script(model_path, {model_path, in_path, dims, out_path, dtype_word(input)}, out_path,
                    "input " + shape_str(input.shape()), info);
}

dl::Tensor ort_run(const std::string& model_path, const std::vector<std::pair<std::string, dl::Tensor>>& inputs,
                   OrtRunInfo* info) {
  if (inputs.empty()) throw std::invalid_argument("ort_run: no inputs");
  TempDir dir;
  const std::string out_path = dir.file("output.bin");
  std::vector<std::string> args = {model_path, out_path};
  std::string text;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const auto& [name, t] = inputs[k];
    if (name.empty() || name.find('=') != std::string::npos)
      throw std::invalid_argument("ort_run: bad input name '" + name + "' (empty or holding '=')");
    const std::string in_path = dir.file("input" + std::to_string(k) + ".bin");
    const std::string dims = write_input(in_path, t, "input '" + name + "'");
    args.push_back(name + "=" + in_path + ":" + dims + ":" + dtype_word(t));
    text += (text.empty() ? "" : ", ") + name + " " + shape_str(t.shape());
  }
  if (!ort_available()) throw std::runtime_error("ort_run: " + ort_unavailable_message());
  return run_script(model_path, args, out_path, "inputs " + text, info);
}

bool python_onnx_available(std::string* why) {
  auto no = [&](const std::string& w) {
    if (why) *why = w;
    return false;
  };
  if (!is_executable_file(kPython)) return no(std::string(kPython) + " not found");
  const ProcessResult r = run_process({kPython, "-c", "import onnx"}, {.merge_stderr = true, .timeout_s = 120});
  if (r.exit_code != 0) return no(std::string(kPython) + " cannot import onnx (install python3-onnx): " + trim(r.out));
  return true;
}

std::string python_onnx_check(const std::string& path) {
  static const char* const kScript = R"(import sys
try:
    import onnx
except ImportError as e:
    print(f"cannot import onnx (install python3-onnx): {e}")
    sys.exit(2)
try:
    onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)
except Exception as e:
    print(f"{type(e).__name__}: {e}")
    sys.exit(1)
)";
  try {
    const ProcessResult r = run_process({kPython, "-c", kScript, path}, {.merge_stderr = true, .timeout_s = 300});
    if (r.exit_code == 0) return "";
    const std::string msg = trim(r.out);
    return msg.empty() ? "onnx checker: " + r.status_text() : msg;
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace dl::test
