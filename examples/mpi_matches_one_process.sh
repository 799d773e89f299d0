#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs an experiment on 2 processes under mpiexec and in one process with the same shards (--shards 2), and checks
# that the results table and every run's log are the same (timings aside) and that only rank 0 printed them; then
# runs it on 2 processes for one epoch less, resumes that in one process and (a copy) in 2, and checks those against
# the others too (a checkpoint of one process count resumes on another, and on as many).
#   mpi_matches_one_process.sh WORKDIR MPIEXEC EXAMPLE FLAGS...     (FLAGS without --out and --shards, with --epochs
#   N last but one and N >= 2)
set -euo pipefail
work=$1
mpiexec=$2
shift 2
rm -rf "$work"
mkdir -p "$work"

"$@" --shards 2 --out "$work/one" > "$work/one.txt" 2>&1 || { cat "$work/one.txt"; exit 1; }
"$mpiexec" -n 2 "$@" --out "$work/two" > "$work/two.txt" 2>&1 || { cat "$work/two.txt"; exit 1; }
grep -q "2 shard(s) per batch across 2 process(es) (mpiexec)" "$work/two.txt" || {
  echo "mpi_matches_one_process: the mpiexec run did not say it ran on 2 processes" >&2
  cat "$work/two.txt"
  exit 1
}
[ "$(grep -c "logs and plots:" "$work/two.txt")" = 1 ] || {
  echo "mpi_matches_one_process: the results were printed by more than one rank" >&2
  exit 1
}

# Stop one epoch early on 2 processes, then finish in one process from rank 0's checkpoints.
args=("$@")
epochs=${args[-1]}
[ "${args[-2]}" = --epochs ] || { echo "mpi_matches_one_process: give --epochs N as the last flags" >&2; exit 2; }
unset 'args[-1]' 'args[-2]'
"$mpiexec" -n 2 "${args[@]}" --epochs $((epochs - 1)) --out "$work/resumed" > "$work/first.txt" 2>&1 ||
  { cat "$work/first.txt"; exit 1; }
cp -r "$work/resumed" "$work/resumed2"
"${args[@]}" --epochs "$epochs" --shards 2 --resume --out "$work/resumed" > "$work/resumed.txt" 2>&1 ||
  { cat "$work/resumed.txt"; exit 1; }
"$mpiexec" -n 2 "${args[@]}" --epochs "$epochs" --resume --out "$work/resumed2" > "$work/resumed2.txt" 2>&1 ||
  { cat "$work/resumed2.txt"; exit 1; }

status=0
for other in two resumed resumed2; do
  "$(dirname "$0")/../scripts/compare-runs" "$work/one" "$work/$other" || status=1
done
logs=$(cd "$work/one" && find . -name log.csv | wc -l)
echo "mpi_matches_one_process: results.csv and $logs log(s) of 2 processes, and of 2 processes resumed in one and" \
  "in 2: $([ $status -eq 0 ] && echo equal || echo DIFFER)"
exit $status
