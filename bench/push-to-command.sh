#!/usr/bin/env bash
# Push to command: the time from sending a signed push (the remote has just gained one
# commit) until the deploy command prints its first line, with a warm checkout. deployhook
# (record durably, reply 202, fetch, check out exactly the commit, clean unless the work tree
# holds only what git's index names, run) beside
# adnanh/webhook running the typical `git fetch && git reset --hard "$SHA" && ./deploy.sh`, and
# beside a second adnanh/webhook whose script also keeps what deployhook promises before a
# deploy (lib/kept-deploy.sh: the push flushed to disk first, then fetch, checkout --force and
# clean -ffdx): the first ratio is the target's, the second what deployhook costs beyond its
# promises. Rounds rotate which server goes first; each server has its own bare repository.
#
# With BENCH_P2C_GIT_TRACE=1, deployhook's git runs with a HOME whose .gitconfig turns on
# trace2 events, and the table is followed by deployhook's road (when its first git started,
# how long git itself ran, when the last one ended). Off by default: the trace writes a file
# per git process (upload-pack's too), and on a host where that is slow it added up to 0.17x
# to deployhook's side of the ratio, whose other sides run untraced.
#
# BENCH_P2C_PAUSE_MS is the pause after each round (50 ms by default): a longer one (7000)
# measures pushes that each come after a quiet spell of several seconds.
#
# With BENCH_P2C_LEAVE=1 each deploy leaves a file of its own in the checkout, as a build's
# output would, so that every deployhook sync has something for `git clean` to remove (the
# typical script's checkout keeps them; the other script's `clean` removes them).
#
#   bash bench/push-to-command.sh        BENCH_P2C_ROUNDS=20, BENCH_P2C_GIT_TRACE=0, BENCH_P2C_PAUSE_MS=50, BENCH_P2C_LEAVE=0 by default
source "$(dirname "$0")/lib/common.sh"

ROUNDS="${BENCH_P2C_ROUNDS:-20}"
GIT_TRACE_ON="${BENCH_P2C_GIT_TRACE:-0}"
[[ "$GIT_TRACE_ON" == 1 ]] || GIT_TRACE_ON=''
export DEPLOY_SECONDS=0
if [[ "${BENCH_P2C_LEAVE:-0}" == 1 ]]; then export DEPLOY_LEAVES=1; else unset DEPLOY_LEAVES; fi

bench_need webhook curl
bench_need_build
bench_workdir
bench_snapshot

make_repo "$WORK/remote.git" "$((ROUNDS + 1))"
git -C "$WORK/remote.git" rev-list --reverse main >"$WORK/commits"
C0="$(head -1 "$WORK/commits")"
set_main "$WORK/remote.git" "$C0"
cp -r "$WORK/remote.git" "$WORK/dh-remote.git"
cp -r "$WORK/remote.git" "$WORK/wh-remote.git"
cp -r "$WORK/remote.git" "$WORK/kept-remote.git"
mkdir -p "$WORK/out" "$WORK/dh" "$WORK/wh" "$WORK/kept"

# deployhook, warmed up with a deploy of the first commit
DH_PORT="$(free_port)"
DH_JOB_EXTRA="    env: { MARKS: \"$WORK/dh/marks\"${DEPLOY_LEAVES:+, DEPLOY_LEAVES: \"1\"} }" \
  dh_config "$WORK/dh.yml" "$DH_PORT" "$WORK/dh" main "$WORK/dh-remote.git" '["./deploy.sh"]'
mkdir -p "$WORK/dh-home" "$WORK/git-trace"
if [[ "$GIT_TRACE_ON" == 1 ]]; then
  printf '[trace2]\n\teventTarget = %s\n' "$WORK/git-trace" >"$WORK/dh-home/.gitconfig"
fi
HOME="$WORK/dh-home" start_deployhook "$WORK/dh.yml" "$DH_PORT" "$WORK/out/deployhook.log"
sig="$(push_body "$WORK/warm.json" bench/app refs/heads/main "$C0")"
post_push "$DH_PORT" "$WORK/warm.json" "$sig" warm
for ((i = 0; i < 300; i++)); do [[ -s "$WORK/dh/marks" ]] && break; sleep 0.1; done
[[ -s "$WORK/dh/marks" ]] || die "deployhook's warm-up deploy did not run"
sleep 1

# adnanh/webhook, with a clone made beforehand
git clone -q "$WORK/wh-remote.git" "$WORK/wh/checkout"
: >"$WORK/wh/events"
WH_PORT="$(free_port)"
wh_hooks "$WORK/hooks.json" refs/heads/main "$BENCH_DIR/lib/typical-deploy.sh" "$WORK/wh"
CHECKOUT="$WORK/wh/checkout" EVENTS="$WORK/wh/events" MARKS="$WORK/wh/marks" start_webhook "$WORK/hooks.json" "$WH_PORT" "$WORK/out/webhook.log"

# the same, with the script that keeps deployhook's promises
git clone -q "$WORK/kept-remote.git" "$WORK/kept/checkout"
: >"$WORK/kept/events"
KEPT_PORT="$(free_port)"
wh_hooks "$WORK/kept-hooks.json" refs/heads/main "$BENCH_DIR/lib/kept-deploy.sh" "$WORK/kept"
CHECKOUT="$WORK/kept/checkout" EVENTS="$WORK/kept/events" MARKS="$WORK/kept/marks" RECORD="$WORK/kept/record" \
  start_webhook "$WORK/kept-hooks.json" "$KEPT_PORT" "$WORK/out/webhook-kept.log"

note "push-to-command: $ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
node "$BENCH_DIR/lib/push-to-command.mjs" --rounds "$ROUNDS" --commits "$WORK/commits" --pause-ms "${BENCH_P2C_PAUSE_MS:-50}" \
  --deployhook "http://127.0.0.1:$DH_PORT/hooks/github,$WORK/dh-remote.git,$WORK/dh/marks,$WORK/dh/state/runs/app" \
  --webhook "http://127.0.0.1:$WH_PORT/hooks/deploy,$WORK/wh-remote.git,$WORK/wh/marks,$WORK/wh/events" \
  --kept "http://127.0.0.1:$KEPT_PORT/hooks/deploy,$WORK/kept-remote.git,$WORK/kept/marks,$WORK/kept/events" \
  ${GIT_TRACE_ON:+--git-trace "$WORK/git-trace"} >"$WORK/results"

# col SERVER KEY: KEY of each of SERVER's pushes, one a line
col() {
  node -e 'const [file, server, key] = process.argv.slice(1);
    for (const line of require("fs").readFileSync(file, "utf8").trim().split("\n")) { const r = JSON.parse(line); if (r.server === server) console.log(r[key]); }' "$WORK/results" "$1" "$2"
}
p90() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { i = int(NR * 0.9 + 0.999); printf "%.1f\n", v[i] }'; }
fmt() { awk -v x="$1" 'BEGIN { printf "%.1f", x }'; }

dh_first="$(median $(col deployhook firstLineMs))"
wh_first="$(median $(col webhook firstLineMs))"
kept_first="$(median $(col kept firstLineMs))"
# row SERVER LABEL RATIOS: one line of the table
row() {
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$(fmt "$(median $(col "$1" firstLineMs))")" "$(p90 $(col "$1" firstLineMs))" \
    "$(fmt "$(printf '%s\n' $(col "$1" firstLineMs) | sort -g | head -1)")" "$(fmt "$(median $(col "$1" ackMs))")" "$(fmt "$(median $(col "$1" startedMs))")" "$3"
}
echo
echo "push-to-command: signed push -> first output line of the deploy command, warm checkout, remote gained one commit; $ROUNDS rounds each, interleaved$([[ "${BENCH_P2C_PAUSE_MS:-50}" == 50 ]] || echo ", ${BENCH_P2C_PAUSE_MS} ms between rounds")"
table_header "| server | first line, median ms | p90 ms | min ms | reply, median ms | run/script started, median ms | deployhook/this |"
row deployhook deployhook ''
row webhook 'adnanh/webhook + typical script' "$(ratio "$dh_first" "$wh_first")"
row kept 'adnanh/webhook + script keeping deployhook'"'"'s promises' "$(ratio "$dh_first" "$kept_first")"
echo
if [[ -n "$GIT_TRACE_ON" ]]; then
  echo "deployhook's road, median ms after sending: run started $(fmt "$(median $(col deployhook startedMs))"), first of $(median $(col deployhook gits) | cut -d. -f1) git processes started $(fmt "$(median $(col deployhook firstGitMs))"), git itself ran $(fmt "$(median $(col deployhook inGitMs))") in all, last git ended $(fmt "$(median $(col deployhook lastGitEndMs))"), first line $(fmt "$dh_first")"
else
  echo "deployhook's road: not traced (BENCH_P2C_GIT_TRACE=0)"
fi
echo
echo "per push:"
sed 's/^/  /' "$WORK/results"
