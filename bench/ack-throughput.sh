#!/usr/bin/env bash
# Acknowledgement throughput: signed GitHub pushes answered per second, deployhook beside
# adnanh/webhook, with wrk (16 connections, 2 threads).
#   (a) no match: the job (hook) wants another branch: verify, decide, reply 200
#   (b) match: verify, record durably (fsync), coalesce, reply 202; the job runs `true`
#       (adnanh/webhook runs /bin/true for every request)
# Every request has a new X-GitHub-Delivery id, so each (b) request is a new delivery.
# Both cases also run the floor for a Node receiver (lib/bare-hook.mjs: node:http, HMAC, parse,
# reply; in (b) also a durable append with O_DSYNC before the 202 and `true` run one at a time,
# coalesced), to show what one Node thread does on the host (BENCH_FLOOR=0 skips it).
# Runs are interleaved (a/b, deployhook/webhook, order alternating) and each server starts
# fresh; medians of BENCH_RUNS runs of BENCH_SECONDS each.
#
#   bash bench/ack-throughput.sh        BENCH_RUNS=3 BENCH_SECONDS=10 BENCH_CASES="a b" BENCH_RATE=1000 BENCH_FLOOR=1 by default
source "$(dirname "$0")/lib/common.sh"

RUNS="${BENCH_RUNS:-3}"
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
CONNECTIONS="${BENCH_CONNECTIONS:-16}"

bench_need webhook wrk curl
bench_need_build
bench_workdir
bench_snapshot

make_repo "$WORK/remote.git" 1
SHA="$(git -C "$WORK/remote.git" rev-parse main)"
# One body for both cases: a push to main. (a) is configured for another branch.
SIG="$(push_body "$WORK/push.json" bench/app refs/heads/main "$SHA")"
mkdir -p "$WORK/wh-cwd" "$WORK/out"
wh_hooks "$WORK/hooks-a.json" refs/heads/release /bin/true "$WORK/wh-cwd"
wh_hooks "$WORK/hooks-b.json" refs/heads/main /bin/true "$WORK/wh-cwd"

# start_server SERVER CASE NAME: a fresh server for the case (its log out/SERVER-NAME.log); sets PID and URL
start_server() {
  local server="$1" case="$2" port
  port="$(free_port)"
  rm -rf "$WORK/dh"
  mkdir -p "$WORK/dh"
  if [[ "$server" == deployhook ]]; then
    dh_config "$WORK/dh.yml" "$port" "$WORK/dh" "$([[ $case == a ]] && echo release || echo main)" "$WORK/remote.git" '["true"]'
    start_deployhook "$WORK/dh.yml" "$port" "$WORK/out/deployhook-$3.log"
    PID="$DH_PID" URL="http://127.0.0.1:$port/hooks/github"
  elif [[ "$server" == floor ]]; then
    start_floor "$port" "$([[ $case == a ]] && echo refs/heads/release || echo refs/heads/main)" "$WORK/floor-journal" "$WORK/out/floor-$3.log"
    PID="$FLOOR_PID" URL="http://127.0.0.1:$port/hooks/github"
  else
    start_webhook "$WORK/hooks-$case.json" "$port" "$WORK/out/webhook-$3.log"
    PID="$WH_PID" URL="http://127.0.0.1:$port/hooks/deploy"
  fi
}

# run_one SERVER CASE RUN: appends "SERVER CASE RUN <BENCH line> rss_mb=.. hwm_mb=.." to results
run_one() {
  local server="$1" case="$2" run="$3" line
  start_server "$server" "$case" "$case-$run"
  line="$(wrk_run "$URL" "$WORK/push.json" "$SIG" "$SECONDS_PER_RUN" "$CONNECTIONS")"
  echo "$server $case $run $line rss_mb=$(rss_mb "$PID") hwm_mb=$(hwm_mb "$PID")" >>"$WORK/results"
  note "  $server ($case) run $run: $line"
  stop_started "$PID"
}

note "ack-throughput: $RUNS runs x ${SECONDS_PER_RUN}s, $CONNECTIONS connections, body $(wc -c <"$WORK/push.json") bytes"
: >"$WORK/results"
for ((run = 1; run <= RUNS; run++)); do
  for case in ${BENCH_CASES:-a b}; do
    if ((run % 2)); then order=(deployhook webhook); else order=(webhook deployhook); fi
    if [[ "${BENCH_FLOOR:-1}" != 0 ]]; then
      if ((run % 2)); then order+=(floor); else order=(floor "${order[@]}"); fi
    fi
    for server in "${order[@]}"; do run_one "$server" "$case" "$run"; done
  done
done

# med SERVER CASE FIELD: the median of FIELD over the runs
med() { median $(awk -v s="$1" -v c="$2" '$1 == s && $2 == c' "$WORK/results" | sed -n "s/.* $3=\([^ ]*\).*/\1/p"); }

echo
echo "ack-throughput: signed $(wc -c <"$WORK/push.json")-byte GitHub push, wrk -t2 -c$CONNECTIONS -d${SECONDS_PER_RUN}s --latency, median of $RUNS runs"
table_header "| case | server | req/s | p50 ms | p99 ms | replies (last run) | RSS after, MB | deployhook/webhook req/s |"
for case in ${BENCH_CASES:-a b}; do
  for server in deployhook webhook floor; do
    rps="$(med "$server" "$case" rps)"
    [[ -n "$rps" && "$rps" != n/a ]] || continue
    last="$(awk -v s="$server" -v c="$case" '$1 == s && $2 == c' "$WORK/results" | tail -1)"
    replies="200:$(field s200 "$last") 202:$(field s202 "$last") other:$(field sother "$last") errors:$(field errors "$last")"
    r=""
    [[ "$server" == deployhook ]] && r="$(ratio "$rps" "$(med webhook "$case" rps)")"
    label="$([[ $case == a ]] && echo '(a) no match, 200' || echo '(b) match, 202')"
    shown="$([[ $server == floor ]] && echo 'Node floor (lib/bare-hook.mjs)' || echo "$server")"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$shown" "$rps" "$(med "$server" "$case" p50_ms)" "$(med "$server" "$case" p99_ms)" "$replies" "$(med "$server" "$case" rss_mb)" "$r"
  done
done
for case in ${BENCH_CASES:-a b}; do
  floor_rps="$(med floor "$case" rps)"
  [[ -n "$floor_rps" && "$floor_rps" != n/a ]] || continue
  echo
  echo "($case) the floor for a Node receiver (lib/bare-hook.mjs: node:http, HMAC, parse, reply$([[ $case == b ]] && echo '; a durable append, runs of true coalesced'); no log line, no other check): $(ratio "$floor_rps" "$(med webhook "$case" rps)")x webhook's req/s; deployhook at $(ratio "$(med deployhook "$case" rps)" "$floor_rps")x the floor"
done
echo
echo "per run:"
sed 's/^/  /' "$WORK/results"

# Latency at a fixed 1,000 req/s (the target's rate), with autocannon's --overallRate
# (Debian has no wrk2): one run per server and case (deployhook first), BENCH_SECONDS each after a warm-up.
RATE="${BENCH_RATE:-1000}"
: >"$WORK/fixed"
for case in ${BENCH_CASES:-a b}; do
  for server in deployhook webhook; do
    start_server "$server" "$case" "fixed-$case"
    line="$(node "$BENCH_DIR/lib/fixed-rate.mjs" --url "$URL" --body "$WORK/push.json" --signature "$SIG" --rate "$RATE" --seconds "$SECONDS_PER_RUN" --connections "$CONNECTIONS")"
    echo "$server $case $line" >>"$WORK/fixed"
    note "  fixed rate: $server ($case): $line"
    stop_started "$PID"
  done
done
echo
echo "fixed rate, $RATE req/s for ${SECONDS_PER_RUN}s (autocannon --overallRate, latency corrected for coordinated omission, $CONNECTIONS connections):"
table_header "| case | server | req/s | p50 ms | p99 ms | max ms | replies |"
while read -r server case line; do
  label="$([[ $case == a ]] && echo '(a) no match, 200' || echo '(b) match, 202')"
  printf '| %s | %s | %s | %s | %s | %s | 200:%s 202:%s other:%s errors:%s |\n' "$label" "$server" "$(field rps " $line")" "$(field p50_ms " $line")" "$(field p99_ms " $line")" "$(field max_ms " $line")" \
    "$(field s200 " $line")" "$(field s202 " $line")" "$(field sother " $line")" "$(field errors " $line")"
done <"$WORK/fixed"
