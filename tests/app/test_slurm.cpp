// The SLURM pre-emption sequence with real signals and the real binary.
//
// A batch job started with `sbatch --signal=USR1@90 --requeue` gets SIGUSR1 90 s before its
// time limit. `dltool train ... --resume auto --requeue` must then finish the current step,
// write checkpoints/last.h5, run `scontrol requeue <job id>` and exit 75; the requeued job
// runs the same command line, resumes from last.h5 and must end exactly where an
// uninterrupted run ends: bit-identical weights and identical training-loss records.
//
// Each test trains a small MLP (with dropout, so the RNG state matters) over many short epochs
// (data.val_size 59000 leaves 1000 training samples = 32 batches of 32; one CPU thread: exact
// resume holds at a fixed thread count, and one thread stays fast on a loaded machine), once
// uninterrupted (run A) and once interrupted + resumed (run B). `scontrol` is a fake on PATH
// that appends its arguments to a file. Every wait is bounded: a hung child is killed and the test fails.
#include <catch2/catch.hpp>

#include "tests/support/tempdir.h"

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "exporters/checkpoint.h"
#include "tests/support/process.h"
#include "tests/support/same_run.h"

namespace fs = std::filesystem;

namespace {

using dl::test::require_same_run;
using dl::test::count_lines;
using dl::test::TempDir;

constexpr const char* kData = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
// Seen when a stop signal lands while oneDNN 2.x's JIT sgemm runs: its kernels point rsp into a
// heap workspace, the kernel writes the signal frame there, and glibc aborts later ("double
// free or corruption", "corrupted size vs. prev_size") - oneDNN issue 4845.
constexpr const char* kAbortHint =
    "\nSIGABRT after a stop signal: heap corruption. If glibc reported 'double free or corruption' or "
    "'corrupted size', the signal was delivered while oneDNN's JIT sgemm had rsp pointing into the heap "
    "(oneDNN issue 4845): the stop-signal handler must run on an alternate stack (SA_ONSTACK) and the "
    "OpenMP threads must block the stop signals (cli/run/signals.cpp).";
constexpr double kTimeoutS = 120;  // per child process

// 1000 training samples, batch 32: 32 steps per epoch, so max_steps crosses many epochs.
std::string recipe_text(int64_t max_steps) {
  return R"(model:
  layers:
    - flatten
    - {type: linear, out_features: 32}
    - relu
    - {type: dropout, p: 0.25}
    - {type: linear, out_features: 10}
data:
  dataset: fashion_mnist
  val_size: 59000
  loader: {batch_size: 32, shuffle: true}
loss: {type: cross_entropy}
optimizer: {type: sgd, lr: 0.02, momentum: 0.9}
scheduler: {type: cosine_annealing, T_max: auto, interval: step}
train: {epochs: 1000, max_steps: )" +
         std::to_string(max_steps) + R"(, log_every: 1, eval_every: 1000000, seed: 7, threads: 1}
checkpoint: {every_steps: 0, every_epoch: false}
)";
}



// The end of a child's log (the whole log of a 2000-step run would drown a failure report).
std::string log_tail(const std::string& p) {
  std::string s = dl::test::read_file(p);
  return s.size() > 4000 ? "..." + s.substr(s.size() - 4000) : s;
}

// A temp dir with the recipe and a fake `scontrol` (appends "$@" to scontrol.log).
struct Sandbox {
  TempDir dir;
  std::string recipe, bin, scontrol_log;
  explicit Sandbox(int64_t max_steps) {
    recipe = dir.file("slurm_mlp.yaml");
    std::ofstream(recipe) << recipe_text(max_steps);
    bin = dir.file("bin");
    fs::create_directories(bin);
    scontrol_log = dir.file("scontrol.log");
    const std::string fake = bin + "/scontrol";
    std::ofstream(fake) << "#!/bin/sh\necho \"$@\" >> '" << scontrol_log << "'\nexit 0\n";
    fs::permissions(fake, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
  }
  std::string run_dir(const std::string& name) const { return dir.file(name); }
  std::string scontrol_calls() const { return fs::exists(scontrol_log) ? dl::test::read_file(scontrol_log) : ""; }
};

// A running `dltool train` child (stdout + stderr go to `log`). The Process SIGKILLs and reaps
// a child still running when a failed REQUIRE leaves the scope.
struct Child {
  dl::test::Process proc;
  std::string log;
};

// Starts DLTOOL_BINARY with `args`; the environment is ours minus every SLURM_* variable,
// plus `env` (PATH gets the sandbox's bin/ prefixed so the fake scontrol is found).
void spawn(Child& c, const Sandbox& sb, const std::vector<std::string>& args,
           const std::map<std::string, std::string>& env, const std::string& log) {
  dl::test::ProcessOptions opt;
  opt.unset_env = {"SLURM_*"};
  opt.env = env;
  const char* path = std::getenv("PATH");
  opt.env["PATH"] = sb.bin + (path ? ":" + std::string(path) : std::string());
  std::vector<std::string> argv = {DLTOOL_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  c.log = log;
  c.proc = dl::test::spawn_process(argv, log, opt);
}

double elapsed_s(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Waits (bounded) for the child to exit; returns its exit status (-1 when killed by a signal).
int wait_exit(Child& c) {
  if (!c.proc.wait(kTimeoutS)) {
    c.proc.kill_and_wait();
    FAIL("dltool did not exit within " << kTimeoutS << " s (killed); its output:\n" << log_tail(c.log));
  }
  if (const int sig = c.proc.term_signal()) {
    WARN("dltool killed by signal " << sig << "; its output:\n"
                                    << log_tail(c.log) << (sig == SIGABRT ? std::string(kAbortHint) : std::string()));
    return -1;
  }
  return c.proc.exit_code();
}

// Waits (bounded) until `metrics` has at least `lines` lines while the child is still running,
// then sends `sig`. Fails when the run ends first (raise max_steps, do not sleep).
void signal_after_lines(Child& c, const std::string& metrics, int64_t lines, int sig) {
  auto t0 = std::chrono::steady_clock::now();
  while (true) {
    if (c.proc.poll()) {
      FAIL("dltool exited (" << c.proc.status_text() << ") before " << lines << " metrics lines were written; output:\n"
                             << log_tail(c.log));
    }
    if (fs::exists(metrics) && count_lines(metrics) >= lines) break;
    if (elapsed_s(t0) > kTimeoutS) {
      c.proc.kill_and_wait();
      FAIL("no " << lines << " metrics lines within " << kTimeoutS << " s (killed); output:\n" << log_tail(c.log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  c.proc.signal(sig);
}

int run_to_end(const Sandbox& sb, const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
               const std::string& log) {
  Child c;
  spawn(c, sb, args, env, log);
  return wait_exit(c);
}

std::vector<std::string> train_args(const Sandbox& sb, const std::string& run_dir, std::vector<std::string> extra) {
  std::vector<std::string> a = {"train", sb.recipe, "--run-dir", run_dir, "--log-format", "plain"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

struct Scenario {
  int sig;
  int64_t signal_after_lines;               // ~ the step the signal lands at (32 steps/epoch)
  std::vector<std::string> extra;           // flags of the interrupted run (and of its rerun)
  std::map<std::string, std::string> env;   // SLURM variables
  std::string expect_scontrol;              // "" = must not be called
};

void interrupted_run_matches(const Scenario& sc) {
  if (!fs::exists(kData)) {
    WARN("Fashion-MNIST not installed (scripts/setup.sh installs dataset-fashion-mnist): SLURM test skipped");
    return;
  }
  constexpr int64_t kMaxSteps = 2000;  // ~63 epochs; far beyond where the signals land
  Sandbox sb(kMaxSteps);
  const std::string a_dir = sb.run_dir("A"), b_dir = sb.run_dir("B");

  // (a) uninterrupted
  int rc_a = run_to_end(sb, train_args(sb, a_dir, {}), {}, sb.dir.file("A.log"));
  INFO("run A output:\n" << log_tail(sb.dir.file("A.log")));
  REQUIRE(rc_a == 0);

  // (b) the same run, interrupted by a real signal after some logged steps
  std::vector<std::string> b_args = train_args(sb, b_dir, {"--resume", "auto"});
  b_args.insert(b_args.end(), sc.extra.begin(), sc.extra.end());
  {
    Child c;
    spawn(c, sb, b_args, sc.env, sb.dir.file("B1.log"));
    signal_after_lines(c, b_dir + "/metrics.jsonl", sc.signal_after_lines, sc.sig);
    int rc = wait_exit(c);
    INFO("interrupted run output:\n" << log_tail(sb.dir.file("B1.log")));
    REQUIRE(rc == 75);
    REQUIRE(fs::exists(b_dir + "/checkpoints/last.h5"));
    const dl::Checkpoint mid = dl::load_checkpoint(b_dir + "/checkpoints/last.h5");
    REQUIRE(mid.trainer.count("global_step"));
    const int64_t stopped = std::get<int64_t>(mid.trainer.at("global_step"));
    INFO("stopped at step " << stopped);
    CHECK(stopped >= sc.signal_after_lines);
    CHECK(stopped < kMaxSteps);  // else raise kMaxSteps: the signal must land mid-run
    if (sc.expect_scontrol.empty()) {
      CHECK(sb.scontrol_calls().empty());
    } else {
      CHECK(sb.scontrol_calls() == sc.expect_scontrol + "\n");
    }
  }

  // (c) the requeued job: the same command line again, resuming from last.h5
  int rc_c = run_to_end(sb, b_args, sc.env, sb.dir.file("B2.log"));
  INFO("resumed run output:\n" << log_tail(sb.dir.file("B2.log")));
  REQUIRE(rc_c == 0);
  CHECK_THAT(dl::test::read_file(sb.dir.file("B2.log")), Catch::Contains("resumed from"));
  if (!sc.expect_scontrol.empty()) CHECK(sb.scontrol_calls() == sc.expect_scontrol + "\n");  // not again

  require_same_run(a_dir, b_dir, kMaxSteps);
}

}  // namespace

TEST_CASE("slurm: SIGUSR1 with --requeue writes last.h5 and runs scontrol requeue and exits 75 - "
          "the rerun resumes exactly",
          "[slurm]") {
  interrupted_run_matches({SIGUSR1, 20, {"--requeue"}, {{"SLURM_JOB_ID", "4242"}}, "requeue 4242"});
}

TEST_CASE("slurm: SIGTERM without --requeue writes last.h5 and exits 75 without scontrol - the rerun resumes exactly",
          "[slurm]") {
  // Stopped in a later epoch (32 steps per epoch): the loader resumes inside epoch >= 2.
  interrupted_run_matches({SIGTERM, 45, {}, {{"SLURM_JOB_ID", "4242"}}, ""});
}

TEST_CASE("slurm: array jobs are requeued as ARRAYJOB_TASK with train.requeue=true instead of --requeue",
          "[slurm]") {
  interrupted_run_matches({SIGUSR1, 100,
                           {"train.requeue=true"},
                           {{"SLURM_JOB_ID", "4250"}, {"SLURM_ARRAY_JOB_ID", "7"}, {"SLURM_ARRAY_TASK_ID", "3"}},
                           "requeue 7_3"});
}

TEST_CASE("signals: a second SIGINT exits at once with status 130, like a second Ctrl-C", "[slurm]") {
  if (!fs::exists(kData)) {
    WARN("Fashion-MNIST not installed (scripts/setup.sh installs dataset-fashion-mnist): test skipped");
    return;
  }
  // Slow steps (a 64-channel conv on batches of 1000: a large fraction of a second each), so the
  // second signal surely lands while the step the first one waits for is still running.
  TempDir dir;
  const std::string recipe = dir.file("slow.yaml", R"(
model:
  layers:
    - {type: conv2d, out_channels: 64, kernel_size: 3}
    - relu
    - flatten
    - {type: linear, out_features: 10}
data: {dataset: fashion_mnist, val_size: 59000, loader: {batch_size: 1000}}
optimizer: {type: sgd, lr: 0.01}
train: {epochs: 100000, log_every: 1, eval_every: 1000000, threads: 1}
checkpoint: {every_steps: 0, every_epoch: false}
)");
  const std::string run = dir.file("run"), log = dir.file("run.log");
  Child c;
  c.log = log;
  c.proc = dl::test::spawn_process({DLTOOL_BINARY, "train", recipe, "--run-dir", run, "--log-format", "plain"}, log);
  signal_after_lines(c, run + "/metrics.jsonl", 2, SIGINT);
  // Standard signals do not queue: wait until the first one was handled before sending the next.
  const auto t0 = std::chrono::steady_clock::now();
  while (dl::test::read_file(log).find("signal received") == std::string::npos && !c.proc.poll() && elapsed_s(t0) < kTimeoutS)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (c.proc.running() && !c.proc.poll()) c.proc.signal(SIGINT);
  const int rc = wait_exit(c);
  INFO("output:\n" << log_tail(log));
  CHECK(rc == 130);
  CHECK_THAT(dl::test::read_file(log), Catch::Contains("second SIGINT, exiting without a checkpoint"));
  CHECK_FALSE(fs::exists(run + "/checkpoints/last.h5"));  // it left before writing one
}
