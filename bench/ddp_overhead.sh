#!/usr/bin/env bash
# Data-parallel overhead (issue 13): the training step time of `mpirun -np 2 dltool train` against
# one process at the SAME per-rank batch and threads, for the mlp and cnn_bn recipes.
#
#   bash bench/ddp_overhead.sh [DLTOOL] [BATCH]     (defaults: build/dltool, 32)
#
# Each rank (and the single process) gets 1 thread; the 2 ranks together use the machine's 2
# cores. The difference per step is what data parallelism costs on top of the compute: the
# gradient allreduce (bucketed, overlapping backward), the per-step stop-signal agreement and
# waiting for the slower rank. Step time = global batch / samples/s of the "done:" line (the
# training loop's own clock: data waits included, evaluation excluded).
set -euo pipefail
DLTOOL=${1:-build/dltool}
BATCH=${2:-32}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
MPIRUN=(mpirun --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# step_ms NPROC RECIPE STEPS: mean step time in ms of one run.
step_ms() {
  local np=$1 recipe=$2 steps=$3 launch=()
  [ "$np" -gt 1 ] && launch=("${MPIRUN[@]}" -np "$np")
  local out
  out=$("${launch[@]}" "$DLTOOL" train "recipes/fashion_mnist/$recipe.yaml" --run-dir "$TMP/$recipe-$np" --log-format plain \
        train.threads=1 train.max_steps="$steps" train.eval_every=1000000 data.loader.batch_size="$BATCH" \
        data.loader.workers=0 checkpoint.every_epoch=false 2>&1 | grep '^done:')
  local sps
  sps=$(sed -E 's/.*\(([0-9.]+) samples\/s\).*/\1/' <<<"$out")
  awk -v b="$BATCH" -v n="$np" -v s="$sps" 'BEGIN { printf "%.2f", 1000 * b * n / s }'
}

printf '%-8s %6s %14s %14s %8s\n' recipe batch "1 proc ms" "2 ranks ms" ratio
for spec in mlp:400 cnn_bn:100; do
  recipe=${spec%%:*} steps=${spec##*:}
  one=$(step_ms 1 "$recipe" "$steps")
  two=$(step_ms 2 "$recipe" "$steps")
  awk -v r="$recipe" -v b="$BATCH" -v a="$one" -v d="$two" 'BEGIN { printf "%-8s %6d %14.2f %14.2f %8.2f\n", r, b, a, d, d / a }'
done
