#include "exporters/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ostream>

namespace dl::exporters {

namespace {
constexpr const char* kClearLine = "\r\x1b[K";  // to column 0, erase to end of line

double steady_now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string fmt_loss(double v) { return fmt("%.4g", v); }
std::string fmt_lr(double v) { return fmt("%.3g", v); }
std::string fmt_frac(double v) { return fmt("%.4f", v); }
std::string fmt_rate(double v) { return fmt(v >= 100 ? "%.0f" : "%.1f", v); }

// H:MM:SS, or M:SS under an hour; "--:--" when unknown.
std::string fmt_duration(double secs) {
  if (!std::isfinite(secs) || secs < 0 || secs > 1e8) return "--:--";
  const auto t = static_cast<long long>(std::llround(secs));
  char buf[48];
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", t / 60, t % 60);
  return buf;
}

int detect_columns() {
  struct winsize ws {};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  if (const char* c = std::getenv("COLUMNS")) {
    const int n = std::atoi(c);
    if (n > 0) return n;
  }
  return 80;
}
}  // namespace

bool ProgressReporter::stdout_is_tty() {
  if (!::isatty(STDOUT_FILENO)) return false;
  const char* term = std::getenv("TERM");
  return !(term && std::strcmp(term, "dumb") == 0);
}

ProgressReporter::ProgressReporter(Mode mode, bool tty, std::ostream& out)
    : mode_(mode), tty_(tty && mode == Mode::human), out_(out) {
  if (tty_) width_ = detect_columns();
}

ProgressReporter::~ProgressReporter() {
  if (bar_visible_) {
    out_ << '\n' << std::flush;
    bar_visible_ = false;
  }
}

void ProgressReporter::begin(std::int64_t total_steps, std::int64_t total_epochs) {
  total_steps_ = total_steps;
  total_epochs_ = total_epochs;
  bar_w_ = -1;
  have_first_ = false;
  have_last_ = false;
  if (mode_ == Mode::json) {
    json::Object o;
    o.add("event", "begin").add("total_steps", total_steps);
    if (total_epochs > 0) o.add("total_epochs", total_epochs);
    out_ << o.str() << '\n' << std::flush;
  }
}

double ProgressReporter::eta_seconds(const StepInfo& s) const {
  if (total_steps_ <= 0 || !have_first_) return -1;
  const double dsteps = static_cast<double>(s.step - first_step_);
  const double dt = s.elapsed_s - first_elapsed_;
  if (dsteps <= 0 || dt <= 0) return -1;
  return static_cast<double>(std::max<std::int64_t>(total_steps_ - s.step, 0)) * dt / dsteps;
}

// (Strings are built with append(): GCC 12 warns falsely (-Wrestrict, PR105651) about
// `"literal" + std::string` temporaries at -O2.)
std::string ProgressReporter::bar_line(const StepInfo& s) const {
  std::string head = "epoch ";
  head.append(std::to_string(s.epoch));
  if (total_epochs_ > 0) head.append("/").append(std::to_string(total_epochs_));
  std::string count = std::to_string(s.step);
  if (total_steps_ > 0) count.append("/").append(std::to_string(total_steps_));
  std::string tail = " loss ";
  tail.append(fmt_loss(s.loss));
  if (std::isfinite(s.lr)) tail.append(" lr ").append(fmt_lr(s.lr));
  tail.append(" ").append(fmt_rate(s.samples_per_s)).append(" samples/s");
  if (total_steps_ > 0) tail.append(" ETA ").append(fmt_duration(eta_seconds(s)));

  const int width = std::max(width_, 20) - 1;  // never touch the last column (no wrap)
  const int fixed = static_cast<int>(head.size() + count.size() + tail.size()) + 4;
  // Fixed once per run (with slack for longer numbers), so the bar does not jitter.
  if (bar_w_ < 0) bar_w_ = std::clamp(width - fixed - 8, 0, 30);
  const int bar_w = bar_w_;
  std::string line = head;
  if (total_steps_ > 0 && bar_w >= 8) {
    const double frac =
        std::clamp(static_cast<double>(s.step) / static_cast<double>(total_steps_), 0.0, 1.0);
    const auto filled = static_cast<size_t>(frac * bar_w);
    line.append(" [")
        .append(filled, '#')
        .append(static_cast<size_t>(bar_w) - filled, '.')
        .append("] ");
  } else {
    line.append(" step ");
  }
  line.append(count).append(tail);
  if (static_cast<int>(line.size()) > width) line.resize(static_cast<size_t>(width));
  return line;
}

std::string ProgressReporter::plain_step_line(const StepInfo& s) const {
  std::string line = "train epoch=";
  line.append(std::to_string(s.epoch));
  if (total_epochs_ > 0) line.append("/").append(std::to_string(total_epochs_));
  line.append(" step=").append(std::to_string(s.step));
  if (total_steps_ > 0) line.append("/").append(std::to_string(total_steps_));
  line.append(" loss=").append(fmt_loss(s.loss));
  if (std::isfinite(s.lr)) line.append(" lr=").append(fmt_lr(s.lr));
  if (s.accuracy) line.append(" accuracy=").append(fmt_frac(*s.accuracy));
  for (const auto& [k, v] : s.extra) line.append(" ").append(k).append("=").append(fmt_loss(v));
  line.append(" samples/s=").append(fmt_rate(s.samples_per_s));
  line.append(" elapsed=").append(fmt_duration(s.elapsed_s));
  if (total_steps_ > 0) line.append(" eta=").append(fmt_duration(eta_seconds(s)));
  return line;
}

std::string ProgressReporter::eval_line(const EvalInfo& e) {
  std::string line = e.split;
  line.append(" epoch=").append(std::to_string(e.epoch));
  line.append(" step=").append(std::to_string(e.step));
  line.append(" loss=").append(fmt_loss(e.loss));
  if (e.accuracy) line.append(" accuracy=").append(fmt_frac(*e.accuracy));
  if (e.top_k_accuracy)
    line.append(" top")
        .append(std::to_string(e.top_k))
        .append("_accuracy=")
        .append(fmt_frac(*e.top_k_accuracy));
  for (const auto& [k, v] : e.extra) line.append(" ").append(k).append("=").append(fmt_loss(v));
  if (e.samples_per_s) line.append(" samples/s=").append(fmt_rate(*e.samples_per_s));
  return line;
}

void ProgressReporter::clear_bar() {
  if (bar_visible_) out_ << kClearLine;
  bar_visible_ = false;
}

void ProgressReporter::restore_bar() {
  if (!have_last_) return;
  bar_ = bar_line(last_);  // the latest state, even if throttling skipped its redraw
  out_ << bar_;
  bar_visible_ = true;
  last_draw_ = steady_now();
}

void ProgressReporter::emit_line(const std::string& line) {
  if (tty_) {
    const bool had_bar = bar_visible_;
    clear_bar();
    out_ << line << '\n';
    if (had_bar) restore_bar();
  } else {
    out_ << line << '\n';
  }
  out_ << std::flush;
}

void ProgressReporter::log_step(const StepInfo& s) {
  if (!have_first_) {
    have_first_ = true;
    first_step_ = s.step;
    first_elapsed_ = s.elapsed_s;
  }
  last_ = s;
  have_last_ = true;

  switch (mode_) {
    case Mode::quiet:
      return;
    case Mode::json:
      out_ << to_json(s).str() << '\n' << std::flush;
      return;
    case Mode::human:
      break;
  }
  if (!tty_) {
    emit_line(plain_step_line(s));
    return;
  }
  const double now = steady_now();
  const bool last_step = total_steps_ > 0 && s.step >= total_steps_;
  if (bar_visible_ && !last_step && now - last_draw_ < min_redraw_s_) return;
  last_draw_ = now;
  bar_ = bar_line(s);
  out_ << kClearLine << bar_ << std::flush;
  bar_visible_ = true;
}

void ProgressReporter::log_eval(const EvalInfo& e) {
  switch (mode_) {
    case Mode::json:
      out_ << to_json(e).str() << '\n' << std::flush;
      return;
    case Mode::quiet:
      if (e.final) out_ << eval_line(e) << '\n' << std::flush;
      return;
    case Mode::human:
      emit_line(eval_line(e));
      return;
  }
}

void ProgressReporter::message(const std::string& text) {
  switch (mode_) {
    case Mode::quiet:
      return;
    case Mode::json:
      out_ << json::Object().add("event", "message").add("message", text).str() << '\n'
           << std::flush;
      return;
    case Mode::human:
      emit_line(text);
      return;
  }
}

void ProgressReporter::error(const std::string& text) {
  if (mode_ == Mode::json) {
    out_ << json::Object().add("event", "error").add("message", text).str() << '\n' << std::flush;
  } else {
    emit_line(std::string("error: ").append(text));
  }
}

void ProgressReporter::end() {
  if (mode_ == Mode::quiet) return;
  if (mode_ == Mode::json) {
    json::Object o;
    o.add("event", "end");
    if (have_last_) o.add("step", last_.step).add("wall_time", last_.elapsed_s);
    out_ << o.str() << '\n' << std::flush;
    return;
  }
  if (tty_ && have_last_) {
    // Show the final state (a throttled redraw may have skipped it), then end the line.
    bar_ = bar_line(last_);
    out_ << kClearLine << bar_ << '\n';
    bar_visible_ = false;
  } else if (bar_visible_) {
    out_ << '\n';
    bar_visible_ = false;
  }
  bar_.clear();
  if (have_last_) {
    out_ << "finished: step " << last_.step;
    if (total_steps_ > 0) out_ << "/" << total_steps_;
    out_ << " in " << fmt_duration(last_.elapsed_s) << '\n';
  }
  out_ << std::flush;
}

}  // namespace dl::exporters
