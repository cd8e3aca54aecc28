#!/usr/bin/env bash
# Scale: a config with 5,000 jobs across 5,000 repositories (generated; every secret from one
# environment variable; all remotes the same local bare repository) against a one-job config
# of the same shape: start to first accepted push, and the acknowledgement throughput of
# ack-throughput.sh's (a) (a branch no job wants: 200) and (b) (a new delivery for a job:
# 202) with wrk -t2 -c16. Interleaved, each daemon fresh, medians.
#
#   bash bench/scale.sh        BENCH_SCALE_JOBS=5000 BENCH_RUNS=3 BENCH_SECONDS=5 BENCH_STARTS=3
source "$(dirname "$0")/lib/common.sh"

JOBS="${BENCH_SCALE_JOBS:-5000}"
RUNS="${BENCH_RUNS:-3}"
SECONDS_PER_RUN="${BENCH_SECONDS:-5}"
STARTS="${BENCH_STARTS:-3}"

bench_need wrk curl
bench_need_build
bench_workdir
bench_snapshot

make_repo "$WORK/remote.git" 1
SHA="$(git -C "$WORK/remote.git" rev-parse main)"
SIG_A="$(push_body "$WORK/push-a.json" bench/app refs/heads/feature "$SHA")"
SIG_B="$(push_body "$WORK/push-b.json" bench/app refs/heads/main "$SHA")"
mkdir -p "$WORK/out"

# config JOBS PORT: writes $WORK/dh.yml with a fresh state folder
config() {
  rm -rf "$WORK/dh" && mkdir -p "$WORK/dh"
  node "$BENCH_DIR/lib/gen-config.mjs" --out "$WORK/dh.yml" --jobs "$1" --port "$2" --dir "$WORK/dh" --remote "$WORK/remote.git"
}

: >"$WORK/results"
note "scale: $JOBS jobs vs 1; $STARTS starts and $RUNS x ${SECONDS_PER_RUN}s per case; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for ((i = 1; i <= STARTS; i++)); do
  for jobs in $( ((i % 2)) && echo "$JOBS 1" || echo "1 $JOBS"); do
    port="$(free_port)"
    config "$jobs" "$port"
    line="$(node "$BENCH_DIR/lib/startup.mjs" --url "http://127.0.0.1:$port/hooks/github" --body "$WORK/push-b.json" --signature "$SIG_B" --status 202 \
      --log "$WORK/out/startup.log" -- node "$CLI" serve --config "$WORK/dh.yml")"
    echo "start $jobs $line" >>"$WORK/results"
    note "  start, $jobs jobs: $line"
  done
done

for ((run = 1; run <= RUNS; run++)); do
  for case in a b; do
    for jobs in $( ((run % 2)) && echo "$JOBS 1" || echo "1 $JOBS"); do
      port="$(free_port)"
      config "$jobs" "$port"
      start_deployhook "$WORK/dh.yml" "$port" "$WORK/out/deployhook-$jobs-$case-$run.log"
      sig="SIG_${case^^}"
      line="$(wrk_run "http://127.0.0.1:$port/hooks/github" "$WORK/push-$case.json" "${!sig}" "$SECONDS_PER_RUN")"
      echo "load $jobs $case $run $line rss_mb=$(rss_mb "$DH_PID")" >>"$WORK/results"
      note "  $jobs jobs ($case) run $run: $line"
      stop_started "$DH_PID"
    done
  done
done

startup() { median $(awk -v j="$1" '$1 == "start" && $2 == j { print $3 }' "$WORK/results" | sed -n 's/.*"acceptedMs":\([0-9.]*\).*/\1/p'); }
med() { median $(awk -v j="$1" -v c="$2" '$1 == "load" && $2 == j && $3 == c' "$WORK/results" | sed -n "s/.* $3=\([^ ]*\).*/\1/p"); }
fmt() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
echo
echo "scale: $JOBS jobs in $JOBS repositories vs one job; start median of $STARTS, wrk -t2 -c16 -d${SECONDS_PER_RUN}s median of $RUNS"
table_header "| | 1 job | $JOBS jobs | $JOBS jobs / 1 job |"
printf '| start to first accepted push, ms | %s | %s | %s |\n' "$(fmt "$(startup 1)")" "$(fmt "$(startup "$JOBS")")" "$(ratio "$(startup "$JOBS")" "$(startup 1)")"
for case in a b; do
  label="$([[ $case == a ]] && echo '(a) no match, 200' || echo '(b) match, 202')"
  printf '| %s, req/s | %s | %s | %s |\n' "$label" "$(med 1 "$case" rps)" "$(med "$JOBS" "$case" rps)" "$(ratio "$(med "$JOBS" "$case" rps)" "$(med 1 "$case" rps)")"
  printf '| %s, p99 ms | %s | %s | |\n' "$label" "$(med 1 "$case" p99_ms)" "$(med "$JOBS" "$case" p99_ms)"
done
printf '| RSS after (b), MB | %s | %s | |\n' "$(med 1 b rss_mb)" "$(med "$JOBS" b rss_mb)"
echo
echo "raw:"
sed 's/^/  /' "$WORK/results"
