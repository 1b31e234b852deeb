// detect_env(): where this process sits in the job, from the launcher's environment variables
// (engine/dist/process_group.h lists them and the order).
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <optional>
#include <string>

#include "engine/dist/process_group.h"

namespace dl::dist {
namespace {

std::optional<std::string> get(const char* name) {
  const char* v = std::getenv(name);
  if (!v) return std::nullopt;
  return std::string(v);
}

// The integer value of `name` (nullopt when unset); DistError naming the variable when the
// value is not an integer >= `min`.
std::optional<int> get_int(const char* name, int min) {
  const std::optional<std::string> text = get(name);
  if (!text) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long v = std::strtol(text->c_str(), &end, 10);
  if (text->empty() || *end != '\0' || errno == ERANGE || v < min || v > INT_MAX)
    throw DistError(std::string(name) + "='" + *text + "' is not an integer >= " + std::to_string(min));
  return static_cast<int>(v);
}

int require_int(const char* name, int min, const char* needed_by) {
  const std::optional<int> v = get_int(name, min);
  if (!v) throw DistError(std::string(needed_by) + " is set but " + name + " is not");
  return *v;
}

void check_rank(int rank, const char* rank_var, int size, const char* size_var) {
  if (rank >= size)
    throw DistError(std::string(rank_var) + "=" + std::to_string(rank) + " is not a rank in [0, " +
                    std::to_string(size) + ") (" + size_var + "=" + std::to_string(size) + ")");
}

// The entry of SLURM's compressed tasks-per-node list ("2(x3),1": 2 tasks on each of the first
// three nodes, then 1) for node `node`; DistError naming `var` for malformed text.
int tasks_on_node(const char* var, const std::string& text, int node) {
  const auto bad = [&] { return DistError(std::string(var) + "='" + text + "' is not a SLURM tasks-per-node list"); };
  int first_node = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t used = 0;
    int tasks = 0, repeat = 1;
    try {
      tasks = std::stoi(text.substr(pos), &used);
    } catch (const std::exception&) {
      throw bad();
    }
    pos += used;
    if (text.compare(pos, 2, "(x") == 0) {
      pos += 2;
      try {
        repeat = std::stoi(text.substr(pos), &used);
      } catch (const std::exception&) {
        throw bad();
      }
      pos += used;
      if (pos >= text.size() || text[pos] != ')') throw bad();
      ++pos;
    }
    if (tasks < 1 || repeat < 1) throw bad();
    if (node < first_node + repeat) return tasks;
    first_node += repeat;
    if (pos < text.size() && text[pos++] != ',') throw bad();
  }
  throw DistError(std::string(var) + "='" + text + "' lists no node " + std::to_string(node));
}

std::optional<DistEnv> from_slurm() {
  if (!get("SLURM_PROCID")) return std::nullopt;
  DistEnv env;
  env.launcher = "slurm";
  env.rank = *get_int("SLURM_PROCID", 0);
  const char* size_var = get("SLURM_NTASKS") ? "SLURM_NTASKS" : "SLURM_NPROCS";
  env.world_size = get_int(size_var, 1).value_or(1);
  check_rank(env.rank, "SLURM_PROCID", env.world_size, size_var);
  env.local_rank = get_int("SLURM_LOCALID", 0).value_or(0);
  const int node = get_int("SLURM_NODEID", 0).value_or(0);
  // The step's actual layout first (srun sets it), then --ntasks-per-node, then the batch job's.
  env.local_world_size = env.world_size;
  for (const char* var : {"SLURM_STEP_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE", "SLURM_TASKS_PER_NODE"}) {
    if (const std::optional<std::string> text = get(var)) {
      env.local_world_size = tasks_on_node(var, *text, node);
      break;
    }
  }
  check_rank(env.local_rank, "SLURM_LOCALID", env.local_world_size, "tasks on this node");
  return env;
}

std::optional<DistEnv> from_openmpi() {
  if (!get("OMPI_COMM_WORLD_SIZE")) return std::nullopt;
  DistEnv env;
  env.launcher = "mpirun";
  env.world_size = *get_int("OMPI_COMM_WORLD_SIZE", 1);
  env.rank = require_int("OMPI_COMM_WORLD_RANK", 0, "OMPI_COMM_WORLD_SIZE");
  check_rank(env.rank, "OMPI_COMM_WORLD_RANK", env.world_size, "OMPI_COMM_WORLD_SIZE");
  env.local_rank = get_int("OMPI_COMM_WORLD_LOCAL_RANK", 0).value_or(env.rank);
  env.local_world_size = get_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1).value_or(env.world_size);
  check_rank(env.local_rank, "OMPI_COMM_WORLD_LOCAL_RANK", env.local_world_size, "OMPI_COMM_WORLD_LOCAL_SIZE");
  return env;
}

// torchrun-like: LOCAL_RANK / LOCAL_WORLD_SIZE default to RANK / WORLD_SIZE (one node).
std::optional<DistEnv> from_rank_vars() {
  if (!get("RANK") && !get("WORLD_SIZE")) return std::nullopt;
  DistEnv env;
  env.launcher = "env";
  env.world_size = require_int("WORLD_SIZE", 1, "RANK");
  env.rank = require_int("RANK", 0, "WORLD_SIZE");
  check_rank(env.rank, "RANK", env.world_size, "WORLD_SIZE");
  env.local_rank = get_int("LOCAL_RANK", 0).value_or(env.rank);
  env.local_world_size = get_int("LOCAL_WORLD_SIZE", 1).value_or(env.world_size);
  check_rank(env.local_rank, "LOCAL_RANK", env.local_world_size, "LOCAL_WORLD_SIZE");
  env.master_addr = get("MASTER_ADDR").value_or("");
  env.master_port = get_int("MASTER_PORT", 1).value_or(0);
  if (env.master_port > 65535)
    throw DistError("MASTER_PORT=" + std::to_string(env.master_port) + " is not a port in [1, 65535]");
  return env;
}

}  // namespace

DistEnv detect_env() {
  std::optional<DistEnv> slurm = from_slurm();
  std::optional<DistEnv> ompi = from_openmpi();
  DistEnv env;
  // mpirun inside an sbatch allocation: every rank inherits the batch step's SLURM_PROCID and
  // SLURM_NTASKS, so where the two disagree, mpirun (which launched this process) is right.
  if (slurm && !(ompi && (ompi->rank != slurm->rank || ompi->world_size != slurm->world_size)))
    env = *slurm;
  else if (ompi)
    env = *ompi;
  else if (std::optional<DistEnv> e = from_rank_vars())
    env = *e;
  if (std::optional<int> cpus = get_int("SLURM_CPUS_PER_TASK", 1)) env.cpus_per_task = *cpus;
  return env;
}

}  // namespace dl::dist
