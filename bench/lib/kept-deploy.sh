#!/bin/bash
# The typical script (typical-deploy.sh) made to keep the promises deployhook keeps before a
# deploy starts: the push is on disk first (appended to $RECORD and flushed with `sync --data`,
# so a crash cannot lose a push that was answered), and every deploy starts from the commit's
# files alone (`checkout --force`, then `clean -ffdx`, as deployhook does). What it still does
# not have: one deploy at a time, a log of each deploy, a timeout, a process group stopped whole.
# Same start and end lines in $EVENTS as typical-deploy.sh.
echo "start $SHA $$ $EPOCHREALTIME" >>"$EVENTS"
if printf '%s\n' "$SHA" >>"$RECORD" && sync --data "$RECORD" && cd "$CHECKOUT" &&
  git fetch --quiet origin && git checkout --quiet --force --detach "$SHA" -- && git clean -ffdxq && ./deploy.sh; then rc=0; else rc=$?; fi
echo "end $SHA $$ $EPOCHREALTIME $rc" >>"$EVENTS"
exit "$rc"
