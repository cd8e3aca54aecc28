#!/bin/sh
# GIT_ASKPASS helper: git runs it with the prompt as $1 and reads the answer from stdout.
# The secret travels in the environment, never in argv or in a URL.
case "$1" in
  Username*) printf '%s\n' "$DEPLOYHOOK_GIT_USERNAME" ;;
  *) printf '%s\n' "$DEPLOYHOOK_GIT_PASSWORD" ;;
esac
