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
# BENCH_FLOOR_GIT=1 gives the floor's runs the git processes of a deployhook run (lib/bare-hook.mjs).
# BENCH_COMMAND sets deployhook's job command (JSON, '["true"]' by default): '["sleep","600"]'
# keeps the first run going through the whole load, so that no other run starts (what the runs cost).
# BENCH_PARTS="throughput fixed" by default: the throughput runs, then the latency at a fixed
# rate, for BENCH_FIXED_SERVERS="deployhook webhook" by default (add floor for the Node floor).
source "$(dirname "$0")/lib/common.sh"

RUNS="${BENCH_RUNS:-3}"
for part in ${BENCH_PARTS:-throughput fixed}; do
  [[ "$part" == throughput || "$part" == fixed ]] || die "BENCH_PARTS takes throughput and fixed, got $part"
done
[[ "${BENCH_FIXED_TOOL:-wrk}" == wrk || "${BENCH_FIXED_TOOL:-wrk}" == autocannon ]] || die "BENCH_FIXED_TOOL is wrk or autocannon, got $BENCH_FIXED_TOOL"
for server in ${BENCH_FIXED_SERVERS:-deployhook webhook}; do
  [[ "$server" =~ ^(deployhook|webhook|floor)$ ]] || die "BENCH_FIXED_SERVERS takes deployhook, webhook and floor, got $server"
done
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
if [[ -n "${BENCH_FLOOR_GIT:-}" ]]; then
  # The floor's runs take the git processes of a deployhook run (fetch, the branch's ref
  # checked, checkout --force, clean -ffdx), then `true`, then git's housekeeping, in a
  # checkout of their own.
  git clone -q "$WORK/remote.git" "$WORK/floor-checkout"
  export BENCH_FLOOR_RUN="cd '$WORK/floor-checkout' && git fetch -q --prune --no-tags --no-auto-maintenance -- origin '+refs/heads/*:refs/remotes/origin/*' '+refs/tags/*:refs/tags/*' && git show-ref --verify --quiet -- refs/remotes/origin/main && git checkout -q --force --detach 'refs/remotes/origin/main^{commit}' -- && git clean -q -ffdx && true && git -c gc.autoDetach=false -c maintenance.autoDetach=false maintenance run --auto --quiet"
fi
wh_hooks "$WORK/hooks-a.json" refs/heads/release /bin/true "$WORK/wh-cwd"
wh_hooks "$WORK/hooks-b.json" refs/heads/main /bin/true "$WORK/wh-cwd"

# start_server SERVER CASE NAME: a fresh server for the case (its log out/SERVER-NAME.log); sets PID and URL
start_server() {
  local server="$1" case="$2" port
  port="$(free_port)"
  rm -rf "$WORK/dh"
  mkdir -p "$WORK/dh"
  if [[ "$server" == deployhook ]]; then
    dh_config "$WORK/dh.yml" "$port" "$WORK/dh" "$([[ $case == a ]] && echo release || echo main)" "$WORK/remote.git" "${BENCH_COMMAND:-[\"true\"]}"
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

# median_in FILE SERVER CASE FIELD: the median of FIELD over FILE's runs of that server and case
median_in() { median $(awk -v s="$2" -v c="$3" '$1 == s && $2 == c' "$1" | sed -n "s/.* $4=\([^ ]*\).*/\1/p"); }
# How the tables name a case and a server.
case_label() { if [[ $1 == a ]]; then echo '(a) no match, 200'; else echo '(b) match, 202'; fi; }
server_label() { if [[ $1 == floor ]]; then echo 'Node floor (lib/bare-hook.mjs)'; else echo "$1"; fi; }

if [[ " ${BENCH_PARTS:-throughput fixed} " == *" throughput "* ]]; then
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
  med() { median_in "$WORK/results" "$@"; }

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
      printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$(case_label "$case")" "$(server_label "$server")" "$rps" "$(med "$server" "$case" p50_ms)" "$(med "$server" "$case" p99_ms)" "$replies" "$(med "$server" "$case" rss_mb)" "$r"
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
fi

# Latency at a fixed 1,000 req/s (the target's rate): wrk with its requests paced evenly by
# lib/signed-push.lua (BENCH_SLOT_MS; Debian has no wrk2), 256 connections, after a 2-second
# warm-up at the same rate; BENCH_RUNS runs per server and case, order alternating, medians.
# BENCH_FIXED_TOOL=autocannon measures with autocannon's --overallRate instead:
# it sends each second's requests in a burst at the second's start, and its correction for
# coordinated omission assumes 1 ms between a connection's requests whatever the rate (see
# lib/fixed-rate.mjs), so its p99 is not that of a steady rate. "slots dropped" counts the
# paced requests that passed unsent, because every connection was waiting for a reply (the
# requests a stalled server escapes) or wrk itself ran behind; "sent late" the requests wrk
# sent 5 ms or more after their slot (its own event loop behind on the shared cores: their
# latency counts from the late write), and the most any was.
[[ " ${BENCH_PARTS:-throughput fixed} " == *" fixed "* ]] || exit 0
RATE="${BENCH_RATE:-1000}"
FIXED_SECONDS="${BENCH_FIXED_SECONDS:-5}"
FIXED_CONNECTIONS="${BENCH_FIXED_CONNECTIONS:-256}"
: >"$WORK/fixed"
if [[ "${BENCH_FIXED_TOOL:-wrk}" == autocannon ]]; then
  fixed_how="autocannon --overallRate, latency corrected for coordinated omission as autocannon does it, $CONNECTIONS connections; median of $RUNS runs"
else
  fixed_how="wrk paced evenly by lib/signed-push.lua, $FIXED_CONNECTIONS connections, after a 2 s warm-up; median of $RUNS runs"
fi
for ((run = 1; run <= RUNS; run++)); do
  for case in ${BENCH_CASES:-a b}; do
    read -r -a order <<<"${BENCH_FIXED_SERVERS:-deployhook webhook}"
    ((run % 2)) || order=($(printf '%s\n' "${order[@]}" | tac))
    for server in "${order[@]}"; do
      start_server "$server" "$case" "fixed-$case-$run"
      if [[ "${BENCH_FIXED_TOOL:-wrk}" == autocannon ]]; then
        line="$(node "$BENCH_DIR/lib/fixed-rate.mjs" --url "$URL" --body "$WORK/push.json" --signature "$SIG" --rate "$RATE" --seconds "$FIXED_SECONDS" --connections "$CONNECTIONS")"
      else
        wrk_paced "$URL" "$WORK/push.json" "$SIG" 2 "$RATE" "$FIXED_CONNECTIONS" >/dev/null
        line="$(wrk_paced "$URL" "$WORK/push.json" "$SIG" "$FIXED_SECONDS" "$RATE" "$FIXED_CONNECTIONS")"
      fi
      echo "$server $case $run $line" >>"$WORK/fixed"
      note "  fixed rate: $server ($case) run $run: $line"
      stop_started "$PID"
    done
  done
done
# fmed SERVER CASE FIELD: the median of FIELD over the fixed-rate runs
fmed() { median_in "$WORK/fixed" "$@"; }
echo
echo "fixed rate, $RATE req/s for ${FIXED_SECONDS}s ($fixed_how):"
table_header "| case | server | req/s | p50 ms | p99 ms | max ms | slots dropped | sent late (most, ms) | replies (last run) |"
for case in ${BENCH_CASES:-a b}; do
  for server in deployhook webhook floor; do
    last="$(awk -v s="$server" -v c="$case" '$1 == s && $2 == c' "$WORK/fixed" | tail -1)"
    [[ -n "$last" ]] || continue
    printf '| %s | %s | %s | %s | %s | %s | %s | %s (%s) | 200:%s 202:%s other:%s errors:%s |\n' "$(case_label "$case")" "$(server_label "$server")" "$(fmed "$server" "$case" rps)" "$(fmed "$server" "$case" p50_ms)" "$(fmed "$server" "$case" p99_ms)" "$(fmed "$server" "$case" max_ms)" \
      "$(fmed "$server" "$case" dropped)" "$(fmed "$server" "$case" late)" "$(fmed "$server" "$case" late_max_ms)" \
      "$(field s200 "$last")" "$(field s202 "$last")" "$(field sother "$last")" "$(field errors "$last")"
  done
done
echo
echo "fixed rate, per run:"
sed 's/^/  /' "$WORK/fixed"
