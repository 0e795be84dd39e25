#!/usr/bin/env bash
# Install Slurm + MUNGE (Debian packages) and write a single-node cluster configuration into DIR.
#
#   bash ci/setup-slurm.sh DIR
#
# Environment: SLURMCTLD_PORT, SLURMD_PORT (default 16817, 16818): choose free ports when something else
# listens there.
#
# Idempotent: packages are installed only when a command is missing; an existing MUNGE key in DIR is kept;
# slurm.conf is rewritten every time, so it always matches this script. Nothing is started here: the
# daemons are started (and stopped) by the session fixture `slurm_cluster` in tests/test_slurm.py.
# Needs root.
#
# The cluster is one node, `localhost`, with 2 CPUs and the machine's memory (minus 1 GiB), one
# partition `debug` (default), no accounting (so `sacct` does not work: use `squeue` for job status)
# and no cgroups (`proctrack/linuxproc`, `task/none`: works inside containers).
# Written into DIR: slurm.conf, munge/munge.key, the spool/state/log/run directories and env.sh, which
# exports SLURM_CONF for the client commands (sbatch, squeue, sinfo, scancel).
#
# Start the daemons (as root, in this order), each in the foreground of its own process:
#   munged -F --force --socket=DIR/munge/munge.socket --key-file=DIR/munge/munge.key \
#          --pid-file=DIR/run/munged.pid --seed-file=DIR/munge/munged.seed --log-file=DIR/log/munged.log
#   slurmctld -D -i -f DIR/slurm.conf
#   slurmd -D -N localhost -f DIR/slurm.conf
# Job steps (`srun` inside a job) must find the config without SLURM_CONF, because
# snakemake-executor-plugin-slurm-jobstep removes SLURM_* variables before calling srun: link
# /etc/slurm/slurm.conf to DIR/slurm.conf while the cluster runs (the test fixture does).
set -euo pipefail

# One apt-get at a time on this machine (the tests run in parallel workers); -o: the lock is not
# inherited by what apt starts.
apt_get() { flock -o /tmp/usrad-apt.lock apt-get "$@"; }

dir="${1:?usage: setup-slurm.sh DIR}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt_get update -qq
  # slurmctld + slurmd + slurm-client are what slurm-wlm pulls in, without the GUI and docs.
  apt_get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

mkdir -p "$dir"/{state,spool,log,run,munge}
chmod 755 "$dir/munge"

# MUNGE: a private key and socket in DIR, so this cluster never talks to a system munged.
if [[ ! -s "$dir/munge/munge.key" ]]; then
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1 count=1024 status=none
fi
chmod 400 "$dir/munge/munge.key"

cpus=2
mem_kib="$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
real_mem_mb=$(( mem_kib / 1024 - 1024 ))
if (( real_mem_mb < 1024 )); then real_mem_mb=1024; fi
slurm_user="$(id -un)"

cat >"$dir/slurm.conf" <<EOF
# Single-node test cluster written by ci/setup-slurm.sh. Do not edit: re-run the script.
ClusterName=usrad-ci
SlurmctldHost=localhost
SlurmUser=$slurm_user
SlurmdUser=$slurm_user
AuthType=auth/munge
CredType=cred/munge
# the MUNGE daemon of this cluster (started by the fixture with --socket=this path)
AuthInfo=socket=$dir/munge/munge.socket
MpiDefault=none
SlurmctldPort=${SLURMCTLD_PORT:-16817}
SlurmdPort=${SLURMD_PORT:-16818}
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmdSpoolDir=$dir/spool
StateSaveLocation=$dir/state
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: works in containers.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# No accounting database: job status comes from slurmctld (squeue), which keeps a finished job for MinJobAge
# seconds (an hour: long enough for the tests to check the states of all jobs of a session).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$real_mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

cat >"$dir/env.sh" <<EOF
# source this file to use the test cluster's client commands
export SLURM_CONF=$dir/slurm.conf
EOF

echo "slurm config written to $dir/slurm.conf ($cpus CPUs, ${real_mem_mb} MB)"
