#!/usr/bin/env bash
# A one-node Slurm on this machine, without systemd, for the Slurm test (tools/slurm/test.sh)
# and for trying tools/slurm/sweep.sbatch: munged, slurmctld and slurmd on localhost with
# ProctrackType=proctrack/linuxproc, TaskPlugin=task/none and no accounting.
#
#   tools/slurm/local_cluster.sh install       the Debian packages (slurm-wlm, munge)
#   tools/slurm/local_cluster.sh start DIR     configuration, state and logs under DIR; prints
#                                              the SLURM_CONF to export for sbatch/squeue
#   tools/slurm/local_cluster.sh stop DIR      stops the daemons started for DIR
#   tools/slurm/local_cluster.sh check         exit 0 when this machine can run them (root, the
#                                              packages), else print why and exit 2
# Daemons run as root (the only user a CI machine is sure to have); jobs run as the submitter.
set -euo pipefail

cmd="${1:-}"
dir="${2:-}"

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "local_cluster: the Slurm daemons need root (slurmd starts jobs as their user)" >&2
    return 2
  fi
}

case "$cmd" in
install)
  missing=()
  for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "local_cluster: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  ;;
check)
  need_root || exit 2
  for b in munged slurmctld slurmd sbatch; do
    command -v "$b" >/dev/null || { echo "local_cluster: $b not found (install slurm-wlm and munge)" >&2; exit 2; }
  done
  ;;
start)
  [ -n "$dir" ] || { echo "usage: $0 start DIR" >&2; exit 2; }
  need_root || exit 2
  mkdir -p "$dir"/{state,spool,munge,munge-key}
  dir="$(cd "$dir" && pwd)"
  host="$(hostname -s)"
  cpus="$(nproc)"
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
  # munge: its own key and socket under DIR, so a munged the machine already runs is untouched.
  if [ ! -f "$dir/munge-key/munge.key" ]; then
    dd if=/dev/urandom of="$dir/munge-key/munge.key" bs=128 count=1 status=none
  fi
  chmod 700 "$dir/munge-key"
  chmod 400 "$dir/munge-key/munge.key"
  chmod 755 "$dir" "$dir/munge"
  munged --force --key-file="$dir/munge-key/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
    --seed-file="$dir/munge/munged.seed"
  cat > "$dir/slurm.conf" <<CONF
ClusterName=lmquant-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${LMQUANT_SLURMCTLD_PORT:-6817}
SlurmdPort=${LMQUANT_SLURMD_PORT:-6818}
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait=5
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -c -f "$SLURM_CONF"   # -c: a clean start (no state of an earlier run)
  slurmd -f "$SLURM_CONF"
  # Wait for the node to come up (slurmd registers with slurmctld).
  for _ in $(seq 1 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
      echo "$SLURM_CONF"
      exit 0
    fi
    sleep 1
  done
  echo "local_cluster: the node did not come up within 60 s; see $dir/slurmctld.log and $dir/slurmd.log" >&2
  tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  exit 1
  ;;
stop)
  [ -n "$dir" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
    if [ -f "$pidfile" ]; then
      pid="$(cat "$pidfile")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  ;;
*)
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
  ;;
esac
