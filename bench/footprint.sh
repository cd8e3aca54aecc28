#!/usr/bin/env bash
# Footprint: resident memory (VmRSS from /proc/PID/status) idle, idle again after one deploy
# (deployhook loads git and process code with its first run; measured 8 s after the run's
# finished record is on disk, about a second after the run ends: the daemon idle again, V8
# having given back some of what the run took), after the acknowledgement
# load of ack-throughput.sh (wrk (a) then (b)), and after a 1 GB log capture; and the time
# from starting the server to its first accepted signed push (202 for deployhook, 200 with
# the hook run for adnanh/webhook), measured by a poller that starts the server and tries
# every 2 ms. deployhook beside adnanh/webhook, interleaved, medians. For deployhook it also
# gives how much of each RSS is glibc's main malloc heap (the `[heap]` mapping in smaps), which
# keeps the memory of buffers node has freed.
#
# BENCH_BASELINE=<commit> also starts that commit's build in the same interleaved loop, so a
# change's effect on start-up is measured side by side even on a busy machine.
#
#   bash bench/footprint.sh        BENCH_STARTS=5 BENCH_SECONDS=5 BENCH_LOG_BYTES=1000000000
source "$(dirname "$0")/lib/common.sh"

STARTS="${BENCH_STARTS:-5}"
LOAD_SECONDS="${BENCH_SECONDS:-5}"
BYTES="${BENCH_LOG_BYTES:-1000000000}"

bench_need webhook wrk curl
bench_need_build
bench_workdir
bench_snapshot
BASELINE_CLI=""
if [[ -n "${BENCH_BASELINE:-}" ]]; then
  bench_build_ref "$BENCH_BASELINE" "$WORK/baseline"
  BASELINE_CLI="$WORK/baseline/dist/cli.js"
fi

make_repo "$WORK/remote.git" 1
SHA="$(git -C "$WORK/remote.git" rev-parse main)"
SIG_MAIN="$(push_body "$WORK/push-main.json" bench/app refs/heads/main "$SHA")"
SIG_OTHER="$(push_body "$WORK/push-other.json" bench/app refs/heads/feature "$SHA")"
SIG_LOG="$(push_body "$WORK/push-log.json" bench/log refs/heads/main "$SHA")"
LINE='2026-11-23T12:00:00.000Z INFO  deploy: TASK [nginx : ensure packages] ok: [web-042] => (item=nginx) changed=false'
# shellcheck disable=SC2016 # expanded by the command's own bash
SCRIPT='yes "$LINE" | head -c "$BYTES"'
mkdir -p "$WORK/out" "$WORK/wh-cwd"

# config PORT DIR: job `app` (bench/app, main, runs `true`) and job `log` (bench/log, 1 GB of output)
config() {
  local command
  command="$(node -e 'console.log(JSON.stringify(["bash", "-c", process.argv[1]]))' "$SCRIPT")"
  dh_config "$WORK/dh.yml" "$1" "$2" main "$WORK/remote.git" '["true"]'
  cat >>"$WORK/dh.yml" <<YAML
  - name: log
    provider: github
    repo: bench/log
    branches: ["main"]
    secret_env: BENCH_SECRET
    remote: $WORK/remote.git
    command: $command
    env: { LINE: "$LINE", BYTES: "$BYTES" }
YAML
}
wh_hooks "$WORK/hooks.json" refs/heads/main /bin/true "$WORK/wh-cwd"

: >"$WORK/results"
note "footprint: $STARTS starts each; load average $(cut -d' ' -f1-3 /proc/loadavg)"
servers=(deployhook webhook)
[[ -n "$BASELINE_CLI" ]] && servers+=(baseline)
for ((i = 1; i <= STARTS; i++)); do
  # A different server goes first in each round.
  shift_by=$(((i - 1) % ${#servers[@]}))
  for server in "${servers[@]:shift_by}" "${servers[@]:0:shift_by}"; do
    port="$(free_port)"
    if [[ "$server" == deployhook || "$server" == baseline ]]; then
      rm -rf "$WORK/dh" && mkdir -p "$WORK/dh"
      config "$port" "$WORK/dh"
      cli="$CLI"
      [[ "$server" == baseline ]] && cli="$BASELINE_CLI"
      line="$(node "$BENCH_DIR/lib/startup.mjs" --url "http://127.0.0.1:$port/hooks/github" --body "$WORK/push-main.json" --signature "$SIG_MAIN" --status 202 \
        --log "$WORK/out/startup.log" -- node "$cli" serve --config "$WORK/dh.yml")"
    else
      line="$(node "$BENCH_DIR/lib/startup.mjs" --url "http://127.0.0.1:$port/hooks/deploy" --body "$WORK/push-main.json" --signature "$SIG_MAIN" --status 200 \
        --log "$WORK/out/startup.log" -- webhook -hooks "$WORK/hooks.json" -port "$port" -ip 127.0.0.1)"
    fi
    echo "start $server $line" >>"$WORK/results"
    note "  $server start $i: $line"
  done
done

# deploy_then_rss LABEL JOB DELIVERY BODY SIGNATURE TRIES SETTLE: sends one signed push to the
# deployhook on $port, waits (TRIES x 0.1 s at most) until a run of JOB has ended, then SETTLE
# seconds, and records the daemon's RSS (and peak) as "rss deployhook LABEL".
deploy_then_rss() {
  local label="$1" job="$2" delivery="$3" body="$4" sig="$5" tries="$6" settle="$7" i
  post_push "$port" "$body" "$sig" "$delivery"
  for ((i = 0; i < tries; i++)); do
    grep -qsE '"status": "(succeeded|failed)"' "$WORK"/dh/state/runs/"$job"/[0-9a-z]*.json && break
    sleep 0.1
  done
  sleep "$settle"
  echo "rss deployhook $label $(rss_mb "$pid") $(hwm_mb "$pid") $(malloc_heap_mb "$pid")" >>"$WORK/results"
  echo "rss helper $label $(child_rss_mb "$pid" 'deployhook process helper') - -" >>"$WORK/results"
}

# child_rss_mb PID NAME: VmRSS of the daemon's child whose command line starts with NAME
# ("deployhook process helper", started with the first run; "deployhook state_dir lock",
# started with the daemon), or 0 when it has none
child_rss_mb() {
  local child
  for child in $(child_pids "$1"); do
    if tr '\0' ' ' <"/proc/$child/cmdline" 2>/dev/null | grep -q "^$2"; then
      rss_mb "$child"
      return
    fi
  done
  echo 0
}

# Idle, after load, after the log capture: one daemon of each, started fresh.
for server in deployhook webhook; do
  port="$(free_port)"
  if [[ "$server" == deployhook ]]; then
    rm -rf "$WORK/dh" && mkdir -p "$WORK/dh"
    config "$port" "$WORK/dh"
    start_deployhook "$WORK/dh.yml" "$port" "$WORK/out/deployhook.log"
    pid="$DH_PID" path=/hooks/github
  else
    start_webhook "$WORK/hooks.json" "$port" "$WORK/out/webhook.log"
    pid="$WH_PID" path=/hooks/deploy
  fi
  sleep 2
  echo "rss $server idle $(rss_mb "$pid") - $(malloc_heap_mb "$pid")" >>"$WORK/results"
  if [[ "$server" == deployhook ]]; then
    echo "rss lock idle $(child_rss_mb "$pid" 'deployhook state_dir lock') - -" >>"$WORK/results"
    deploy_then_rss after-deploy app footprint-first "$WORK/push-main.json" "$SIG_MAIN" 300 8
  fi
  a="$(wrk_run "http://127.0.0.1:$port$path" "$WORK/push-other.json" "$SIG_OTHER" "$LOAD_SECONDS")"
  b="$(wrk_run "http://127.0.0.1:$port$path" "$WORK/push-main.json" "$SIG_MAIN" "$LOAD_SECONDS")"
  note "  $server load: (a) $a; (b) $b"
  sleep 2
  echo "rss $server after-load $(rss_mb "$pid") $(hwm_mb "$pid") $(malloc_heap_mb "$pid")" >>"$WORK/results"
  if [[ "$server" == deployhook ]]; then
    deploy_then_rss after-log log footprint-log "$WORK/push-log.json" "$SIG_LOG" 3000 2
  fi
  stop_started "$pid"
done

startup() { median $(awk -v s="$1" '$1 == "start" && $2 == s { print $3 }' "$WORK/results" | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"); }
rss() { awk -v s="$1" -v w="$2" -v c="$3" '$1 == "rss" && $2 == s && $3 == w { print $c }' "$WORK/results"; }
fmt() { awk -v x="$1" 'BEGIN { if (x == "n/a" || x == "") print "n/a"; else printf "%.0f", x }'; }
echo
echo "footprint: start to first accepted push, median of $STARTS starts; RSS (VmRSS, peak VmHWM) of one fresh server"
table_header "| | deployhook | adnanh/webhook | deployhook/webhook |"
dh_start="$(startup deployhook acceptedMs)"
wh_start="$(startup webhook acceptedMs)"
printf '| start to first accepted push, ms | %s | %s | %s |\n' "$(fmt "$dh_start")" "$(fmt "$wh_start")" "$(ratio "$dh_start" "$wh_start")"
printf '| start to first answer of any kind, ms | %s | %s | |\n' "$(fmt "$(startup deployhook firstAnswerMs)")" "$(fmt "$(startup webhook firstAnswerMs)")"
if [[ -n "$BASELINE_CLI" ]]; then
  base_start="$(startup baseline acceptedMs)"
  printf '| start to first accepted push, deployhook at %s, ms | %s | | %s (this build / baseline: %s) |\n' "$BENCH_BASELINE" "$(fmt "$base_start")" "$(ratio "$base_start" "$wh_start")" "$(ratio "$dh_start" "$base_start")"
fi
printf '| RSS idle, MB | %s | %s | %s |\n' "$(rss deployhook idle 4)" "$(rss webhook idle 4)" "$(ratio "$(rss deployhook idle 4)" "$(rss webhook idle 4)")"
printf '| RSS idle after one deploy (8 s after its record says it ended), MB | %s | | |\n' "$(rss deployhook after-deploy 4)"
printf "| the daemon's process helper (perl, started with the first run), RSS after that deploy, MB | %s | | |\n" "$(rss helper after-deploy 4)"
printf "| the daemon's state_dir lock (perl, started with the daemon), RSS idle, MB | %s | | |\n" "$(rss lock idle 4)"
printf '| RSS after wrk (a) and (b), %ss each (peak), MB | %s (%s) | %s (%s) | |\n' "$LOAD_SECONDS" "$(rss deployhook after-load 4)" "$(rss deployhook after-load 5)" "$(rss webhook after-load 4)" "$(rss webhook after-load 5)"
printf '| RSS after a %s-byte log capture (peak), MB | %s (%s) | | |\n' "$BYTES" "$(rss deployhook after-log 4)" "$(rss deployhook after-log 5)"
printf "| of that RSS, glibc's malloc heap: idle, after the deploy, the load, the capture, MB | %s, %s, %s, %s | | |\n" \
  "$(rss deployhook idle 6)" "$(rss deployhook after-deploy 6)" "$(rss deployhook after-load 6)" "$(rss deployhook after-log 6)"
echo
echo "raw:"
sed 's/^/  /' "$WORK/results"
