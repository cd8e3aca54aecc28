#!/usr/bin/env bash
# Masking a run log's secrets with 1 to 5,000 of them (a daemon masks every secret it knows in
# every run log): the working tree's src/log/mask-secrets.ts (A) against BENCH_REF's (B), each
# bundled with esbuild, side by side in one process (lib/mask-cost.mjs). No daemon, no disk.
#
#   BENCH_REF=<commit> bash bench/mask-cost.sh        BENCH_MASK_COUNTS="1,3,20,5000"
source "$(dirname "$0")/lib/common.sh"

[[ -n "${BENCH_REF:-}" ]] || die "BENCH_REF names the commit to compare the working tree with"
bench_workdir
git -C "$ROOT" archive "$BENCH_REF" src | tar -x -C "$WORK"
for side in tree ref; do
  src="$ROOT/src"
  [[ "$side" == ref ]] && src="$WORK/src"
  "$ROOT/node_modules/.bin/esbuild" "$src/log/mask-secrets.ts" --bundle --platform=node --format=esm --log-level=error --outfile="$WORK/mask-$side.mjs"
done
note "mask-cost: A is the working tree, B is $BENCH_REF; load average $(cut -d' ' -f1-3 /proc/loadavg)"
node "$BENCH_DIR/lib/mask-cost.mjs" "$WORK/mask-tree.mjs" "$WORK/mask-ref.mjs" "${BENCH_MASK_COUNTS:-1,3,20,5000}"
