// The SLURM examples on a real SLURM cluster: munged, slurmctld and slurmd on this machine
// (scripts/slurm_cluster.sh, one node, its own state directory and ports), real sbatch, a
// real `scancel --signal=USR1`, a real `scontrol requeue`.
//
// recipes/slurm/train.sbatch (one process): sbatch -> the job runs some steps -> scancel
// --signal=USR1 <job> (SLURM signals the job's steps, so dltool under srun gets it; the batch
// shell does not) -> dltool writes last.h5, runs `scontrol requeue <job>` and exits 75 -> the job
// is PENDING again with Restarts=1 and a begin time ~2 minutes away, which `scontrol update
// JobId=<job> StartTime=now` skips -> the script runs again, `--resume auto` resumes from last.h5
// -> COMPLETED. The final checkpoint must be bit-identical to that of the same training run
// directly, uninterrupted.
//
// recipes/slurm/train_ddp.sbatch (2 ranks, srun --mpi=pmix): the same sequence, every rank
// signalled, the requeue done by the script once srun has returned, against an uninterrupted
// `mpirun -np 2 dltool train ...`; and its launch path alone with an MPI hello program in
// dltool's place (ranks, their SLURM_* variables, SIGUSR1 on both, the script's requeue).
//
// Tagged [slurm_cluster]: ctest gives these the label `slurm` and RESOURCE_LOCK slurm (one
// cluster at a time). Skipped (tests/support/skip.h) when not root or the daemons are missing.
// Every wait is bounded; the cluster is stopped (jobs cancelled, daemons killed, state removed)
// when the test ends, also after a failure.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/same_run.h"
#include "tests/support/skip.h"
#include "tests/support/tempdir.h"

namespace fs = std::filesystem;

namespace {

using dl::test::ProcessOptions;
using dl::test::ProcessResult;
using dl::test::count_lines;
using dl::test::read_file;
using dl::test::TempDir;

constexpr const char* kData = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz";
// Not slurm_cluster.sh's default 6817, so a cluster someone started by hand does not collide.
constexpr const char* kPort = "6917";
constexpr double kJobTimeoutS = 300;  // a whole training attempt on a loaded machine

std::string tail(const std::string& text, size_t n = 4000) {
  return text.size() > n ? "..." + text.substr(text.size() - n) : text;
}

// `text` less dltool's per-step progress lines ("train epoch=... step=..."), which would push
// the messages out of a failure report.
std::string without_step_lines(const std::string& text) {
  std::istringstream in(text);
  std::string line, kept;
  while (std::getline(in, line))
    if (line.rfind("train epoch=", 0) != 0) kept += line + "\n";
  return kept;
}

// PATH with the sbin directories, where Debian puts munged, slurmctld and slurmd.
std::string path_with_sbin() {
  const char* p = std::getenv("PATH");
  return (p ? std::string(p) + ":" : std::string()) + "/usr/sbin:/sbin";
}

bool on_path(const std::string& name) {
  std::stringstream dirs(path_with_sbin());
  std::string d;
  while (std::getline(dirs, d, ':'))
    if (!d.empty() && ::access((d + "/" + name).c_str(), X_OK) == 0) return true;
  return false;
}

// "" when the cluster tests can run here, else why not.
std::string why_no_cluster() {
  if (::geteuid() != 0) return "not root: scripts/slurm_cluster.sh runs the SLURM daemons as root";
  for (const char* tool : {"munged", "munge", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "scancel"})
    if (!on_path(tool))
      return std::string(tool) + " not found: scripts/setup.sh installs munge, slurmctld, slurmd and slurm-client";
  if (!fs::exists(kData)) return "Fashion-MNIST not installed (scripts/setup.sh installs dataset-fashion-mnist)";
  return "";
}

// A one-node cluster in a temporary directory, stopped and removed at scope exit.
class Cluster {
 public:
  Cluster() : state_(dir_.file("cluster")), conf_(state_ + "/slurm.conf") {
    // munged wants every directory above its socket searchable by all (mkdtemp made it 0700).
    fs::permissions(dir_.path, fs::perms::group_exec | fs::perms::others_exec, fs::perm_options::add);
  }
  ~Cluster() {
    // `stop` cancels the jobs, kills the daemons (bounded waits) and removes the state.
    const ProcessResult r = run({kScript, "stop", state_}, 120);
    if (r.exit_code != 0) WARN("slurm_cluster.sh stop: " << r.status_text() << "\n" << r.out);
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  void start() {
    const ProcessResult r = run({kScript, "start", state_}, 180);
    INFO("scripts/slurm_cluster.sh start " << state_ << ": " << r.status_text() << "\n" << r.out);
    REQUIRE(r.exit_code == 0);
  }

  // A SLURM client command (sbatch, squeue, scontrol, scancel) against this cluster; `env` is
  // added to the environment, which the job of an sbatch inherits.
  ProcessResult client(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {}) const {
    return run(argv, 60, env);
  }
  // Same, and it must succeed; returns its output.
  std::string require_client(const std::vector<std::string>& argv,
                             const std::map<std::string, std::string>& env = {}) const {
    const ProcessResult r = client(argv, env);
    INFO(argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << ": " << r.status_text() << "\n" << r.out);
    REQUIRE(r.exit_code == 0);
    return r.out;
  }
  std::string log_tails() const {
    return "slurmctld.log:\n" + tail(read_file(state_ + "/slurmctld.log"), 2000) + "\nslurmd.log:\n" +
           tail(read_file(state_ + "/slurmd.log"), 2000);
  }

 private:
  static constexpr const char* kScript = DLTOOL_SOURCE_DIR "/scripts/slurm_cluster.sh";

  // Without our own SLURM_* (a test run inside a SLURM job must not talk to that cluster).
  ProcessResult run(const std::vector<std::string>& argv, double timeout_s,
                    const std::map<std::string, std::string>& env = {}) const {
    ProcessOptions opt;
    opt.unset_env = {"SLURM_*"};
    opt.env = env;
    opt.env["SLURM_CONF"] = conf_;
    opt.env["DLTOOL_SLURM_PORT"] = kPort;
    opt.env["PATH"] = path_with_sbin();
    opt.merge_stderr = true;
    opt.timeout_s = timeout_s;
    return dl::test::run_process(argv, opt);
  }

  TempDir dir_;
  std::string state_, conf_;
};

// One line of `scontrol -o show job <id>`: "JobId=3 JobName=lenet ... JobState=PENDING ...".
struct JobInfo {
  std::string line;
  std::string field(const std::string& key) const {
    const std::string k = " " + key + "=";
    const size_t at = line.find(k);
    if (at == std::string::npos) return "";
    const size_t from = at + k.size();
    return line.substr(from, line.find(' ', from) - from);
  }
  std::string state() const { return field("JobState"); }
  int restarts() const { return std::atoi(field("Restarts").c_str()); }
};

JobInfo job_info(const Cluster& c, const std::string& id) {
  return {" " + c.client({"scontrol", "-o", "show", "job", id}).out};
}

bool finished_badly(const std::string& state) {
  for (const char* s : {"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"})
    if (state == s) return true;
  return false;
}

double elapsed_s(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A preemptible training job of recipes/slurm/, and the same training run uninterrupted.
struct JobSpec {
  std::string script;                          // relative to the repository root
  std::vector<std::string> sbatch_options;     // resources that fit this machine
  std::vector<std::string> overrides;          // config overrides (the script's arguments)
  int64_t max_steps = 0;                       // train.max_steps in `overrides`
  std::vector<std::string> uninterrupted;      // argv of the uninterrupted run, minus --run-dir DIR
  std::string expect_in_output;                // a line the job must print (the launch it got)
  std::string requeue_message;                 // what requeues says, before " <job id>"
};

struct JobRun {
  const Cluster& cluster;
  std::string id, output;  // the job id; its output file (appended to by every attempt)

  std::string diagnosis() const {
    return "job " + id + ": " + job_info(cluster, id).line + "\njob output (without the step lines):\n" +
           tail(without_step_lines(read_file(output))) + "\n" + cluster.log_tails();
  }
  // Polls every 0.25 s until done() is true, at most `timeout_s`; fails when the job ended badly.
  void wait_until(const std::function<bool(const JobInfo&)>& done, double timeout_s, const std::string& what) const {
    const auto t0 = std::chrono::steady_clock::now();
    while (true) {
      const JobInfo j = job_info(cluster, id);
      if (done(j)) return;
      if (finished_badly(j.state())) FAIL("job ended " << j.state() << " while waiting for " << what << "\n" << diagnosis());
      if (elapsed_s(t0) > timeout_s) FAIL("no " << what << " within " << timeout_s << " s\n" << diagnosis());
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  }
};

// The pids of the processes whose command line contains `needle` (/proc/<pid>/cmdline).
std::vector<int> processes_with(const std::string& needle) {
  std::vector<int> pids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_file(entry.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos) pids.push_back(std::stoi(name));
  }
  return pids;
}

// Waits (bounded) until no process has any of `needles` in its command line.
void wait_for_exit(const std::vector<std::string>& needles, double timeout_s, const JobRun& job) {
  const auto t0 = std::chrono::steady_clock::now();
  for (const std::string& needle : needles) {
    while (!processes_with(needle).empty()) {
      if (elapsed_s(t0) > timeout_s)
        FAIL("processes with '" << needle << "' in their command line still run " << timeout_s << " s after the requeue\n"
                                << job.diagnosis());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

// sbatch [options] SCRIPT [args] from the repository root, the job's output in `output`; the
// job inherits `env` (the sbatch scripts take DLTOOL and RUN_DIR from it).
JobRun submit(const Cluster& cluster, const std::string& script, const std::vector<std::string>& options,
              const std::vector<std::string>& args, const std::string& output,
              const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {"sbatch", "--parsable", "--chdir=" DLTOOL_SOURCE_DIR, "--output=" + output,
                                   "--job-name=dltool-test"};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back(script);
  argv.insert(argv.end(), args.begin(), args.end());
  JobRun job{cluster, cluster.require_client(argv, env), output};
  while (!job.id.empty() && (job.id.back() == '\n' || job.id.back() == ' ')) job.id.pop_back();
  return job;
}

// sbatch -> `signal_after_lines` metrics lines -> scancel --signal=USR1 -> requeued -> started at
// once -> resumed -> COMPLETED; then run B's checkpoint must equal the uninterrupted run A's.
void preempted_job_matches_uninterrupted_run(const JobSpec& spec, int64_t signal_after_lines) {
  const std::string why = why_no_cluster();
  DLTOOL_SKIP_IF(!why.empty(), why);

  TempDir dir;
  const std::string a_dir = dir.file("A"), b_dir = dir.file("B");
  Cluster cluster;
  cluster.start();

  // Run B: the job. The script finds the binary and the run directory in DLTOOL and RUN_DIR.
  const JobRun job = submit(cluster, spec.script, spec.sbatch_options, spec.overrides, dir.file("job.out"),
                            {{"DLTOOL", DLTOOL_BINARY}, {"RUN_DIR", b_dir}});
  INFO("job " << job.id);

  const std::string metrics = b_dir + "/metrics.jsonl";
  job.wait_until([&](const JobInfo& j) { return j.state() == "RUNNING" && count_lines(metrics) >= signal_after_lines; },
                 kJobTimeoutS, std::to_string(signal_after_lines) + " logged steps of the running job");
  // Without --batch or --full scancel signals the job's steps, not the batch shell: dltool under srun.
  cluster.require_client({"scancel", "--signal=USR1", job.id});

  // dltool requeues the job itself; SLURM holds a requeued job for ~2 minutes (its begin time).
  // (PENDING, or already RUNNING/COMPLETED again: the update below is then not needed.)
  job.wait_until(
      [](const JobInfo& j) {
        return j.restarts() >= 1 && (j.state() == "PENDING" || j.state() == "RUNNING" || j.state() == "COMPLETED");
      },
      kJobTimeoutS, "requeue after SIGUSR1");
  if (job_info(cluster, job.id).state() == "PENDING") {
    // Skipping the hold, start the job again only once the first attempt is really gone; the
    // ~2 minutes a requeued job is normally held see to that. slurmctld shows the job PENDING
    // while the first attempt's ranks and slurmstepd may still be exiting, and a relaunch then
    // fails: the old step's PMIx socket is still bound ("pmixp_usock_create_srv: Cannot bind()
    // ... stepd.slurm.pmix.<job>.0: Address already in use", srun reports a launch failure), or,
    // in the second of the kill, slurmd refuses it ("Job <id> already killed, do not launch
    // batch job": it revokes the job's credentials up to the kill time at 1 s resolution).
    wait_for_exit({b_dir, "slurmstepd: [" + job.id + "."}, kJobTimeoutS, job);
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    cluster.require_client({"scontrol", "update", "JobId=" + job.id, "StartTime=now"});
  }
  job.wait_until([](const JobInfo& j) { return j.state() == "COMPLETED"; }, kJobTimeoutS, "COMPLETED after the requeue");

  const JobInfo done = job_info(cluster, job.id);
  const std::string out = read_file(job.output);
  INFO(job.diagnosis());
  CHECK(done.restarts() == 1);  // requeued once: the resumed attempt did not requeue again
  CHECK(done.field("ExitCode") == "0:0");
  CHECK_THAT(out, Catch::Contains("SIGUSR1 received at step"));
  CHECK_THAT(out, Catch::Contains(spec.requeue_message + " " + job.id));
  CHECK_THAT(out, Catch::Contains("restart 1"));  // the script's banner of the second attempt
  CHECK_THAT(out, Catch::Contains("resumed from " + b_dir + "/checkpoints/last.h5 at step"));
  CHECK_THAT(out, Catch::Contains("training complete"));
  CHECK_THAT(out, Catch::Contains(spec.expect_in_output));

  // Run A, uninterrupted, after the job (not beside it: MPI ranks busy-wait in collectives, and
  // four of them on two cores crawl).
  std::vector<std::string> a_argv = spec.uninterrupted;
  a_argv.insert(a_argv.end(), {"--run-dir", a_dir});
  const ProcessResult a = dl::test::run_process(
      a_argv, {.unset_env = {"SLURM_*"}, .cwd = DLTOOL_SOURCE_DIR, .merge_stderr = true, .timeout_s = kJobTimeoutS});
  INFO("uninterrupted run: " << a.status_text() << "\n" << tail(a.out));
  REQUIRE(a.exit_code == 0);
  dl::test::require_same_run(a_dir, b_dir, spec.max_steps);
}

// A small run of the LeNet recipe: 1000 training samples (data.val_size 59000), batch 64 = 16
// steps per epoch, every step logged, no validation, no periodic checkpoints; long enough
// (seconds) that the signal lands mid-run.
std::vector<std::string> lenet_overrides(int64_t max_steps) {
  return {"data.val_size=59000", "train.epochs=1000", "train.max_steps=" + std::to_string(max_steps),
          "train.log_every=1",   "train.eval_every=1000000", "checkpoint.every_steps=0",
          "checkpoint.every_epoch=false"};
}

}  // namespace

TEST_CASE("slurm cluster: train.sbatch preempted by scancel --signal=USR1 requeues itself, resumes and ends "
          "bit-identical to an uninterrupted run",
          "[slurm_cluster]") {
  constexpr int64_t kMaxSteps = 800;
  JobSpec spec;
  spec.script = "recipes/slurm/train.sbatch";
  // The script asks for 8 CPUs and 8 GB; one CPU (train.threads = SLURM_CPUS_PER_TASK = 1) fits here.
  spec.sbatch_options = {"--cpus-per-task=1", "--mem=1G"};
  spec.overrides = lenet_overrides(kMaxSteps);
  spec.max_steps = kMaxSteps;
  spec.uninterrupted = {DLTOOL_BINARY, "train", "recipes/fashion_mnist/lenet.yaml"};
  spec.uninterrupted.insert(spec.uninterrupted.end(), spec.overrides.begin(), spec.overrides.end());
  spec.uninterrupted.insert(spec.uninterrupted.end(), {"train.threads=1", "--log-format", "plain"});
  spec.expect_in_output = "1 thread(s), cpu";  // one process, SLURM_CPUS_PER_TASK threads
  spec.requeue_message = "requeued SLURM job";  // dltool --requeue
  preempted_job_matches_uninterrupted_run(spec, 20);
}

// The launch path of recipes/slurm/train_ddp.sbatch with a 20-line MPI program in dltool's place
// (DLTOOL=hello): `srun --mpi=pmix` inside `sbatch -n 2` must start two ranks of one MPI world,
// rank r with SLURM_PROCID=r, and `scancel --signal=USR1 <job>` must reach both. Each rank says
// "ready", waits (at most 60 s) for SIGUSR1, allreduces whether it got it, and exits 75 like a
// pre-empted dltool when every rank did; the script then requeues the job.
TEST_CASE("slurm cluster: train_ddp.sbatch runs 2 MPI ranks under srun --mpi=pmix and SIGUSR1 reaches both",
          "[slurm_cluster]") {
  std::string why = why_no_cluster();
  if (why.empty() && !on_path("mpicc")) why = "mpicc not found: scripts/setup.sh installs libopenmpi-dev";
  DLTOOL_SKIP_IF(!why.empty(), why);

  TempDir dir;
  const std::string hello = dir.file("hello");
  const std::string src = dir.file("hello.c", R"(#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static volatile sig_atomic_t got;
static void on_usr1(int sig) { got = sig; }
static const char* env(const char* name) { return getenv(name) ? getenv(name) : "-"; }
int main(int argc, char** argv) {
  signal(SIGUSR1, on_usr1);
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0, mine = 0, all = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  printf("rank %d of %d: SLURM_PROCID=%s SLURM_NTASKS=%s SLURM_LOCALID=%s SLURM_CPUS_PER_TASK=%s ready\n", rank, size,
         env("SLURM_PROCID"), env("SLURM_NTASKS"), env("SLURM_LOCALID"), env("SLURM_CPUS_PER_TASK"));
  fflush(stdout);
  for (int i = 0; i < 600 && !got; ++i) usleep(100000);
  mine = got == SIGUSR1;
  MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  printf("rank %d: %d of %d ranks got SIGUSR1\n", rank, all, size);
  fflush(stdout);
  MPI_Finalize();
  return all == size ? 75 : 1;
}
)");
  const ProcessResult cc = dl::test::run_process({"mpicc", "-O1", "-o", hello, src}, {.merge_stderr = true, .timeout_s = 120});
  INFO("mpicc: " << cc.status_text() << "\n" << cc.out);
  REQUIRE(cc.exit_code == 0);

  Cluster cluster;
  cluster.start();
  const JobRun job = submit(cluster, "recipes/slurm/train_ddp.sbatch", {"--ntasks=2", "--cpus-per-task=1", "--mem=1G"},
                            {}, dir.file("job.out"), {{"DLTOOL", hello}, {"RUN_DIR", dir.file("run")}});
  INFO("job " << job.id);
  auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  job.wait_until([&](const JobInfo&) { return count(read_file(job.output), " ready\n") == 2; }, kJobTimeoutS,
                 "both ranks ready");
  cluster.require_client({"scancel", "--signal=USR1", job.id});
  job.wait_until([](const JobInfo& j) { return j.restarts() >= 1; }, kJobTimeoutS, "the script's requeue");

  const std::string out = read_file(job.output);
  INFO(job.diagnosis());
  CHECK_THAT(out, Catch::Contains(", 2 ranks,"));  // the script's banner (SLURM_NTASKS)
  CHECK_THAT(out, Catch::Contains("rank 0 of 2: SLURM_PROCID=0 SLURM_NTASKS=2 SLURM_LOCALID=0 SLURM_CPUS_PER_TASK=1 ready"));
  CHECK_THAT(out, Catch::Contains("rank 1 of 2: SLURM_PROCID=1 SLURM_NTASKS=2 SLURM_LOCALID=1 SLURM_CPUS_PER_TASK=1 ready"));
  CHECK(count(out, " of 2 ranks got SIGUSR1") == 2);
  CHECK(count(out, "2 of 2 ranks got SIGUSR1") == 2);
  CHECK_THAT(out, Catch::Contains("stopped with a checkpoint (exit 75): requeueing SLURM job " + job.id));
}

TEST_CASE("slurm cluster: train_ddp.sbatch with 2 ranks preempted by scancel --signal=USR1 requeues itself, resumes "
          "and ends bit-identical to an uninterrupted 2-rank run",
          "[slurm_cluster]") {
  DLTOOL_SKIP_IF(!on_path("mpirun"), "mpirun not found: scripts/setup.sh installs openmpi-bin");
  // 1000 samples, 64 per rank x 2 ranks: 8 steps per epoch.
  constexpr int64_t kMaxSteps = 600;
  JobSpec spec;
  spec.script = "recipes/slurm/train_ddp.sbatch";
  spec.sbatch_options = {"--ntasks=2", "--cpus-per-task=1", "--mem=2G"};
  spec.overrides = lenet_overrides(kMaxSteps);
  spec.max_steps = kMaxSteps;
  // The options of the dist tests' mpirun (CMakeLists.txt says why).
  spec.uninterrupted = {"mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
                        "--mca", "btl", "self,vader", "--mca", "btl_vader_single_copy_mechanism", "none",
                        "-np", "2", DLTOOL_BINARY, "train", "recipes/fashion_mnist/lenet.yaml"};
  spec.uninterrupted.insert(spec.uninterrupted.end(), spec.overrides.begin(), spec.overrides.end());
  spec.uninterrupted.insert(spec.uninterrupted.end(), {"train.threads=1", "--log-format", "plain"});
  spec.expect_in_output = "data-parallel: 2 ranks (mpi)";
  spec.requeue_message = "requeueing SLURM job";  // the script, after every rank has exited
  preempted_job_matches_uninterrupted_run(spec, 20);
}
