#!/usr/bin/env bash
# CI: the tiny workflow on a real SLURM cluster, through the repository's own profile (`--profile slurm`).
#
# Installs Debian's SLURM (slurmctld, slurmd, slurmdbd), munge and MariaDB, starts a single-node cluster on
# localhost by hand (no systemd) with four fake GPUs and accounting through slurmdbd + MariaDB (so job status goes
# through sacct, the plugin's default, as on real clusters), then:
#   1. runs the tiny workflow (tests/data/tiny_config.yaml) with `snakemake --profile slurm`, and the same config
#      locally, and requires the two summary.tsv to agree;
#   2. runs a job that exits non-zero and requires Snakemake to report it with its SLURM state, FAILED;
#   3. sends a running training stand-in SIGTERM as SLURM does before a time limit, and requires it to checkpoint,
#      exit 75, be resubmitted and resume from the checkpoint.
# Every daemon it starts is stopped by PID on exit. Needs root on Debian 12; run from an activated environment
# where hcebench is installed (.ci/run does both). Logs go to $SLURM_CI_WORK (/tmp/hcebench-slurm-ci); the
# workflow run is killed after $SLURM_CI_TIMEOUT seconds (900): a status query that never returns is a silent hang.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
started=$(date +%s)
WORK=${SLURM_CI_WORK:-/tmp/hcebench-slurm-ci}
log() { echo "[slurm-ci $(date -u +%T)] $*"; }
fail() { log "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (installs packages and starts daemons)"
python -c "import hcebench, snakemake_executor_plugin_slurm" || fail "activate the environment with hcebench installed"

# ---- packages ---------------------------------------------------------------------------------------------
PKGS=(slurm-wlm slurmctld slurmd slurmdbd slurm-client munge mariadb-server)
if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null; then
    log "installing ${PKGS[*]}"
    # No service starts from package scripts: this script starts (and stops) every daemon itself.
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
    [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    log "installed: $(slurmctld -V)"
fi

# ---- daemons, stopped by PID on exit ----------------------------------------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK"/{log,state,spool}
CONF_WRITTEN=0
PIDS=()
NAMES=()
cleanup() {
    local rc=$?
    trap - EXIT
    if [ -n "${SLURM_CONF:-}" ] && [ -e "$SLURM_CONF" ] && command -v scancel >/dev/null; then
        timeout -s KILL 10 scancel --cluster=hcebench-ci --user=root >/dev/null 2>&1 || true
    fi
    local i
    for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
        local pid=${PIDS[$i]}
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
            log "stopped ${NAMES[$i]} (pid $pid)"
        fi
    done
    if [ "$CONF_WRITTEN" = 1 ]; then
        rm -f /etc/slurm/slurm.conf /etc/slurm/gres.conf /etc/slurm/slurmdbd.conf
    fi
    if [ "$rc" != 0 ]; then
        for f in "$WORK"/log/*.log "$WORK"/log/munged.out; do
            [ -e "$f" ] || continue
            echo "----- last lines of $f"; tail -n 15 "$f"
        done
    fi
    log "slurm part: $(( $(date +%s) - started )) s, exit $rc"
    exit "$rc"
}
trap cleanup EXIT
start() {  # start NAME CMD...: a daemon in the foreground of a background job, so $! is its PID
    local name=$1; shift
    "$@" >"$WORK/log/$name.out" 2>&1 &
    PIDS+=("$!"); NAMES+=("$name")
    log "started $name (pid $!)"
}
wait_for() {  # wait_for WHAT SECONDS CMD...: until CMD succeeds, while the daemon started last is alive
    local what=$1 secs=$2; shift 2
    for _ in $(seq $(( secs * 2 ))); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "${PIDS[-1]}" 2>/dev/null || fail "${NAMES[-1]} exited (log: $WORK/log/${NAMES[-1]}.*)"
        sleep 0.5
    done
    fail "$what not up after $secs s"
}

HOST=$(uname -n | cut -d. -f1)
CPUS=$(nproc)
MEM=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 3 / 4 ))

# munge: every SLURM message is signed with the node's key (created by the package).
install -d -o munge -g munge -m 755 /run/munge
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile /etc/munge/munge.key && chown munge: /etc/munge/munge.key; }
start munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
wait_for munge 20 sh -c 'munge -n | unmunge'

# MariaDB, the accounting database behind slurmdbd.
install -d -o mysql -g mysql -m 755 /run/mysqld
[ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
start mariadbd /usr/sbin/mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock \
    --pid-file=/run/mysqld/hcebench-ci.pid --log-error="$WORK/log/mariadbd.log"
wait_for mariadb 60 mariadb --socket=/run/mysqld/mysqld.sock -e "SELECT 1"
# A fresh accounting database per run: job ids restart at 1 with the fresh controller state.
mariadb --socket=/run/mysqld/mysqld.sock -e "
    DROP DATABASE IF EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'hcebench-ci';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

# SLURM configuration in /etc/slurm, where srun inside jobs looks for it; files this script did not write are
# never overwritten, and its own are removed on exit. Four fake GPUs (gres.conf points them at character devices
# such as /dev/null): --gpus=1 jobs schedule, and the workflow's training runs on the CPU. CPUs are declared at
# four times the cores (config_overrides): each job is mostly interpreter start-up, so jobs overlap well.
# Addresses are given as 127.0.0.1, so nothing depends on the machine's hostname resolving.
MARK="# written by hcebench .ci/slurm_cluster.sh"
for f in slurm.conf gres.conf slurmdbd.conf; do
    if [ -e "/etc/slurm/$f" ] && ! grep -qF "$MARK" "/etc/slurm/$f"; then
        fail "/etc/slurm/$f exists and is not ours: not touching an existing SLURM installation"
    fi
done
mkdir -p /etc/slurm
CONF_WRITTEN=1
export SLURM_CONF=/etc/slurm/slurm.conf
cat >"$SLURM_CONF" <<EOF
$MARK
ClusterName=hcebench-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=300
KillWait=10
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$(( CPUS * 4 )) RealMemory=$MEM Gres=gpu:4 State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
cat >/etc/slurm/gres.conf <<EOF
$MARK
NodeName=$HOST Name=gpu File=/dev/null
NodeName=$HOST Name=gpu File=/dev/zero
NodeName=$HOST Name=gpu File=/dev/full
NodeName=$HOST Name=gpu File=/dev/urandom
EOF
cat >/etc/slurm/slurmdbd.conf <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$WORK/slurmdbd.pid
LogFile=$WORK/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=slurm
StoragePass=hcebench-ci
StorageLoc=slurm_acct_db
EOF
chmod 600 /etc/slurm/slurmdbd.conf

start slurmdbd /usr/sbin/slurmdbd -D
wait_for slurmdbd 60 sacctmgr -n list cluster
sacctmgr -i add cluster hcebench-ci >/dev/null
start slurmctld /usr/sbin/slurmctld -D -i
wait_for slurmctld 30 scontrol ping
start slurmd /usr/sbin/slurmd -D
wait_for "node $HOST idle" 60 sh -c "sinfo -h -n $HOST -o %T | grep -qx idle"
log "cluster up: $(sinfo -h -o '%P %D %c cpus %m MB %G %T')"
log "accounting: $(sacctmgr -n -P list cluster format=Cluster,ControlHost | head -1)"
log "cluster start: $(( $(date +%s) - started )) s"

# ---- 1. the tiny workflow, on SLURM and locally ----------------------------------------------------------
mkdir -p "$WORK/wf-slurm" "$WORK/wf-local"
cp tests/data/tiny_config.yaml "$WORK/wf-slurm/config.yaml"
cp tests/data/tiny_config.yaml "$WORK/wf-local/config.yaml"
# --verbose prints the plugin's sbatch calls; the status check interval is shortened for a CI-sized workflow.
# --workflow-profile none, as docs/slurm.md runs it: every job's submission and SLURM state stay on the terminal.
SNAKE=(snakemake --snakefile "$REPO/Snakefile" --workflow-profile none --verbose --slurm-init-seconds-before-status-checks 5)
log "tiny workflow: snakemake --profile slurm (from the repository root)"
t0=$(date +%s)
set +e
timeout -s KILL "${SLURM_CI_TIMEOUT:-900}" "${SNAKE[@]}" --profile slurm --directory "$WORK/wf-slurm" >"$WORK/log/snakemake-slurm.log" 2>&1
rc=$?
set -e
python - "$WORK/log/snakemake-slurm.log" <<'EOF'
import re
import sys

# The plugin's first sbatch call of a few rules (job name, log path and wrapped command left out), then the count.
calls = [line.split("sbatch call: ", 1)[1].split(" --wrap=")[0] for line in open(sys.argv[1]) if "sbatch call: sbatch" in line]
shown = set()
for call in calls:
    call = re.sub(r"\s+", " ", re.sub(r" --(job-name|output) \S+", "", call))
    rule = re.search(r"--comment rule_([a-z_]+?)(_wildcards_\S+)? ", call + " ").group(1)
    if rule in {"simulate_census", "train", "evaluate", "controls"} and rule not in shown:
        shown.add(rule)
        print("  " + call)
print(f"  ... {len(calls)} sbatch submissions in all")
EOF
grep -E "has been submitted with SLURM jobid|Finished jobid|steps \([0-9]+%\) done" "$WORK/log/snakemake-slurm.log" | tail -n 4 | sed 's/^/  /'
[ "$rc" = 0 ] || { tail -n 60 "$WORK/log/snakemake-slurm.log"; fail "snakemake --profile slurm exited $rc (137: killed by timeout)"; }
log "tiny workflow on SLURM complete in $(( $(date +%s) - t0 )) s"
log "jobs as SLURM accounted them (sacct):"
sacct -X -n -P -a -o JobID,Comment,State,ExitCode,AllocTRES | awk -F'|' '
    { n[$3]++ } $2 ~ /^rule_(select_cells|train_wildcards_mlp_hce_1|evaluate_wildcards_mlp_hce_1|aggregate)$/ {
      printf "  %-7s %-48s %-10s %-5s %s\n", $1, $2, $3, $4, $5 }
    END { for (s in n) printf "  %d jobs %s\n", n[s], s }'
n_gpu_train=$(sacct -X -n -P -a -o Comment,AllocTRES | grep -c '^rule_train_.*gres/gpu=1' || true)
n_train=$(sacct -X -n -P -a -o Comment | grep -c '^rule_train_' || true)
[ "$n_train" -gt 0 ] && [ "$n_gpu_train" = "$n_train" ] || fail "training jobs without a GPU: $n_gpu_train of $n_train"
log "$n_gpu_train of $n_train training jobs ran with gres/gpu=1"
grep -E "Launching batch job|launch task StepId" "$WORK/log/slurmd.log" | head -n 3 | sed 's/^/  slurmd: /'
log "slurmd launched $(grep -c 'Launching batch job' "$WORK/log/slurmd.log") batch jobs"

log "the same config locally (snakemake --cores $CPUS)"
t0=$(date +%s)
timeout -s KILL 600 snakemake --snakefile "$REPO/Snakefile" --cores "$CPUS" --directory "$WORK/wf-local" \
    >"$WORK/log/snakemake-local.log" 2>&1 || { tail -n 40 "$WORK/log/snakemake-local.log"; fail "local run"; }
log "local run complete in $(( $(date +%s) - t0 )) s"
python - "$WORK/wf-slurm/results/tiny/summary.tsv" "$WORK/wf-local/results/tiny/summary.tsv" <<'EOF'
import sys

import numpy as np
import pandas as pd

slurm, local = (pd.read_csv(p, sep="\t") for p in sys.argv[1:])
assert list(slurm.columns) == list(local.columns) and slurm.shape == local.shape, (slurm.shape, local.shape)
numeric = slurm.select_dtypes("number").columns
pd.testing.assert_frame_equal(slurm.drop(columns=numeric), local.drop(columns=numeric))
np.testing.assert_allclose(slurm[numeric].to_numpy(float), local[numeric].to_numpy(float), rtol=1e-9, atol=1e-12)
diff = np.nanmax(np.abs(slurm[numeric].to_numpy(float) - local[numeric].to_numpy(float)))
print(f"  summary.tsv: {slurm.shape[0]} rows x {slurm.shape[1]} columns agree (max abs numeric difference {diff:.1e})")
print(slurm[["architecture", "loss", "n_seeds", "id_macro_f1_mean", "ood_macro_f1_mean"]].to_string(index=False))
EOF
log "SLURM and local summary.tsv agree"

# ---- 2. a failing job is reported with its SLURM state ----------------------------------------------------
mkdir -p "$WORK/fail"
cat >"$WORK/fail/Snakefile" <<'EOF'
rule all:
    input: "done.txt"

rule broken_training:
    output: "done.txt"
    resources: gpu=1, mem_mb=500, runtime=5
    shell: "echo 'simulated crash on the GPU node' >&2; exit 3"
EOF
log "a failing GPU job through the same profile (retries 0)"
set +e
timeout -s KILL 180 snakemake --snakefile "$WORK/fail/Snakefile" --directory "$WORK/fail" --profile slurm \
    --workflow-profile none --retries 0 --slurm-init-seconds-before-status-checks 5 >"$WORK/log/snakemake-fail.log" 2>&1
rc=$?
set -e
grep -E "SLURM status is|Error in rule|failed" "$WORK/log/snakemake-fail.log" | head -n 4 | sed 's/^/  /'
[ "$rc" != 0 ] && [ "$rc" != 137 ] || fail "the failing workflow exited $rc (expected a reported failure)"
grep -q "SLURM status is: 'FAILED'" "$WORK/log/snakemake-fail.log" || fail "no FAILED state reported"
sacct -X -n -P -a -o JobID,Comment,State,ExitCode | grep broken_training | sed 's/^/  sacct: /'
log "failing job reported as FAILED (snakemake exit $rc)"
# ---- 3. preemption: SIGTERM to a training job's step, checkpoint, exit 75, resubmission resumes -------------
# A stand-in for training (rule `train`, so the profile's --requeue/--signal settings apply): one "epoch" per
# second, a checkpoint file, SIGTERM handled as train.py does. The script sends the job's steps SIGTERM the way
# SLURM's --signal=TERM@300 does before a time limit (scancel --signal, no --batch), then lets the workflow go on.
mkdir -p "$WORK/preempt"
cat >"$WORK/preempt/fake_train.py" <<'EOF'
import os
import signal
import sys
import time
from pathlib import Path

out, ckpt = Path(sys.argv[1]), Path("checkpoint.txt")
start = int(ckpt.read_text()) if ckpt.exists() else 0
interrupted = []
signal.signal(signal.SIGTERM, lambda signum, frame: interrupted.append(signum))
Path(f"running.{os.environ['SLURM_JOB_ID']}").touch()
for epoch in range(start, 30):
    if interrupted:
        tmp = ckpt.with_suffix(".tmp")
        tmp.write_text(str(epoch))
        tmp.rename(ckpt)
        print(f"SIGTERM: checkpoint at epoch {epoch}, exiting with status 75", file=sys.stderr, flush=True)
        sys.exit(75)
    time.sleep(1.0 if start == 0 else 0.01)
out.write_text(f"resumed from epoch {start}\n")
EOF
cat >"$WORK/preempt/Snakefile" <<'EOF'
rule all:
    input: "model.txt"

rule train:
    output: "model.txt"
    resources: gpu=1, mem_mb=500, runtime=10
    shell: "python {workflow.basedir}/fake_train.py {output}"
EOF
log "preemption: SIGTERM to a running training job (retries 1)"
timeout -s KILL 240 snakemake --snakefile "$WORK/preempt/Snakefile" --directory "$WORK/preempt" --profile slurm \
    --workflow-profile none --retries 1 --slurm-init-seconds-before-status-checks 5 >"$WORK/log/snakemake-preempt.log" 2>&1 &
SNAKE_PID=$!
for _ in $(seq 240); do compgen -G "$WORK/preempt/running.*" >/dev/null && break; sleep 0.5; done
first=$(basename "$(compgen -G "$WORK/preempt/running.*" | head -1)" | cut -d. -f2)
[ -n "$first" ] || fail "the training stand-in never started"
sleep 3
log "scancel --signal=TERM $first (job steps only, as --signal=TERM@300 before a time limit)"
scancel --signal=TERM "$first"
set +e
wait "$SNAKE_PID"
rc=$?
set -e
grep -E "SLURM status is|has been submitted with SLURM jobid" "$WORK/log/snakemake-preempt.log" | sed 's/^/  /'
grep -hE "^SIGTERM: checkpoint|returned non-zero exit status" "$WORK"/preempt/.snakemake/slurm_logs/rule_train/"$first".log \
    | sed 's/^/  job log: /' || true
sacct -X -n -P -j "$first" -o JobID,Comment,State,ExitCode | sed 's/^/  sacct: /'
[ "$rc" = 0 ] || { tail -n 30 "$WORK/log/snakemake-preempt.log"; fail "the preempted workflow exited $rc"; }
grep -qE "^resumed from epoch [1-9]" "$WORK/preempt/model.txt" || fail "no resume from a checkpoint: $(cat "$WORK/preempt/model.txt")"
log "preempted training checkpointed, exited 75, was resubmitted and $(cat "$WORK/preempt/model.txt")"

log "all SLURM checks passed"
