#!/usr/bin/env bash
# A burst: 1,000 signed pushes for 1,000 different commits of one branch in about a second,
# to one job. deployhook (coalescing, one run at a time) beside adnanh/webhook running the
# typical `git fetch && git reset --hard "$SHA" && ./deploy.sh` script for every push.
# The deploy (deploy.sh in the repository) prints a line and sleeps BENCH_DEPLOY_SECONDS.
# Both checkouts are warm (the commit before the burst is deployed first); deployhook's code is
# not: the burst is the first load the daemon meets, as after a restart or a quiet spell.
#
#   bash bench/burst.sh        BENCH_BURST_COUNT=1000 BENCH_DEPLOY_SECONDS=1 BENCH_BURST_RUNS=1
#   BENCH_SERVERS=deployhook: deployhook alone (to compare builds or profile it quickly)
#   BENCH_BURST_TWICE=1: each server then gets a second burst of as many newer commits once it
#     is idle again, and the table a column for it: the same burst against a server that has
#     met one already (deployhook's hot code compiled by then, its memory already taken)
#   BENCH_BURST_SOCKETS: the sender's keep-alive connections (64)
#   BENCH_SENDER_FLAGS: node flags for the sender (lib/burst.mjs), e.g. --cpu-prof
source "$(dirname "$0")/lib/common.sh"

COUNT="${BENCH_BURST_COUNT:-1000}"
RUNS="${BENCH_BURST_RUNS:-1}"
case "${BENCH_BURST_TWICE:-0}" in
  0) BURSTS=1 ;;
  1) BURSTS=2 ;;
  *) die "expected BENCH_BURST_TWICE to be 0 or 1, got ${BENCH_BURST_TWICE}" ;;
esac
export DEPLOY_SECONDS="${BENCH_DEPLOY_SECONDS:-1}"

bench_need webhook curl
bench_need_build
bench_workdir
bench_snapshot

make_repo "$WORK/remote.git" "$((BURSTS * COUNT + 1))"
git -C "$WORK/remote.git" rev-list --reverse main >"$WORK/all-commits"
# commits-N: burst N's commits, after the one deployed before it (line 1)
for ((burst = 1; burst <= BURSTS; burst++)); do
  sed -n "$(((burst - 1) * COUNT + 1)),$((burst * COUNT + 1))p" "$WORK/all-commits" >"$WORK/commits-$burst"
done
C0="$(head -1 "$WORK/all-commits")"
mkdir -p "$WORK/out"

# wait_idle RUNS_DIR: until no run is queued or running and one has succeeded (60 s at most)
wait_idle() {
  local i
  for ((i = 0; i < 600; i++)); do
    if ls "$1"/*.json >/dev/null 2>&1 && ! grep -qsE '"status": "(queued|running)"' "$1"/[0-9a-z]*[0-9a-z].json && grep -qs '"status": "succeeded"' "$1"/[0-9a-z]*[0-9a-z].json; then return 0; fi
    sleep 0.1
  done
  die "the warm-up run did not finish"
}

# bursts SERVER RUN ARGS...: the run's bursts against one started server (burst.mjs with ARGS
# and each burst's commits), each a line of results. burst.mjs returns once the server is idle
# again, and counts only its own burst's runs or deploys; after a burst that did not settle,
# whose late lines the next would count, there is no next.
bursts() {
  local server="$1" run="$2" burst
  shift 2
  for ((burst = 1; burst <= BURSTS; burst++)); do
    node ${BENCH_SENDER_FLAGS:-} "$BENCH_DIR/lib/burst.mjs" --server "$server" --burst "$burst" --commits "$WORK/commits-$burst" --count "$COUNT" \
      --sockets "${BENCH_BURST_SOCKETS:-64}" "$@" >>"$WORK/results"
    note "  $server run $run, burst $burst: $(tail -1 "$WORK/results")"
    tail -1 "$WORK/results" | grep -q '"settled":true' && continue
    ((burst == BURSTS)) || note "  the burst did not settle: no next burst in this run"
    break
  done
}

run_deployhook() {
  local run="$1" port dir="$WORK/dh-$1" sig
  port="$(free_port)"
  mkdir -p "$dir"
  set_main "$WORK/remote.git" "$C0"
  DH_JOB_EXTRA="    env: { DEPLOY_SECONDS: \"$DEPLOY_SECONDS\" }" \
    dh_config "$WORK/dh.yml" "$port" "$dir" main "$WORK/remote.git" '["./deploy.sh"]'
  start_deployhook "$WORK/dh.yml" "$port" "$WORK/out/deployhook-$run.log"
  sig="$(push_body "$WORK/warm.json" bench/app refs/heads/main "$C0")"
  post_push "$port" "$WORK/warm.json" "$sig" "warm-$run"
  wait_idle "$dir/state/runs/app"
  bursts deployhook "$run" --url "http://127.0.0.1:$port/hooks/github" --bare "$WORK/remote.git" \
    --checkout "$dir/state/checkouts/app" --pid "$DH_PID" --daemon-log "$WORK/out/deployhook-$run.log"
  stop_started "$DH_PID"
}

run_webhook() {
  local run="$1" port dir="$WORK/wh-$1"
  port="$(free_port)"
  mkdir -p "$dir"
  set_main "$WORK/remote.git" "$C0"
  git clone -q "$WORK/remote.git" "$dir/checkout"
  wh_hooks "$WORK/hooks.json" refs/heads/main "$BENCH_DIR/lib/typical-deploy.sh" "$dir"
  CHECKOUT="$dir/checkout" EVENTS="$dir/events" start_webhook "$WORK/hooks.json" "$port" "$WORK/out/webhook-$run.log"
  bursts webhook "$run" --url "http://127.0.0.1:$port/hooks/deploy" --bare "$WORK/remote.git" \
    --checkout "$dir/checkout" --pid "$WH_PID" --events "$dir/events"
  stop_started "$WH_PID"
}

note "burst: $COUNT pushes in about 1 s, deploy takes ${DEPLOY_SECONDS}s, $RUNS run(s) each; load average $(cut -d' ' -f1-3 /proc/loadavg)"
: >"$WORK/results"
for ((run = 1; run <= RUNS; run++)); do
  if [[ "${BENCH_SERVERS:-both}" == deployhook ]]; then run_deployhook "$run"; continue; fi
  if ((run % 2)); then run_deployhook "$run"; run_webhook "$run"; else run_webhook "$run"; run_deployhook "$run"; fi
done

node "$BENCH_DIR/lib/burst-table.mjs" "$WORK/results" "$COUNT" "$DEPLOY_SECONDS"
