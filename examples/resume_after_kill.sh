#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Kills an experiment with SIGKILL in the middle of its run, resumes it with --resume, and checks that the results
# table and every run's log equal those of an uninterrupted run (timings aside).
#   resume_after_kill.sh WORKDIR EXAMPLE FLAGS...     (FLAGS without --out; the run must log at least 4 epochs)
set -euo pipefail
work=$1
shift
rm -rf "$work"
mkdir -p "$work"

"$@" --out "$work/straight" > "$work/straight.txt" 2>&1

# The same run, killed once its first log has two epochs (mid-run), then resumed (twice: a resume can be killed too).
"$@" --out "$work/killed" > "$work/killed.txt" 2>&1 &
pid=$!
log=$(find "$work/killed" -name log.csv 2>/dev/null | head -1 || true)
for _ in $(seq 1 3000); do
  log=$(find "$work/killed" -name log.csv 2>/dev/null | head -1 || true)
  if [ -n "$log" ] && [ "$(wc -l < "$log")" -ge 3 ]; then break; fi
  sleep 0.01
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
killed_at=$(($(wc -l < "$log") - 1))
if [ -f "$work/killed/results.csv" ]; then
  echo "resume_after_kill: the run finished before it was killed; give it more epochs" >&2
  exit 1
fi
if "$@" --out "$work/killed" > "$work/fresh.txt" 2>&1; then  # a new run into a run's state is refused
  echo "resume_after_kill: a new run started in a directory that holds a run's state" >&2
  exit 1
fi
grep -q "pass --resume" "$work/fresh.txt"
"$@" --out "$work/killed" --resume > "$work/resumed.txt" 2>&1

# Compare without the timing columns (results.csv and every log.csv).
status=0
"$(dirname "$0")/../scripts/compare-runs" "$work/straight" "$work/killed" || status=1
resumed=$(grep -c "resumed after epoch" "$work/resumed.txt" || true)
echo "resume_after_kill: killed after $killed_at logged epoch(s) of $log; $resumed run(s) resumed;" \
  "results and logs $([ $status -eq 0 ] && echo equal || echo DIFFER)"
exit $status
