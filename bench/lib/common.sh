# Shared helpers for the benchmark scripts. Sourced, not run.
# shellcheck shell=bash

set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
CLI="$ROOT/dist/cli.js"
EXAMPLES="$ROOT/node_modules/@octokit/webhooks-examples/api.github.com/index.json"

# Every secret comes from one environment variable, as a real deployment would have it.
export BENCH_SECRET="${BENCH_SECRET:-bench-secret-0123456789abcdef}"
# The log line log-capture.sh's command repeats (`yes`); mask-cost.sh masks it too.
export BENCH_LOG_LINE="${BENCH_LOG_LINE:-2026-11-23T12:00:00.000Z INFO  deploy: TASK [nginx : ensure packages] ok: [web-042] => (item=nginx) changed=false}"
# The daemon's own log level; `info` is the shipped default (one line per delivery).
export DEPLOYHOOK_LOG_LEVEL="${DEPLOYHOOK_LOG_LEVEL:-info}"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.test GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.test
export GIT_CONFIG_NOSYSTEM=1

note() { printf '%s\n' "$*" >&2; }
die() { note "bench: $*"; exit 1; }

# Installs what is missing from Debian: bench_need webhook wrk hyperfine time
bench_need() {
  local missing=() pkg bin
  for pkg in "$@"; do
    case "$pkg" in
      time) bin=/usr/bin/time ;;
      *) bin="$pkg" ;;
    esac
    command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0
  note "installing from Debian: ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

bench_need_build() {
  [[ -n "${BENCH_REF:-}" || -f "$ROOT/dist/cli.js" ]] || die "expected $ROOT/dist/cli.js: run \`npm run build\` first"
  [[ -f "$EXAMPLES" ]] || die "expected $EXAMPLES: run \`npm ci\` first"
}

# Runs the daemon from a copy of dist/ taken now, so that a rebuild during the benchmark
# (other work on the same tree) cannot change the program half-way. With BENCH_REF (a
# commit), builds that commit's src/ in the scratch folder instead (git archive: the work
# tree is left alone). Needs bench_workdir.
bench_snapshot() {
  local app="$WORK/app"
  mkdir -p "$app"
  if [[ -n "${BENCH_REF:-}" ]]; then
    bench_build_ref "$BENCH_REF" "$app"
  else
    cp -r "$ROOT/dist" "$ROOT/libexec" "$ROOT/package.json" "$app/"
    ln -s "$ROOT/node_modules" "$app/node_modules"
  fi
  CLI="$app/dist/cli.js"
  node "$CLI" --help >/dev/null || die "the copy of dist/ does not load (a build was running?): try again"
}

# bench_builds: BUILDS, the builds a script alternates as "name:cli.js": the snapshot of the
# work tree's dist/ and, with BENCH_COMPARE (a commit), that commit built. Needs bench_snapshot.
bench_builds() {
  BUILDS=("work tree:$CLI")
  if [[ -n "${BENCH_COMPARE:-}" ]]; then
    bench_build_ref "$BENCH_COMPARE" "$WORK/compare"
    BUILDS+=("$BENCH_COMPARE:$WORK/compare/dist/cli.js")
  fi
}

# bench_build_ref COMMIT DIR: that commit's src/ built in DIR (git archive: the work tree is left alone).
bench_build_ref() {
  local ref="$1" app="$2"
  mkdir -p "$app"
  git -C "$ROOT" archive "$ref" | tar -x -C "$app"
  ln -s "$ROOT/node_modules" "$app/node_modules"
  # That commit's own build (tsc before the bundle, esbuild since).
  (cd "$app" && npm run --silent build >/dev/null) || die "could not build $ref"
}

# A scratch folder on the same disk as a real state_dir would be (fsync is measured).
BENCH_PIDS=()
bench_workdir() {
  WORK="$(mktemp -d "${BENCH_TMP:-${TMPDIR:-/tmp}}/deployhook-bench.XXXXXX")"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do stop_pid "$pid"; done
  if [[ -n "${WORK:-}" && -d "$WORK" ]]; then
    if [[ -n "${BENCH_KEEP:-}" ]]; then note "kept $WORK"; else rm -rf "$WORK"; fi
  fi
}

# Stops one process this script started, by its pid; SIGKILL after 10 s.
stop_pid() {
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

forget_pid() {
  local keep=() p
  for p in "${BENCH_PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  BENCH_PIDS=("${keep[@]}")
}

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Waits until URL answers 200 (GET); fails after $2 seconds (default 30).
wait_http() {
  local url="$1" limit="${2:-30}" i
  for ((i = 0; i < limit * 50; i++)); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)" == 200 ]] && return 0
    sleep 0.02
  done
  die "nothing answered 200 at $url within ${limit}s"
}

# Waits until something accepts TCP connections on 127.0.0.1:PORT.
wait_port() {
  local port="$1" limit="${2:-30}" i
  for ((i = 0; i < limit * 50; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.02
  done
  die "nothing listened on port $port within ${limit}s"
}

# start_deployhook CONFIG PORT LOG: the daemon in the background; sets DH_PID.
# Extra node flags (e.g. --cpu-prof) come from BENCH_NODE_FLAGS.
start_deployhook() {
  local config="$1" port="$2" log="$3"
  # shellcheck disable=SC2086
  node ${BENCH_NODE_FLAGS:-} "$CLI" serve --config "$config" >"$log" 2>&1 &
  DH_PID=$!
  BENCH_PIDS+=("$DH_PID")
  wait_http "http://127.0.0.1:$port/healthz" 60
}

# start_webhook HOOKS PORT LOG: adnanh/webhook in the background; sets WH_PID.
start_webhook() {
  local hooks="$1" port="$2" log="$3"
  webhook -hooks "$hooks" -port "$port" -ip 127.0.0.1 >"$log" 2>&1 &
  WH_PID=$!
  BENCH_PIDS+=("$WH_PID")
  wait_port "$port" 30
}

# start_floor PORT REF JOURNAL LOG: lib/bare-hook.mjs, the floor for a Node receiver, with an
# empty JOURNAL (it appends case (b)'s pushes there); sets FLOOR_PID.
start_floor() {
  local port="$1" ref="$2" journal="$3" log="$4"
  rm -f "$journal"
  node "$BENCH_DIR/lib/bare-hook.mjs" "$port" "$ref" "$journal" >"$log" 2>&1 &
  FLOOR_PID=$!
  BENCH_PIDS+=("$FLOOR_PID")
  wait_port "$port" 30
}

stop_started() {
  stop_pid "$1"
  forget_pid "$1"
}

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# cpu_ticks STAT_FILE: utime + stime in clock ticks, of a process (/proc/PID/stat, all its
# threads) or of one thread (/proc/PID/task/TID/stat), read after the name, which may hold spaces
cpu_ticks() { sed 's/^.*) //' "$1" | awk '{ print $12 + $13 }'; }
# child_pids PID: the pids of PID's children, one a line, from /proc/N/stat's fields after the
# name, which may hold spaces (the process helper's is "deployhook proc"). A process may end
# between the listing and the read: cat goes on past it.
child_pids() {
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | sed 's/^\([0-9]*\) (.*) /\1 /' | awk -v p="$1" '$3 == p { print $1 }'
}
hwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# The resident part of glibc's main malloc heap (the [heap] mapping): C++ allocations, and the
# memory of buffers node has freed but glibc keeps (it returns only the heap's free top).
malloc_heap_mb() { awk '/\[heap\]$/ { on = 1; next } on && /^Rss:/ { printf "%.1f", $2 / 1024; exit }' "/proc/$1/smaps"; }

# median of the numbers given as arguments
median() {
  (($# > 0)) || { echo n/a; return; }
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ratio A B with 2 decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f\n", a / b }'; }

# A bare repository with N commits on main, made by git fast-import in one pass. Each commit
# changes counter.txt and has deploy.sh, the "deploy" both servers run: its first line of
# output is appended, with the time, to $MARKS when set; with $DEPLOY_LEAVES set it leaves a
# file in the checkout (deploy-PID.out), as a build's output would; then it sleeps $DEPLOY_SECONDS.
# make_repo BARE N; `git -C BARE rev-list --reverse main` lists the commits, oldest first.
make_repo() {
  local bare="$1" count="$2"
  git init -q --bare --initial-branch=main "$bare"
  awk -v n="$count" 'BEGIN {
    script = "#!/bin/bash\n" \
      "line=\"deploying $(<counter.txt)\"\n" \
      "echo \"$line\"\n" \
      "[[ -n \"${MARKS:-}\" ]] && echo \"$EPOCHREALTIME $line\" >>\"$MARKS\"\n" \
      "[[ -n \"${DEPLOY_LEAVES:-}\" ]] && echo \"$line\" >\"deploy-$$.out\"\n" \
      "sleep \"${DEPLOY_SECONDS:-0}\"\n"
    printf "blob\nmark :1\ndata %d\n%s\n", length(script), script
    for (i = 1; i <= n; i++) {
      content = "commit " i "\n"
      printf "blob\nmark :%d\ndata %d\n%s\n", 2 * i, length(content), content
      printf "commit refs/heads/main\nmark :%d\ncommitter bench <bench@example.test> %d +0000\ndata %d\n%s", 2 * i + 1, 1700000000 + i, length(content), content
      if (i > 1) printf "from :%d\n", 2 * i - 1
      printf "M 100644 :%d counter.txt\nM 100755 :1 deploy.sh\n\n", 2 * i
    }
  }' | git -C "$bare" fast-import --quiet
}

# Points the bare repository's main at COMMIT, as a push would: set_main BARE COMMIT
set_main() {
  printf '%s\n' "$2" >"$1/refs/heads/main.bench-tmp"
  mv -f "$1/refs/heads/main.bench-tmp" "$1/refs/heads/main"
}

# Signs and writes a GitHub push body: push_body OUT REPO REF AFTER [BEFORE]; prints the signature header value.
push_body() {
  node "$BENCH_DIR/lib/payload.mjs" --out "$1" --repo "$2" --ref "$3" --after "$4" ${5:+--before "$5"}
}

# post_push PORT BODY_FILE SIGNATURE DELIVERY_ID: one signed GitHub push to deployhook on
# 127.0.0.1:PORT, as push_body made it; the reply is dropped.
post_push() {
  curl -s -o /dev/null -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $4" \
    -H "X-Hub-Signature-256: $3" --data-binary "@$2" "http://127.0.0.1:$1/hooks/github"
}

# wrk_run URL BODY SIGNATURE SECONDS [CONNECTIONS] [THREADS]: prints one "BENCH k=v ..." line.
wrk_run() {
  local url="$1" body="$2" sig="$3" seconds="$4" conns="${5:-16}" threads="${6:-2}"
  BENCH_BODY="$body" BENCH_SIGNATURE="$sig" BENCH_NONCE="$RANDOM$RANDOM" \
    wrk -t "$threads" -c "$conns" -d "${seconds}s" --timeout 10s --latency -s "$BENCH_DIR/lib/signed-push.lua" "$url" | grep '^BENCH '
}

# wrk_paced URL BODY SIGNATURE SECONDS RATE [CONNECTIONS]: like wrk_run, but RATE req/s in
# all, paced evenly by lib/signed-push.lua over wrk's 2 threads (256 connections by default, so
# that a stall of up to 256 ms at 1,000 req/s still sends on schedule).
wrk_paced() {
  local url="$1" body="$2" sig="$3" seconds="$4" rate="$5" conns="${6:-256}"
  BENCH_SLOT_MS="$(awk -v r="$rate" 'BEGIN { printf "%.6f", 2000 / r }')" wrk_run "$url" "$body" "$sig" "$seconds" "$conns" 2
}

# field NAME LINE: the value of NAME=... in a "BENCH k=v" line
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }

# Prints a header line and a rule for a table.
table_header() {
  printf '%s\n' "$1"
  printf '%s\n' "$(sed 's/[^|]/-/g' <<<"$1")"
}

# dh_config FILE PORT DIR BRANCH REMOTE COMMAND_JSON [EXTRA_TOP_LEVEL_YAML]: a one-job config
# (job `app`, repository bench/app) with its state and logs under DIR. $DH_JOB_EXTRA (YAML
# lines indented by 4) is added to the job.
dh_config() {
  local file="$1" port="$2" dir="$3" branch="$4" remote="$5" command="$6" extra="${7:-}"
  cat >"$file" <<YAML
listen: "127.0.0.1:$port"
state_dir: $dir/state
log_dir: $dir/log
$extra
jobs:
  - name: app
    provider: github
    repo: bench/app
    branches: ["$branch"]
    secret_env: BENCH_SECRET
    remote: $remote
    command: $command
${DH_JOB_EXTRA:-}
YAML
}

# wh_hooks FILE REF COMMAND CWD: an adnanh/webhook hook `deploy` that runs COMMAND for a
# push signed with $BENCH_SECRET, event push, on REF; the pushed commit is passed as $SHA.
wh_hooks() {
  local file="$1" ref="$2" command="$3" cwd="$4"
  cat >"$file" <<JSON
[
  {
    "id": "deploy",
    "execute-command": "$command",
    "command-working-directory": "$cwd",
    "pass-environment-to-command": [{ "source": "payload", "name": "after", "envname": "SHA" }],
    "trigger-rule": {
      "and": [
        { "match": { "type": "payload-hmac-sha256", "secret": "$BENCH_SECRET", "parameter": { "source": "header", "name": "X-Hub-Signature-256" } } },
        { "match": { "type": "value", "value": "push", "parameter": { "source": "header", "name": "X-GitHub-Event" } } },
        { "match": { "type": "value", "value": "$ref", "parameter": { "source": "payload", "name": "ref" } } }
      ]
    }
  }
]
JSON
}
