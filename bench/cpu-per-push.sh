#!/usr/bin/env bash
# CPU per acknowledged push: deployhook on case (b) of ack-throughput (the job wants the push,
# its command is `true`) at a fixed rate, and the CPU time its threads used meanwhile, from
# /proc/PID/task/*/stat: the main thread, the placing thread (the newest), the rest
# (thread pool, V8's helpers), and the runs' processes (children, and the helper that starts
# them with its children). The main thread's share is
# less noisy than req/s on a shared machine; the placing thread's follows what creating a file
# costs the file system at the moment, so compare builds side by side. The load is autocannon's
# --overallRate (lib/fixed-rate.mjs: each second's requests in a burst), kept so that the
# figures compare with the earlier ones in docs/benchmarks-record.md; its p99 column is autocannon's.
# Two builds alternate round by round (the work tree's dist/ and BENCH_COMPARE, a commit), each
# daemon started fresh.
# BENCH_CASE=a measures case (a) instead (the job wants another branch: verify, decide, 200),
# and BENCH_FLOOR=1 adds the floor for a Node receiver (lib/bare-hook.mjs, in case (b) with its
# durable append and coalesced runs of `true`) to the rotation. BENCH_COMMAND sets the job's
# command (a JSON argv; `["true"]` by default): `["sleep", "600"]` keeps the first run going, so
# no run starts during the load and the figures leave out what starting runs costs (the
# daemon's shutdown_timeout is 1s, so that such a run does not hold up its stop).
#
#   bash bench/cpu-per-push.sh        BENCH_COMPARE=<commit> BENCH_ROUNDS=3 BENCH_RATE=800 BENCH_SECONDS=10 BENCH_CASE=b BENCH_FLOOR=0 BENCH_COMMAND='["true"]'
source "$(dirname "$0")/lib/common.sh"

ROUNDS="${BENCH_ROUNDS:-3}"
RATE="${BENCH_RATE:-800}"
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
CASE="${BENCH_CASE:-b}"
COMMAND="${BENCH_COMMAND:-[\"true\"]}"
[[ "$CASE" == a || "$CASE" == b ]] || die "BENCH_CASE must be a or b, got $CASE"
if [[ "$CASE" == a ]]; then BRANCH=release REPLY=s200; else BRANCH=main REPLY=s202; fi

bench_need curl
bench_need_build
bench_workdir
bench_snapshot
bench_builds
# start_floor knows the floor's script; the entry only names it.
[[ "${BENCH_FLOOR:-0}" != 0 ]] && BUILDS+=("floor:")

make_repo "$WORK/remote.git" 1
SHA="$(git -C "$WORK/remote.git" rev-parse main)"
SIG="$(push_body "$WORK/push.json" bench/app refs/heads/main "$SHA")"
TICK_MS="$(awk -v hz="$(getconf CLK_TCK)" 'BEGIN { print 1000 / hz }')"

# children_ticks STAT_FILE: cutime + cstime (processes waited for), read after the name as
# cpu_ticks (common.sh) reads utime and stime
children_ticks() { sed 's/^.*) //' "$1" | awk '{ print $14 + $15 }'; }

# threads PID: a line "TID TICKS" per thread, "children TICKS", and "helper TICKS": what the
# daemon's children still running have used with theirs (the helper that starts the runs'
# processes, whose children it waits for itself)
threads() {
  local t
  for t in /proc/"$1"/task/*; do echo "${t##*/} $(cpu_ticks "$t/stat")"; done
  echo "children $(children_ticks "/proc/$1/stat")"
  local child
  for child in $(child_pids "$1"); do { sed 's/^.*) //' "/proc/$child/stat" 2>/dev/null || true; }; done |
    awk '{ t += $12 + $13 + $14 + $15 } END { print "helper", t + 0 }'
}

# used PID BEFORE AFTER: "main placing others children", the ticks used between the two
# readings; the placing thread is the newest (highest id), started on first use, so it may
# be missing from the first reading
used() {
  awk -v main="$1" '
    NR == FNR { before[$1] = $2; next }
    { d = $2 - ($1 in before ? before[$1] : 0) }
    $1 == "children" || $1 == "helper" { c += d; next }
    $1 == main { m = d; next }
    { all += d; if ($1 + 0 > newest) { newest = $1 + 0; p = d } }
    END { print m + 0, p + 0, all - p, c + 0 }' "$2" "$3"
}

note "cpu-per-push: $ROUNDS rounds x ${SECONDS_PER_RUN}s at $RATE req/s, case ($CASE)"
printf '%s\n' "| round | build | pushes answered (${REPLY#s}) | main thread µs/push | placing thread | other threads | runs' processes | daemon in all | p99 ms | RSS MB |"
printf '%s\n' "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for ((round = 1; round <= ROUNDS; round++)); do
  for build in "${BUILDS[@]}"; do
    name="${build%%:*}"
    port="$(free_port)"
    rm -rf "$WORK/dh"
    mkdir -p "$WORK/dh"
    if [[ "$name" == floor ]]; then
      start_floor "$port" "refs/heads/$BRANCH" "$WORK/floor-journal" "$WORK/floor-$round.log"
      pid="$FLOOR_PID"
    else
      dh_config "$WORK/dh.yml" "$port" "$WORK/dh" "$BRANCH" "$WORK/remote.git" "$COMMAND" 'shutdown_timeout: 1s'
      CLI="${build#*:}" start_deployhook "$WORK/dh.yml" "$port" "$WORK/daemon-$round.log"
      pid="$DH_PID"
    fi
    threads "$pid" >"$WORK/before"
    line="$(node "$BENCH_DIR/lib/fixed-rate.mjs" --url "http://127.0.0.1:$port/hooks/github" --body "$WORK/push.json" --signature "$SIG" --rate "$RATE" --seconds "$SECONDS_PER_RUN" --warmup 0)"
    threads "$pid" >"$WORK/after"
    read -r m p o c <<<"$(used "$pid" "$WORK/before" "$WORK/after")"
    acked="$(field "$REPLY" "$line")"
    [[ "$acked" -gt 0 ]] || die "no push acknowledged: $line"
    awk -v r="$round" -v b="$name" -v n="$acked" -v t="$TICK_MS" -v m="$m" -v p="$p" -v o="$o" -v c="$c" \
      -v p99="$(field p99_ms "$line")" -v rss="$(rss_mb "$pid")" \
      'BEGIN { u = 1000 * t / n; printf "| %d | %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s |\n", r, b, n, m * u, p * u, o * u, c * u, (m + p + o) * u, p99, rss }'
    stop_started "$pid"
  done
done
