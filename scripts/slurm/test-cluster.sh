#!/usr/bin/env bash
# The Slurm scripts on a real one-node Slurm: installs Debian's slurm-wlm and
# munge (if missing), starts munged, slurmctld and slurmd on localhost with a
# generated slurm.conf (no systemd, no cgroups; everything under a temporary
# directory, private ports and munge socket), and then checks that
#   (a) predict-array.sh over assets/spectra in 4 shards plus the merge job
#       (--dependency=afterok) gives the single-process catalog, byte for byte;
#   (b) train-array.sh as a 3-member array plus its finishing job gives the
#       single-process model (apart from timings and burn's random parameter ids);
#   (c) a training task cancelled mid-run (scancel) and requeued
#       (scontrol requeue) still gives the single-process model.
# Everything it started is stopped on exit. Run as root (CI) from anywhere:
#   scripts/slurm/test-cluster.sh
# Prints "N passed, M failed" last; exits non-zero on any failure.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
[ "$(id -u)" = 0 ] || { echo "test-cluster.sh: run as root (it starts slurmd and slurmctld)" >&2; exit 2; }

passed=0
failed=0
check() { # check NAME COMMAND...: runs COMMAND, counts and reports the outcome
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name"
  fi
}
summary() { echo "$passed passed, $failed failed"; }

# --- Slurm and munge --------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
cargo build --release --quiet --bin spectrain
SPECTRAIN=$REPO/target/release/spectrain
export SPECTRAIN

T=$(mktemp -d /tmp/spectrain-slurm.XXXXXX)
chmod 755 "$T"
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/log" "$T/work"
pids=()
cleanup() {
  local rc=$?
  set +e
  if [ -n "${SLURM_CONF:-}" ] && [ -e "$SLURM_CONF" ]; then
    scancel --user=root >/dev/null 2>&1
    # Let slurmd end the jobs' processes before the daemons go.
    for _ in $(seq 30); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  done
  if [ "$rc" != 0 ] || [ "$failed" != 0 ]; then
    for log in "$T"/log/*.log; do
      echo "--- last lines of $log"
      tail -n 20 "$log"
    done
  fi
  rm -rf "$T"
  summary
  [ "$rc" = 0 ] && [ "$failed" != 0 ] && rc=1
  exit "$rc"
}
trap cleanup EXIT
# On TERM, finish the command under way (bash waits for it), then clean up:
# nothing is left running in a removed directory.
trap 'exit 143' TERM
trap 'exit 130' INT

# A fresh key, a private socket: whatever munge the machine runs stays untouched.
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$T/munge/munge.key"
MUNGE_SOCKET=$T/munge/munge.socket
munged --foreground --force --key-file="$T/munge/munge.key" --socket="$MUNGE_SOCKET" \
  --pid-file="$T/munge/munged.pid" --log-file="$T/log/munged.log" \
  --seed-file="$T/munge/munged.seed" >"$T/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$MUNGE_SOCKET" ] && break; sleep 0.1; done

HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512))
PORT=${SLURM_TEST_PORT:-16817}
export SLURM_CONF=$T/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=spectrain-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
ReturnToService=2
MinJobAge=3600
KillWait=5
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=test Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i -f "$SLURM_CONF" >"$T/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$T/log/slurmd.out" 2>&1 &
pids+=($!)
node_idle() { [ "$(sinfo -h -n "$HOST" -o %T 2>/dev/null)" = idle ]; }
for _ in $(seq 120); do node_idle && break; sleep 0.5; done
check "one-node cluster up ($HOST, $CPUS CPUs)" node_idle
node_idle || exit 1

# --- helpers ----------------------------------------------------------------
# Waits until no task of job $1 is pending or running (at most $2 seconds).
wait_job() {
  local deadline=$((SECONDS + ${2:-300}))
  while [ -n "$(squeue -h -j "$1" 2>/dev/null)" ]; do
    if [ $SECONDS -ge $deadline ]; then
      echo "job $1 still queued after ${2:-300} s:"
      squeue -j "$1"
      return 1
    fi
    sleep 1
  done
}
# Every task of job $1 ended COMPLETED with exit code 0.
completed() {
  local states
  states=$(scontrol -o show job "$1" | grep -o 'JobState=[A-Z_]* .*ExitCode=[0-9:]*' |
    sed 's/JobState=\([A-Z_]*\) .*ExitCode=\([0-9:]*\)/\1 \2/' | sort | uniq -c)
  echo "job $1: $states"
  ! grep -qv 'COMPLETED 0:0' <<<"$states"
}
# The state of one task ($1 = jobid_index).
state_of() { scontrol -o show job "$1" | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }

# Two model directories hold the same model: the same files, the same bytes,
# except wall-clock times (the curves' last column, metrics' "seconds",
# provenance's start and wall time) and the weight files' metadata, which
# holds burn's random parameter ids (they differ between any two runs), and so
# the weights' checksums, which must instead match their own weight files.
weights() { # the tensor data section of a burnpack file
  local meta start
  meta=$(od -An -tu4 -j6 -N4 "$1" | tr -d ' ')
  start=$(((10 + meta + 255) / 256 * 256))
  tail -c +$((start + 1)) "$1"
}
same_model() {
  local a=$1 b=$2 f ok=0
  if [ "$(ls "$a")" != "$(ls "$b")" ]; then
    echo "different files:"
    diff <(ls "$a") <(ls "$b")
    return 1
  fi
  for f in $(ls "$a"); do
    case $f in
      *.bpk) cmp -s <(weights "$a/$f") <(weights "$b/$f") ;;
      *.sha256) (cd "$a" && sha256sum --quiet -c "$f") && (cd "$b" && sha256sum --quiet -c "$f") ;;
      *.csv) cmp -s <(sed 's/,[^,]*$//' "$a/$f") <(sed 's/,[^,]*$//' "$b/$f") ;;
      metrics.json | provenance.json)
        # Timings, and how many members one process ran at once (a whole run
        # says 1; member tasks, each one member, leave it out).
        local timing='^  "(seconds|started_unix|wall_seconds|members_at_once)":'
        # (trailing commas dropped: a left-out last field moves the comma)
        cmp -s <(grep -Ev "$timing" "$a/$f" | sed 's/,$//') <(grep -Ev "$timing" "$b/$f" | sed 's/,$//')
        ;;
      *) cmp -s "$a/$f" "$b/$f" ;;
    esac || {
      echo "$f differs between $a and $b"
      ok=1
    }
  done
  return $ok
}

cd "$T/work"

# --- (a) predict: 4 shards and a dependent merge ------------------------------
export SPECTRA=$REPO/assets/spectra MODEL=$REPO/models/dr10-teff-logg-feh OUT=$T/work/out
"$SPECTRAIN" -q predict --model "$MODEL" --spectra "$SPECTRA" --out "$T/single-catalog.csv"
jid=$(sbatch --parsable --array=1-4 --cpus-per-task=1 --mem=2G "$REPO/scripts/slurm/predict-array.sh")
mid=$(sbatch --parsable --dependency=afterok:"$jid" --job-name=spectrain-merge --output=%x-%j.log \
  --cpus-per-task=1 --mem=2G \
  --wrap '"$SPECTRAIN" merge "$OUT"/shards/catalog-*.csv --spectra "$SPECTRA" --out "$OUT"/catalog.csv')
wait_job "$mid" 600 || true
check "predict: 4 shard tasks completed" completed "$jid"
check "predict: merge job completed" completed "$mid"
check "predict: merged catalog = single-process catalog" cmp "$OUT/catalog.csv" "$T/single-catalog.csv"
rows_per_file() { [ "$(($(wc -l <"$1") - 1))" = "$(find "$SPECTRA" -name '*.fits*' | wc -l)" ]; }
check "predict: the catalog has a row for each of the $(find "$SPECTRA" -name '*.fits*' | wc -l) files" \
  rows_per_file "$OUT/catalog.csv"
# The bug this replaced: logs under a directory the job had yet to create.
check "predict: each task's log is where the header says" \
  test -s "spectrain-predict-${jid}_1.log" -a -s "spectrain-predict-${jid}_4.log"

# --- (b) training: 3 members as an array, then the finishing job ---------------
"$SPECTRAIN" -q prepare --spectra "$SPECTRA" --labels "$REPO/assets/labels.csv" \
  --columns teff,logg,feh --out "$T/data.h5"
cat >"$T/tiny.toml" <<'EOF'
# A network small enough to train in seconds, with every part of the real one.
[model]
stem_channels = 8
growth = 4
bottleneck = 2
block_layers = [1, 1]
integration = 4
hidden = 16
head_dropout = 0.2

[training]
members = 3
epochs = 8
batch = 16
EOF
args=(--backend cpu --data "$T/data.h5" --config "$T/tiny.toml")
"$SPECTRAIN" -q train "${args[@]}" --out "$T/single-model" >/dev/null
jid=$(sbatch --parsable --array=0-2 --cpus-per-task=1 --mem=2G \
  "$REPO/scripts/slurm/train-array.sh" "${args[@]}" --out "$T/work/model")
fid=$(sbatch --parsable --dependency=afterok:"$jid" --output=%x-%j.log --cpus-per-task=1 --mem=2G \
  "$REPO/scripts/slurm/train-array.sh" "${args[@]}" --out "$T/work/model")
wait_job "$fid" 600 || true
check "train: 3 member tasks completed" completed "$jid"
check "train: finishing job completed" completed "$fid"
check "train: model = single-process model" same_model "$T/single-model" "$T/work/model"
# The comparison can fail: another member of the same run is another network.
weights_differ() { [ -s "$1" ] && ! cmp -s <(weights "$1") <(weights "$2"); }
check "train: the comparison sees a different network" \
  weights_differ "$T/single-model/member-00.bpk" "$T/single-model/member-01.bpk"

# --- (c) a member task cancelled mid-run, requeued ---------------------------
# Long enough epochs that the cancel lands while member 1 trains.
sed 's/^epochs = 8/epochs = 200/' "$T/tiny.toml" >"$T/long.toml"
args=(--backend cpu --data "$T/data.h5" --config "$T/long.toml")
"$SPECTRAIN" -q train "${args[@]}" --out "$T/single-long" >/dev/null
jid=$(sbatch --parsable --array=0-2 --cpus-per-task=1 --mem=2G \
  "$REPO/scripts/slurm/train-array.sh" "${args[@]}" --out "$T/work/long")
fid=$(sbatch --parsable --dependency=afterok:"$jid" --output=%x-%j.log --cpus-per-task=1 --mem=2G \
  "$REPO/scripts/slurm/train-array.sh" "${args[@]}" --out "$T/work/long")
mid_training() { # member 1 is running and has checkpointed at least one epoch
  [ "$(state_of "${jid}_1")" = RUNNING ] && [ -e "$T/work/long/member-01.work/state.json" ]
}
for _ in $(seq 600); do mid_training && break; sleep 0.1; done
check "cancel: member 1 caught mid-training" mid_training
scancel "${jid}_1"
for _ in $(seq 100); do [ "$(state_of "${jid}_1")" = CANCELLED ] && break; sleep 0.2; done
check "cancel: member 1 cancelled before it finished" \
  test "$(state_of "${jid}_1")" = CANCELLED -a ! -e "$T/work/long/member-01.bpk"
scontrol requeue "${jid}_1"
# Slurm holds a requeued job for two minutes (EligibleTime); no need to here.
scontrol update JobId="${jid}_1" StartTime=now
wait_job "$jid" 600 || true
check "cancel: requeued member task completed" completed "$jid"
# A cancelled task fails the array's afterok for good, even once its requeued
# run has succeeded (as observed with Slurm 22.05), so the
# finishing job is left DependencyNeverSatisfied. Submit it again after the
# requeued task, as the README tells users to.
never_satisfied() { scontrol -o show job "$fid" | grep -q 'Reason=DependencyNeverSatisfied'; }
for _ in $(seq 60); do
  never_satisfied || [ "$(state_of "$fid")" != PENDING ] && break
  sleep 0.5
done
if never_satisfied; then
  echo "finishing job $fid: dependency never satisfied; submitting it again after ${jid}_1"
  scancel "$fid"
  fid=$(sbatch --parsable --dependency=afterok:"${jid}_1" --output=%x-%j.log --cpus-per-task=1 --mem=2G \
    "$REPO/scripts/slurm/train-array.sh" "${args[@]}" --out "$T/work/long")
fi
wait_job "$fid" 300 || true
check "cancel: finishing job completed" completed "$fid"
check "cancel: model = single-process model" same_model "$T/single-long" "$T/work/long"
