#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Kills one rank of a 2-process run (SIGKILL, mid-run) and checks that mpiexec ends the other rank and fails with a
# message naming the dead rank, that rank 0's last checkpoint is whole (no half-written state), and that resuming it
# in one process with the same shards gives the results and logs of an uninterrupted run (timings aside).
#   mpi_rank_killed.sh WORKDIR MPIEXEC EXAMPLE FLAGS...     (FLAGS without --out and --shards; runs of at least 4
#   logged epochs)
set -euo pipefail
work=$1
mpiexec=$2
shift 2
rm -rf "$work"
mkdir -p "$work"

"$@" --shards 2 --out "$work/straight" > "$work/straight.txt" 2>&1 || { cat "$work/straight.txt"; exit 1; }

"$mpiexec" -n 2 "$@" --out "$work/killed" > "$work/killed.txt" 2>&1 &
launcher=$!
log=""
for _ in $(seq 1 3000); do  # until the first run has logged two epochs
  log=$(find "$work/killed" -name log.csv 2>/dev/null | head -1 || true)
  if [ -n "$log" ] && [ "$(wc -l < "$log")" -ge 3 ]; then break; fi
  sleep 0.01
done
# Rank 1: the process whose environment says so (Open MPI: OMPI_COMM_WORLD_RANK; MPICH and PMIx: PMI_RANK).
victim=""
for pid in $(pgrep -P "$launcher" 2>/dev/null; pgrep -f -- "--out $work/killed" 2>/dev/null); do
  if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qE '^(OMPI_COMM_WORLD_RANK|PMI_RANK)=1$'; then
    victim=$pid
    break
  fi
done
[ -n "$victim" ] || { echo "mpi_rank_killed: rank 1 not found (the run ended too soon?)" >&2; exit 1; }
kill -9 "$victim"
logged=$(($(wc -l < "$log") - 1))
exit_code=0
timeout 60 tail --pid="$launcher" -f /dev/null ||
  { echo "mpi_rank_killed: mpiexec did not end after rank 1 died" >&2; exit 1; }
wait "$launcher" || exit_code=$?
[ "$exit_code" -ne 0 ] || { echo "mpi_rank_killed: mpiexec exited with 0 after a rank was killed" >&2; exit 1; }
grep -q "rank 1" "$work/killed.txt" || { echo "mpi_rank_killed: mpiexec did not name the dead rank" >&2; exit 1; }
[ ! -f "$work/killed/results.csv" ] || { echo "mpi_rank_killed: the run finished before the kill" >&2; exit 1; }
if pgrep -f -- "--out $work/killed" > /dev/null; then
  echo "mpi_rank_killed: a rank outlived mpiexec" >&2
  exit 1
fi

# Rank 0's checkpoints are whole: one process with the same shards resumes them and ends as the uninterrupted run.
"$@" --shards 2 --out "$work/killed" --resume > "$work/resumed.txt" 2>&1 || { cat "$work/resumed.txt"; exit 1; }
status=0
"$(dirname "$0")/../scripts/compare-runs" "$work/straight" "$work/killed" || status=1
echo "mpi_rank_killed: rank 1 killed once $log had $logged epoch(s); mpiexec exited with $exit_code;" \
  "resumed in one process: results and logs $([ $status -eq 0 ] && echo equal || echo DIFFER)"
exit $status
