// metrics.jsonl: one JSON object per line, appended, one write(2) per line.
//
// The record types StepInfo / EvalInfo are shared with the console ProgressReporter
// (exporters/progress.h), so the `--json` console stream and metrics.jsonl carry the
// same objects, produced by the same to_json() below. Key order is fixed:
//
//   train: {"step","epoch","split":"train","loss","lr",["accuracy"],[extra...],
//           "samples_per_s","wall_time"}
//   eval:  {"step","epoch","split":<split>,"loss",["accuracy"],["top<k>_accuracy"],
//           [extra...],["samples_per_s"],"wall_time"}
//
// "wall_time" is the caller's elapsed seconds since the run started (not a Unix time).
// Optional fields are omitted when unset; NaN/Inf values are written as null.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "exporters/json.h"

namespace dl::exporters {

// One training-step report.
struct StepInfo {
  std::int64_t step = 0;   // global step (optimizer updates done)
  std::int64_t epoch = 0;  // epoch the step belongs to (the caller's numbering)
  double loss = std::nan("");
  double lr = std::nan("");
  std::optional<double> accuracy;                       // training accuracy, if tracked
  std::vector<std::pair<std::string, double>> extra;    // further scalars, written in order
  double samples_per_s = 0.0;
  double elapsed_s = 0.0;  // seconds since the run started -> "wall_time"
};

// One evaluation report (a pass over a split).
struct EvalInfo {
  std::string split = "val";  // "val", "test", ...
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  double loss = std::nan("");
  std::optional<double> accuracy;        // top-1
  int top_k = 5;                         // k of top_k_accuracy
  std::optional<double> top_k_accuracy;  // written as "top<k>_accuracy"
  std::vector<std::pair<std::string, double>> extra;
  std::optional<double> samples_per_s;
  double elapsed_s = 0.0;
  bool final = false;  // the run's final result (ProgressReporter prints it even when quiet)
};

json::Object to_json(const StepInfo& s);
json::Object to_json(const EvalInfo& e);

// Appends lines to a metrics.jsonl file. Opening creates the parent directories and the
// file; an existing file is continued (a resumed run appends to the same log). If the
// previous writer was killed mid-line, a newline is inserted first so every complete line
// stays parseable. Every write() is one write(2) call of a complete line, so a killed job
// keeps everything logged before it died. Errors throw std::runtime_error naming the path.
class MetricsWriter {
 public:
  static constexpr const char* kFileName = "metrics.jsonl";

  explicit MetricsWriter(const std::filesystem::path& file);
  ~MetricsWriter();
  MetricsWriter(MetricsWriter&& other) noexcept;
  MetricsWriter& operator=(MetricsWriter&& other) noexcept;
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  void write(const json::Object& record);
  void write(const StepInfo& s) { write(to_json(s)); }
  void write(const EvalInfo& e) { write(to_json(e)); }

  const std::filesystem::path& path() const { return path_; }

 private:
  void close() noexcept;
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace dl::exporters
