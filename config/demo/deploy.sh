#!/bin/sh
# The demo job's "apply" step: harmless, it only reports what it would deploy.
set -eu
echo "deploying ${DEPLOYHOOK_REPO} ${DEPLOYHOOK_REF} at ${DEPLOYHOOK_SHA}"
echo "run ${DEPLOYHOOK_RUN_ID}, delivery ${DEPLOYHOOK_DELIVERY}, pushed by ${DEPLOYHOOK_PUSHER}"
echo "checkout: $(pwd)"
echo "files in this commit: $(git ls-files | wc -l)"
echo "done: nothing was changed, this is only a demo"
