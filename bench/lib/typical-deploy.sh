#!/bin/bash
# The deploy script people write for adnanh/webhook: fetch, reset to the pushed commit,
# deploy. adnanh/webhook passes the pushed commit as $SHA (pass-environment-to-command).
# For the benchmarks it appends a start and an end line to $EVENTS (short appends with
# O_APPEND are atomic, no flock needed): "start SHA PID TIME" and "end SHA PID TIME EXIT".
echo "start $SHA $$ $EPOCHREALTIME" >>"$EVENTS"
cd "$CHECKOUT" || exit 1
if git fetch --quiet origin && git reset --hard --quiet "$SHA" && ./deploy.sh; then rc=0; else rc=$?; fi
echo "end $SHA $$ $EPOCHREALTIME $rc" >>"$EVENTS"
exit "$rc"
