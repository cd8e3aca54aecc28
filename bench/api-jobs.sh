#!/usr/bin/env bash
# The operator's view with many jobs that have deployed for a while: GET /api/jobs (what the
# status page asks every 3 s and `deployhook jobs` shows) with JOBS jobs of RUNS_PER_JOB kept
# runs each (seeded by lib/seed-runs.mjs, loaded at start), one request at a time for
# SECONDS (wrk -t1 -c1), and meanwhile /healthz one at a time (wrk -t1 -c1): how long the
# daemon's one thread is held by the view. Then GET /api/runs?limit=20 (the status page's
# newest runs of all jobs, also every 3 s) the same way. With BENCH_COMPARE=<commit> that commit's build
# alternates with the work tree's dist/, round by round. Not part of run-all.sh.
#
#   bash bench/api-jobs.sh        BENCH_API_JOBS=2000 BENCH_API_RUNS=20 BENCH_ROUNDS=2 BENCH_SECONDS=5 BENCH_COMPARE=<commit>
source "$(dirname "$0")/lib/common.sh"

JOBS="${BENCH_API_JOBS:-2000}"
PER_JOB="${BENCH_API_RUNS:-20}"
ROUNDS="${BENCH_ROUNDS:-2}"
SECONDS_PER_RUN="${BENCH_SECONDS:-5}"

bench_need wrk curl
bench_need_build
bench_workdir
bench_snapshot
bench_builds

make_repo "$WORK/remote.git" 1
TOKEN="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$TOKEN" >"$WORK/token"
note "api-jobs: $JOBS jobs x $PER_JOB runs, $ROUNDS rounds of ${SECONDS_PER_RUN}s per build; load average $(cut -d' ' -f1-3 /proc/loadavg)"

table_header "| build | /api/jobs p50 | /api/jobs p99 | /api/jobs req/s | /healthz meanwhile, p99 | reply bytes | /api/runs?limit=20 p50 | p99 |"
for ((round = 1; round <= ROUNDS; round++)); do
  for entry in "${BUILDS[@]}"; do
    name="${entry%%:*}"
    CLI="${entry#*:}"
    port="$(free_port)"
    rm -rf "$WORK/dh" && mkdir -p "$WORK/dh"
    node "$BENCH_DIR/lib/gen-config.mjs" --out "$WORK/dh.yml" --jobs "$JOBS" --port "$port" --dir "$WORK/dh" --remote "$WORK/remote.git"
    printf 'api:\n  token_file: %s\n' "$WORK/token" >>"$WORK/dh.yml"
    node "$BENCH_DIR/lib/seed-runs.mjs" --state "$WORK/dh/state" --jobs "$JOBS" --runs "$PER_JOB"
    start_deployhook "$WORK/dh.yml" "$port" "$WORK/dh.log"
    bytes="$(curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/api/jobs" | wc -c)"
    wrk -t1 -c1 -d "${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:$port/healthz" >"$WORK/healthz.txt" &
    health=$!
    wrk -t1 -c1 -d "${SECONDS_PER_RUN}s" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/api/jobs" >"$WORK/jobs.txt"
    wait "$health"
    wrk -t1 -c1 -d "${SECONDS_PER_RUN}s" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/api/runs?limit=20" >"$WORK/runs.txt"
    stop_started "$DH_PID"
    p50="$(awk '$1 == "50%" { print $2 }' "$WORK/jobs.txt")"
    p99="$(awk '$1 == "99%" { print $2 }' "$WORK/jobs.txt")"
    rate="$(awk '/^Requests\/sec:/ { print $2 }' "$WORK/jobs.txt")"
    hp99="$(awk '$1 == "99%" { print $2 }' "$WORK/healthz.txt")"
    rp50="$(awk '$1 == "50%" { print $2 }' "$WORK/runs.txt")"
    rp99="$(awk '$1 == "99%" { print $2 }' "$WORK/runs.txt")"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$p50" "$p99" "$rate" "$hp99" "$bytes" "$rp50" "$rp99"
  done
done
