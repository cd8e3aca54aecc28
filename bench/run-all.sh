#!/usr/bin/env bash
# Runs every benchmark in turn (about 9 minutes on 2 cores) and keeps their output in
# bench/results/<time>/. Builds dist/ first unless BENCH_SKIP_BUILD=1; with BENCH_REF=<commit>
# each script builds that commit in its scratch folder instead, and dist/ is left alone.
# ack-throughput.sh runs here without the floor for a Node receiver (BENCH_FLOOR=0 unless set):
# the floor is context for the targets, not one of them, and its runs took the suite to about
# 10 minutes on a slow host. `BENCH_FLOOR=1 bash bench/run-all.sh` puts it back. It ends with
# the figures against the targets (lib/verdict.mjs, also kept as verdict.txt).
#
#   bash bench/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
out="bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
[[ -n "${BENCH_SKIP_BUILD:-}" || -n "${BENCH_REF:-}" ]] || npm run build --silent

export BENCH_FLOOR="${BENCH_FLOOR:-0}"
{
  echo "machine: $(nproc) cores, $(free -h | awk '/^Mem:/ { print $2 }') memory, kernel $(uname -r), node $(node --version), $(webhook -version 2>/dev/null || echo 'webhook not installed yet')"
  if [[ -n "${BENCH_REF:-}" ]]; then
    echo "deployhook: $(git rev-parse --short "$BENCH_REF") (built from git by each script)"
  else
    echo "deployhook: dist/ built from $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src has uncommitted changes)')"
  fi
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "floor for a Node receiver in ack-throughput: $([[ "$BENCH_FLOOR" != 0 ]] && echo on || echo 'off (BENCH_FLOOR=1 puts it on)')"
} | tee "$out/machine.txt"

for bench in ack-throughput burst push-to-command log-capture footprint scale; do
  echo
  echo "== $bench ($(date -u +%H:%M:%S), load average $(cut -d' ' -f1-3 /proc/loadavg))"
  bash "bench/$bench.sh" 2>"$out/$bench.err" | tee "$out/$bench.txt"
done
echo
node bench/lib/verdict.mjs "$out" | tee "$out/verdict.txt"
echo
echo "all benchmarks: $((SECONDS - started)) s; output in $out/"
