#!/usr/bin/env bash
# Log capture: a command that writes 1 GB of log lines to stdout, run by deployhook (output
# masked for secrets, capped, written to the run log) and, for comparison, redirected straight
# to a file. The command times itself ($EPOCHREALTIME before and after, printed last), so both
# figures are the same measurement. deployhook runs it with the default max_log_bytes (100 MiB
# kept: the first and the last 50 MiB) and with a cap above 1 GB (everything kept). A bare
# Node program that only pipes the output to a file runs too, through node's socket pairs,
# through pipes as deployhook makes them, through such pipes widened to 1 MiB (as deployhook
# widens a chatty command's), and through such pipes read by a thread each with blocking reads
# and synchronous writes (as deployhook's capture thread reads a chatty command's): what any
# Node daemon can reach. BENCH_ALSO_REFS (commits, space
# separated) runs those builds too, with the default cap, in each round beside the current one.
# Then /healthz latency (wrk -t1 -c2) on an idle daemon and while such a run is going on.
# BENCH_EXTRA_SECRETS=N gives the daemon N more jobs, each with a webhook secret of its own (40
# hex characters), as a daemon with many jobs has: every run log masks every secret it knows.
#
#   bash bench/log-capture.sh        BENCH_LOG_BYTES=1000000000 BENCH_RUNS=3 BENCH_ALSO_REFS="" BENCH_EXTRA_SECRETS=0
source "$(dirname "$0")/lib/common.sh"

BYTES="${BENCH_LOG_BYTES:-1000000000}"
# How the tables name the size: "1 GB", "50 MB".
SIZE="$(awk -v b="$BYTES" 'BEGIN { if (b >= 1e9) printf "%g GB", b / 1e9; else printf "%g MB", b / 1e6 }')"
RUNS="${BENCH_RUNS:-3}"
EXTRA_SECRETS="${BENCH_EXTRA_SECRETS:-0}"

bench_need wrk curl
bench_need_build
bench_workdir
bench_snapshot
ALSO_REFS=""
for ref in ${BENCH_ALSO_REFS:-}; do
  short="$(git -C "$ROOT" rev-parse --short "$ref")" || die "not a commit: $ref"
  bench_build_ref "$short" "$WORK/ref-$short"
  ALSO_REFS+=" $short"
done

LINE="$BENCH_LOG_LINE"
# shellcheck disable=SC2016 # expanded by the command's own bash
SCRIPT='s=$EPOCHREALTIME; yes "$LINE" | head -c "$BYTES"; echo "bench-elapsed $s $EPOCHREALTIME" >&2'
make_repo "$WORK/remote.git" 1
SHA="$(git -C "$WORK/remote.git" rev-parse main)"
mkdir -p "$WORK/out"

# elapsed_of FILE: seconds between the two times on the file's bench-elapsed line
# (stdout and stderr are separate pipes: the line can land up to a few pipe buffers before the end)
elapsed_of() { tail -c 4000000 "$1" | sed -n 's/.*bench-elapsed \([0-9.]*\) \([0-9.]*\).*/\1 \2/p' | tail -1 | awk '{ printf "%.3f\n", $2 - $1 }'; }
mbps() { awk -v b="$BYTES" -v s="$1" 'BEGIN { if (s + 0 > 0) printf "%.0f\n", b / s / 1e6; else print "n/a" }'; }
# command_end FILE: the time the command's pipeline ended ($EPOCHREALTIME), in ms since the epoch
command_end() { tail -c 4000000 "$1" | sed -n 's/.*bench-elapsed [0-9.]* \([0-9.]*\).*/\1/p' | tail -1 | awk '{ printf "%.0f\n", $1 * 1000 }'; }

# plain_result NAME RUN FILE [FIELDS]: records a run that wrote the command's output to FILE, then removes FILE
plain_result() {
  local s
  s="$(elapsed_of "$3")"
  echo "$1 $2 seconds=$s mbps=$(mbps "$s") file_bytes=$(stat -c %s "$3")${4:+ $4}" >>"$WORK/results"
  rm -f "$3"
}

# cpu_seconds PID: the CPU time (user and system, all its threads) the process has used so far
cpu_seconds() { awk -v t="$(cpu_ticks "/proc/$1/stat")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", t / hz }'; }

run_direct() {
  LINE="$LINE" BYTES="$BYTES" bash -c "$SCRIPT" >"$WORK/direct.log" 2>&1
  plain_result direct "$1" "$WORK/direct.log"
}

# run_node RUN [socketpair|fifo|fifo-wide|thread]: the same command kept by the smallest Node program that
# does it (the floor for Node), its output through node's socket pairs or through pipes as deployhook makes them
run_node() {
  local mode="${2:-socketpair}"
  rm -f "$WORK/node.cpu"
  LINE="$LINE" BYTES="$BYTES" CAPTURE_CPU_FILE="$WORK/node.cpu" node "$BENCH_DIR/lib/node-capture.mjs" "$WORK/node.log" "$SCRIPT" "$mode"
  plain_result "node-$mode" "$1" "$WORK/node.log" "cpu_s=$(awk '{ printf "%.2f", $1 + $2 }' "$WORK/node.cpu")"
}

# extra_jobs: the YAML of $EXTRA_SECRETS more jobs (each a list item of `jobs`), with their secrets' files
extra_jobs() {
  local i
  for ((i = 1; i <= EXTRA_SECRETS; i++)); do
    [[ -s "$WORK/secret-$i" ]] || head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/secret-$i"
    printf '\n  - name: other-%s\n    provider: github\n    repo: bench/other-%s\n    branches: [main]\n    secret_file: %s\n    remote: %s\n    command: ["true"]' \
      "$i" "$i" "$WORK/secret-$i" "$WORK/remote.git"
  done
}

# start_dh NAME CAP: a fresh daemon whose job `app` runs the command; sets PORT, DIR
start_dh() {
  PORT="$(free_port)"
  DIR="$WORK/dh-$1"
  rm -rf "$DIR"
  mkdir -p "$DIR"
  local command
  command="$(node -e 'console.log(JSON.stringify(["bash", "-c", process.argv[1]]))' "$SCRIPT")"
  DH_JOB_EXTRA="    env: { LINE: \"$LINE\", BYTES: \"$BYTES\" }" \
    dh_config "$WORK/dh.yml" "$PORT" "$DIR" main "$WORK/remote.git" "$command" "max_log_bytes: $2"
  # Appended (the jobs list ends the file): thousands of jobs are too long for one variable of the environment.
  extra_jobs >>"$WORK/dh.yml"
  start_deployhook "$WORK/dh.yml" "$PORT" "$WORK/out/deployhook-$1.log"
}

# push_and_wait: one push, then waits for its run to end; prints the run record's file
push_and_wait() {
  local reply id i record
  reply="$(curl -s -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: log-$RANDOM$RANDOM" \
    -H "X-Hub-Signature-256: $SIG" --data-binary "@$WORK/push.json" "http://127.0.0.1:$PORT/hooks/github")"
  id="$(sed -n 's/.*"id":"\([0-9a-z]*\)".*/\1/p' <<<"$reply")"
  [[ -n "$id" ]] || die "expected a 202 with a run id, got: $reply"
  record="$DIR/state/runs/app/$id.json"
  for ((i = 0; i < 3000; i++)); do
    grep -qsE '"status": "(succeeded|failed|timed_out|cancelled|interrupted)"' "$record" && break
    sleep 0.1
  done
  echo "$record"
}

run_deployhook() {
  local name="$1" cap="$2" run="$3" record log s dur cpu_before cpu
  start_dh "$name-$run" "$cap"
  cpu_before="$(cpu_seconds "$DH_PID")"
  record="$(push_and_wait)"
  # The daemon's CPU for the run (its threads; the command runs under the process helper)
  cpu="$(awk -v a="$cpu_before" -v b="$(cpu_seconds "$DH_PID")" 'BEGIN { printf "%.2f", b - a }')"
  log="$(sed -n 's/.*"logPath": "\(.*\)".*/\1/p' "$record")"
  s="$(elapsed_of "$log")"
  dur="$(sed -n 's/.*"durationMs": \([0-9]*\).*/\1/p' "$record")"
  # after_ms: from the command's end to the run's end (draining, closing the log, saving the record)
  local finished after
  finished="$(node -e 'console.log(Date.parse(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).finishedAt))' "$record")"
  after=$((finished - $(command_end "$log")))
  echo "deployhook-$name $run seconds=$s mbps=$(mbps "$s") run_ms=$dur after_ms=$after run_mbps=$(mbps "$(awk -v d="$dur" 'BEGIN { print d / 1000 }')") status=$(sed -n 's/.*"status": "\([a-z_]*\)".*/\1/p' "$record") log_bytes=$(stat -c %s "$log") cpu_s=$cpu rss_mb=$(rss_mb "$DH_PID") hwm_mb=$(hwm_mb "$DH_PID")" >>"$WORK/results"
  note "  $(tail -1 "$WORK/results")"
  stop_started "$DH_PID"
  rm -rf "$DIR"
}

note "log-capture: $BYTES bytes, $RUNS runs each, interleaved, $EXTRA_SECRETS more jobs' secrets; load average $(cut -d' ' -f1-3 /proc/loadavg)"
SIG="$(push_body "$WORK/push.json" bench/app refs/heads/main "$SHA")"
: >"$WORK/results"
for ((run = 1; run <= RUNS; run++)); do
  run_direct "$run"
  note "  $(tail -1 "$WORK/results")"
  run_node "$run" socketpair
  note "  $(tail -1 "$WORK/results")"
  run_node "$run" fifo
  note "  $(tail -1 "$WORK/results")"
  run_node "$run" fifo-wide
  note "  $(tail -1 "$WORK/results")"
  run_node "$run" thread
  note "  $(tail -1 "$WORK/results")"
  run_deployhook capped 104857600 "$run"
  for ref in $ALSO_REFS; do
    CLI="$WORK/ref-$ref/dist/cli.js" run_deployhook "capped-at-$ref" 104857600 "$run"
  done
  run_deployhook whole $((BYTES + 100000000)) "$run"
done

# /healthz: idle, then while a run captures the output (wrk runs for most of the run's time).
start_dh healthz 104857600
healthz() { BENCH_BODY=/dev/null wrk -t 1 -c 2 -d "${1}s" --latency -s "$BENCH_DIR/lib/healthz.lua" "http://127.0.0.1:$PORT/healthz" | grep '^BENCH '; }
idle="$(healthz 3)"
busy_seconds="$(awk -v m="$(median $(awk '$1 == "deployhook-capped"' "$WORK/results" | sed -n 's/.*run_ms=\([0-9]*\).*/\1/p'))" 'BEGIN { s = int(m / 1000 * 0.7); print (s < 2 ? 2 : s) }')"
post_push "$PORT" "$WORK/push.json" "$SIG" "log-busy-$RANDOM"
sleep 0.3
busy="$(healthz "$busy_seconds")"
for ((i = 0; i < 3000; i++)); do grep -qs '"status": "succeeded"' "$DIR"/state/runs/app/*.json && break; sleep 0.1; done
record="$(grep -ls '"status": "succeeded"' "$DIR"/state/runs/app/[0-9a-z]*.json | grep -v event | head -1)"
busy_log="$(sed -n 's/.*"logPath": "\(.*\)".*/\1/p' "$record")"
busy_s="$(elapsed_of "$busy_log")"
after_rss="$(rss_mb "$DH_PID")"
after_hwm="$(hwm_mb "$DH_PID")"
stop_started "$DH_PID"

med() { median $(awk -v n="$1" '$1 == n' "$WORK/results" | sed -n "s/.* $2=\([^ ]*\).*/\1/p"); }
direct_mbps="$(med direct mbps)"
echo
echo "log-capture: $BYTES bytes of ${#LINE}-character lines from \`yes | head -c\`, self-timed; median of $RUNS runs, interleaved; the daemon knows $((EXTRA_SECRETS + 1)) secret(s)"
table_header "| how | MB/s (command) | seconds | whole run MB/s (record) | log file bytes | CPU s (the reader) | vs direct |"
printf '| redirected to a file | %s | %s | | %s | | 1.00 |\n' "$direct_mbps" "$(med direct seconds)" "$(med direct file_bytes)"
# row LABEL NAME BYTES_FIELD [RUN_FIELD]: a line of the table from NAME's medians (RUN_FIELD, the
# whole run's MB/s from the run record, only for deployhook's runs)
row() {
  local run=' '
  [[ -z "${4:-}" ]] || run=" $(med "$2" "$4") "
  printf '| %s | %s | %s |%s| %s | %s | %s |\n' "$1" "$(med "$2" mbps)" "$(med "$2" seconds)" "$run" "$(med "$2" "$3")" "$(med "$2" cpu_s)" "$(ratio "$(med "$2" mbps)" "$direct_mbps")"
}
row "bare Node: spawn, socket pairs (node's stdio) to a WriteStream (bench/lib/node-capture.mjs)" node-socketpair file_bytes
row "bare Node: spawn, pipes (as deployhook reads) to a WriteStream (node-capture.mjs ... fifo)" node-fifo file_bytes
row "bare Node: the same pipes, widened to 1 MiB (node-capture.mjs ... fifo-wide)" node-fifo-wide file_bytes
row "bare Node: widened pipes read by a thread each, blocking reads, synchronous writes (node-capture.mjs ... thread)" node-thread file_bytes
row "deployhook, max_log_bytes 100 MiB (default)" deployhook-capped log_bytes run_mbps
row "deployhook, max_log_bytes above $SIZE" deployhook-whole log_bytes run_mbps
for ref in $ALSO_REFS; do
  row "deployhook at $ref, max_log_bytes 100 MiB" "deployhook-capped-at-$ref" log_bytes run_mbps
done
echo
echo "/healthz, wrk -t1 -c2 --latency:"
table_header "| when | req/s | p50 ms | p99 ms | max ms |"
printf '| idle | %s | %s | %s | %s |\n' "$(field rps "$idle")" "$(field p50_ms "$idle")" "$(field p99_ms "$idle")" "$(field max_ms "$idle")"
printf '| during a run of %s, max_log_bytes 100 MiB (%ss of it) | %s | %s | %s | %s |\n' "$SIZE" "$busy_seconds" "$(field rps "$busy")" "$(field p50_ms "$busy")" "$(field p99_ms "$busy")" "$(field max_ms "$busy")"
echo "(that run, slowed by wrk beside it: $(mbps "$busy_s") MB/s; daemon RSS after it $after_rss MB, peak $after_hwm MB)"
echo
echo "per run:"
sed 's/^/  /' "$WORK/results"
