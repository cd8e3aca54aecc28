#!/usr/bin/env bash
# What a large run log leaves behind: the daemon's RSS, how much of it is glibc's main malloc
# heap, and how long the fork behind each process start takes (the `clone` system call of the
# daemon's main thread, timed by `strace -T`; strace slows each call, so compare the rows, not
# the milliseconds with other benchmarks). Four small deploys (two process starts each) on a
# fresh daemon, then one deploy whose command writes BENCH_LOG_BYTES (1 GB) of log lines, then
# four small deploys again; then glibc is asked to return its free memory (`malloc_trim(0)`
# through gdb, which node cannot call itself) and four more.
#
#   bash bench/fork-after-capture.sh        BENCH_LOG_BYTES=1000000000
source "$(dirname "$0")/lib/common.sh"

BYTES="${BENCH_LOG_BYTES:-1000000000}"

bench_need strace gdb curl
bench_need_build
bench_workdir
bench_snapshot

make_repo "$WORK/remote.git" 16
mapfile -t SHAS < <(git -C "$WORK/remote.git" rev-list --reverse main)
PORT="$(free_port)"
mkdir -p "$WORK/dh"
# The command writes the big output only while $WORK/big exists.
dh_config "$WORK/dh.yml" "$PORT" "$WORK/dh" main "$WORK/remote.git" \
  "[\"sh\", \"-c\", \"if [ -f $WORK/big ]; then yes '2026-11-23T12:00:00.000Z INFO  deploy: TASK [nginx : ensure packages] ok: [web-042]' | head -c $BYTES; else echo deployed; fi\"]"
start_deployhook "$WORK/dh.yml" "$PORT" "$WORK/daemon.log"

PUSHED=0
# deploy: one push of the next commit, then waits for its run to finish
deploy() {
  local sig i
  sig="$(push_body "$WORK/push.json" bench/app refs/heads/main "${SHAS[$PUSHED]}")"
  post_push "$PORT" "$WORK/push.json" "$sig" "fork-$PUSHED"
  PUSHED=$((PUSHED + 1))
  for ((i = 0; i < 1200; i++)); do
    (($(grep -c 'run finished' "$WORK/daemon.log" || true) >= PUSHED)) && break
    sleep 0.1
  done
  sleep 1
}

# measure LABEL: four small deploys with the main thread's clone calls timed
measure() {
  local tracer times
  strace -T -e trace=clone,clone3 -p "$DH_PID" -o "$WORK/strace.$1" 2>/dev/null &
  tracer=$!
  sleep 0.5
  deploy; deploy; deploy; deploy
  kill "$tracer"
  wait "$tracer" 2>/dev/null || true
  # a process start is a clone without CLONE_VM (a thread has it)
  times="$(grep -v CLONE_VM "$WORK/strace.$1" | sed -n 's/.*<\([0-9.]*\)>$/\1/p' | awk '{ printf "%.2f\n", $1 * 1000 }')"
  printf '| %s | %s | %s | %s (%s) | %s |\n' "$1" "$(rss_mb "$DH_PID")" "$(malloc_heap_mb "$DH_PID")" \
    "$(median $times)" "$(sort -g <<<"$times" | awk 'NR == 1 { low = $1 } END { print low "–" $1 }')" "$(paste -sd' ' <<<"$times")"
}

note "fork-after-capture: $BYTES bytes of output"
echo "process starts of a run (the daemon's fork), 4 small deploys per row (strace -T of the main thread's clone):"
table_header "| daemon | RSS MB | malloc heap MB | fork ms, median (range) | each |"
deploy
measure fresh
touch "$WORK/big"
deploy
rm -f "$WORK/big"
measure "after a $BYTES-byte log"
gdb -p "$DH_PID" -batch -ex 'call (int) malloc_trim(0)' >/dev/null 2>&1 || die "gdb could not call malloc_trim in the daemon"
measure "then malloc_trim(0)"
stop_started "$DH_PID"
