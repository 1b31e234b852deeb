#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the tests and for trying the sbatch examples
# (recipes/slurm/). Run as root; needs Debian's slurmctld, slurmd, slurm-client and munge.
#
#   scripts/slurm_cluster.sh start  [STATE_DIR]   munged + slurmctld + slurmd, waits until the node is idle
#   scripts/slurm_cluster.sh status [STATE_DIR]   exit 0 when all three run and the node answers
#   scripts/slurm_cluster.sh stop   [STATE_DIR]   cancels every job, stops the daemons, removes STATE_DIR
#
# STATE_DIR (default /tmp/dltool-slurm) holds everything: slurm.conf, a munge key of its own,
# the sockets, pid files, state, spool and the daemons' logs. Nothing under /etc is touched: the
# daemons read STATE_DIR/slurm.conf, and the clients (sbatch, squeue, scontrol, ...) find it
# through SLURM_CONF, which `start` prints as an export line:
#   eval "$(scripts/slurm_cluster.sh start | grep ^export)"
#
# The node is this host (its hostname and CPU count from `slurmd -C`, RealMemory a bit below the
# real one), one partition `dltool`, CR_CPU so two 1-CPU tasks share a 2-core node,
# proctrack/linuxproc + task/none (no cgroups: works in containers), SlurmUser/SlurmdUser root,
# JobRequeue=1 (jobs may requeue themselves, as dltool --requeue does). Jobs are not
# accounted (no slurmdbd): use squeue/scontrol, not sacct.
# Ports: DLTOOL_SLURM_PORT (default 6817) for slurmctld, the next one for slurmd.
# Every wait is bounded; a daemon that fails is named with the tail of its log, exit status 1.
set -euo pipefail

cmd="${1:-}"
STATE="$(realpath -m "${2:-/tmp/dltool-slurm}")"  # absolute: slurm.conf and the daemons need that
PORT="${DLTOOL_SLURM_PORT:-6817}"
CONF="$STATE/slurm.conf"
MUNGE_DIR="$STATE/munge"
SOCKET="$MUNGE_DIR/munge.socket.2"
MARKER="$STATE/.dltool-slurm"   # stop removes STATE_DIR only when this file says it is ours
export SLURM_CONF="$CONF"

die() { echo "slurm_cluster.sh: $*" >&2; exit 1; }

usage() {
  echo "usage: $0 {start|stop|status} [STATE_DIR]   (STATE_DIR default /tmp/dltool-slurm)" >&2
  exit 2
}

# The pid in pid file $1 when that process is alive and its command name starts with $2.
live_pid() {
  local pid
  [ -s "$1" ] || return 1
  pid="$(tr -dc 0-9 < "$1")"
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
  case "$(cat "/proc/$pid/comm")" in "$2"*) echo "$pid" ;; *) return 1 ;; esac
}

log_tail() {  # the last lines of log $1, indented, for an error message
  if [ -s "$1" ]; then echo "--- last lines of $1:"; tail -n 15 "$1" | sed 's/^/    /'; else echo "--- $1 is empty or missing"; fi
}

# Polls `$2...` every 0.2 s until it succeeds, at most $1 seconds; returns 1 on timeout.
wait_for() {
  local limit="$1"; shift
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# Like wait_for, for daemon $2 (pid file $STATE/$2.pid): returns 2 at once when it has died.
wait_daemon() {
  local limit="$1" name="$2"; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ -s "$STATE/$name.pid" ] && ! live_pid "$STATE/$name.pid" "$name" >/dev/null; then return 2; fi
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

# Dies naming daemon $1 with the tail of its log: it exited (status $3 of wait_daemon is 2), or
# what it did not do in time ($2).
daemon_failed() {
  local why="$2" hint=""
  [ "$3" -eq 2 ] && why="exited during start-up"
  grep -q "Address already in use" "$STATE/$1.log" 2>/dev/null \
    && hint=" (port $PORT or $((PORT + 1)) taken: another cluster? set DLTOOL_SLURM_PORT)"
  die "$1: $why$hint
$(log_tail "$STATE/$1.log")"
}

munge_ok() { munge -n -S "$SOCKET" | unmunge -S "$SOCKET"; }
ctld_up() { scontrol ping | grep -q 'is UP'; }
node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1; }
node_idle() { [ "$(node_state)" = idle ]; }
no_jobs() { [ -z "$(squeue -h -o %i 2>/dev/null)" ]; }

# Sends SIGTERM to the daemon of pid file $1 (command name $2), SIGKILL after 10 s.
stop_daemon() {
  local pid
  pid="$(live_pid "$1" "$2")" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_for 10 bash -c "! kill -0 $pid"; then
    echo "slurm_cluster.sh: $2 (pid $pid) still running 10 s after SIGTERM: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_for 5 bash -c "! kill -0 $pid" || echo "slurm_cluster.sh: $2 (pid $pid) survived SIGKILL" >&2
  fi
}

status() {
  local ok=0 name pidfile pid
  for name in munged slurmctld slurmd; do
    case $name in
      munged) pidfile="$MUNGE_DIR/munged.pid" ;;
      *) pidfile="$STATE/$name.pid" ;;
    esac
    if pid="$(live_pid "$pidfile" "$name")"; then echo "$name: running (pid $pid)"; else echo "$name: not running"; ok=1; fi
  done
  if [ "$ok" -eq 0 ]; then
    sinfo || ok=1
    squeue || ok=1
  fi
  return "$ok"
}

write_conf() {
  local cpus real_mem mem
  # "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24151"
  local probe
  probe="$(slurmd -C | head -n 1)" || die "slurmd -C failed"
  cpus="$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$probe")"
  real_mem="$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$probe")"
  [ -n "$cpus" ] && [ -n "$real_mem" ] || die "cannot read CPUs/RealMemory from 'slurmd -C': $probe"
  mem=$((real_mem * 9 / 10))  # below the real memory, or slurmd registers the node as invalid
  cat > "$CONF" <<EOF
# Written by scripts/slurm_cluster.sh: a one-node test cluster, everything under $STATE.
ClusterName=dltool
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$STATE/plugstack.conf
# No cgroups (containers): processes tracked by parent pid, no CPU binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
# Jobs may requeue themselves (dltool --requeue runs scontrol requeue).
JobRequeue=1
# A finished job stays visible to squeue/scontrol for a minute, then is purged.
MinJobAge=60
KillWait=10
InactiveLimit=0
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=dltool Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  : > "$STATE/plugstack.conf"  # no SPANK plugins (not the machine's /etc/slurm/plugstack.conf)
}

start() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (the daemons run as SlurmUser=root)"
  local tool
  for tool in munged munge unmunge slurmctld slurmd sinfo squeue scontrol; do
    command -v "$tool" >/dev/null || die "$tool not found: apt-get install munge slurmctld slurmd slurm-client (scripts/setup.sh)"
  done
  if status >/dev/null 2>&1; then
    echo "cluster already running in $STATE"
    echo "export SLURM_CONF=$CONF"
    return 0
  fi
  # Half started (a daemon died, or a previous start failed): stop what is left, start afresh.
  [ -f "$MARKER" ] && stop_daemons
  # munged wants its socket directory executable by all; the key readable by root only.
  mkdir -p "$STATE" "$MUNGE_DIR" "$STATE/ctld" "$STATE/spool"
  chmod 755 "$STATE" "$MUNGE_DIR"
  touch "$MARKER"
  # A failed start stops what it started (the logs stay for a look; `stop` removes them).
  trap 'stop_daemons >/dev/null 2>&1' EXIT
  local d
  d="$(cd "$STATE/.." && pwd)"
  while [ "$d" != / ]; do
    [ "$(( $(stat -c %#a "$d") & 1 ))" -eq 1 ] \
      || die "munged needs every directory above its socket searchable by all: chmod o+x $d (or another STATE_DIR)"
    d="$(dirname "$d")"
  done
  if [ ! -s "$MUNGE_DIR/munge.key" ]; then
    (umask 077 && head -c 1024 /dev/urandom > "$MUNGE_DIR/munge.key")
  fi
  chmod 600 "$MUNGE_DIR/munge.key"

  munged --socket="$SOCKET" --key-file="$MUNGE_DIR/munge.key" --log-file="$MUNGE_DIR/munged.log" \
         --pid-file="$MUNGE_DIR/munged.pid" --seed-file="$MUNGE_DIR/munged.seed" \
    || die "munged failed to start
$(log_tail "$MUNGE_DIR/munged.log")"
  wait_for 15 munge_ok || die "munged does not answer on $SOCKET within 15 s
$(log_tail "$MUNGE_DIR/munged.log")"

  write_conf
  # -c: no jobs or node state from an earlier cluster in this directory.
  slurmctld -c -f "$CONF" || die "slurmctld failed to start
$(log_tail "$STATE/slurmctld.log")"
  local rc=0
  wait_daemon 30 slurmctld ctld_up || rc=$?
  [ "$rc" -eq 0 ] || daemon_failed slurmctld "no answer to 'scontrol ping' within 30 s" "$rc"
  slurmd -f "$CONF" || die "slurmd failed to start
$(log_tail "$STATE/slurmd.log")"
  wait_daemon 60 slurmd node_idle || rc=$?
  [ "$rc" -eq 0 ] || daemon_failed slurmd "node $NODE not idle within 60 s (sinfo: '$(node_state)')" "$rc"
  trap - EXIT
  sinfo
  echo "export SLURM_CONF=$CONF"
}

# The slurmstepd processes of this cluster (they run in slurmd's directory, STATE_DIR) that
# outlive slurmd: seen stuck in PMIx_server_finalize after a requeue killed an MPI step.
stop_stepds() {
  local p pids=()
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
    case "$(readlink "$p/cwd" 2>/dev/null)" in "$STATE" | "$STATE (deleted)") pids+=("${p#/proc/}") ;; esac
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  echo "slurm_cluster.sh: slurmstepd still running after slurmd stopped: ${pids[*]} (SIGKILL)" >&2
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

stop_daemons() {
  if live_pid "$STATE/slurmctld.pid" slurmctld >/dev/null; then
    scancel --partition=dltool 2>/dev/null || true
    wait_for 30 no_jobs || echo "slurm_cluster.sh: jobs left 30 s after scancel: $(squeue -h -o '%i %T' | tr '\n' ' ')" >&2
  fi
  stop_daemon "$STATE/slurmd.pid" slurmd
  stop_stepds
  stop_daemon "$STATE/slurmctld.pid" slurmctld
  stop_daemon "$MUNGE_DIR/munged.pid" munged
}

stop() {
  if [ ! -e "$STATE" ]; then echo "nothing to stop: $STATE does not exist"; return 0; fi
  [ -f "$MARKER" ] || die "$STATE was not made by this script (no $(basename "$MARKER")): not touching it"
  stop_daemons
  rm -rf "$STATE"
  echo "cluster stopped, $STATE removed"
}

NODE="$(hostname -s)"
case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
