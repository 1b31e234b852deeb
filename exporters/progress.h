// Console progress for the training loop.
//
// Mode::human, tty=true   one progress line redrawn in place ("\r" + ESC[K), throttled to
//                         ~10 redraws/s; messages and eval results print on their own line
//                         above it:
//     epoch 2/10 [#######.......] 1200/5000 loss 0.5312 lr 0.01 5120 samples/s ETA 1:23
// Mode::human, tty=false  (batch jobs, SLURM logs) exactly one plain line per log_step /
//                         log_eval / message call, never "\r" or an ANSI escape:
//     train epoch=2/10 step=1200/5000 loss=0.5312 lr=0.01 samples/s=5120 elapsed=0:42 eta=1:23
//     val epoch=2 step=1200 loss=0.4821 accuracy=0.8512 top5_accuracy=0.9901
// Mode::quiet             only error() lines and EvalInfo with final=true.
// Mode::json              one JSON object per line: log_step / log_eval print exactly the
//                         metrics.jsonl object (to_json in metrics.h); begin / message /
//                         error / end print {"event":"begin"|"message"|"error"|"end",...}.
//
// ETA comes from the StepInfo's own elapsed_s and step (the rate since the first log_step),
// so it is deterministic for a given input sequence.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "exporters/metrics.h"

namespace dl::exporters {

class ProgressReporter {
 public:
  enum class Mode { human, quiet, json };

  // isatty(STDOUT_FILENO) and TERM is not "dumb": the default for `tty`.
  static bool stdout_is_tty();

  ProgressReporter(Mode mode, bool tty, std::ostream& out);
  ~ProgressReporter();  // terminates a visible progress line

  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  // total_steps <= 0: unknown (no bar, no ETA). total_epochs <= 0: epochs shown without "/N".
  void begin(std::int64_t total_steps, std::int64_t total_epochs = 0);
  void log_step(const StepInfo& s);
  void log_eval(const EvalInfo& e);
  // An informational line (suppressed in quiet mode).
  void message(const std::string& text);
  // A problem the user must see: printed in every mode ("error: ..." / {"event":"error"}).
  void error(const std::string& text);
  // Finishes the progress line and prints a one-line summary (not in quiet mode).
  void end();

  // TTY only: line width (default: the terminal's, else $COLUMNS, else 80) and the minimum
  // seconds between two redraws (default 0.1; 0 redraws on every call).
  void set_width(int columns) {
    width_ = columns;
    bar_w_ = -1;
  }
  void set_min_redraw_interval(double seconds) { min_redraw_s_ = seconds; }

 private:
  std::string bar_line(const StepInfo& s) const;
  std::string plain_step_line(const StepInfo& s) const;
  static std::string eval_line(const EvalInfo& e);
  double eta_seconds(const StepInfo& s) const;
  void clear_bar();    // erase the visible bar (TTY), cursor at column 0
  void restore_bar();  // redraw the last bar after a message (TTY)
  void emit_line(const std::string& line);  // a full line above the bar / a plain line

  Mode mode_;
  bool tty_;
  std::ostream& out_;
  int width_ = 80;
  double min_redraw_s_ = 0.1;

  std::int64_t total_steps_ = 0;
  std::int64_t total_epochs_ = 0;
  bool have_first_ = false;     // first StepInfo seen (ETA reference)
  std::int64_t first_step_ = 0;
  double first_elapsed_ = 0.0;
  bool have_last_ = false;
  StepInfo last_;               // last StepInfo seen
  std::string bar_;             // last drawn bar text
  mutable int bar_w_ = -1;      // bar width in characters, chosen at the first draw
  bool bar_visible_ = false;
  double last_draw_ = -1e300;   // steady-clock seconds of the last redraw
};

}  // namespace dl::exporters
