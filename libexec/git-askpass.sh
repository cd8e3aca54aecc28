#!/bin/sh
# GIT_ASKPASS helper: git runs it with the prompt as $1 ("Username for 'https://host': ",
# "Password for 'https://user@host': ") and reads the answer from stdout. It answers only
# for the scheme and host of the job's own remote, so a submodule or a redirect that points
# at another host never receives the token. The secret travels in the environment, never
# in argv or in a URL.
url=${1#*\'}
url=${url%\'*}
scheme=${url%%://*}
rest=${url#*://}
# One "user@" at most: git versions before the fix for CVE-2024-50349 show a user name with
# "@" and "/" decoded (https://x@good/@evil), which would pass for the good host.
case $rest in
  *@*@*)
    echo "deployhook: not answering a credential prompt for an address with more than one @" >&2
    exit 1
    ;;
esac
hostport=${rest#*@}
hostport=${hostport%%/*}
if [ "$scheme://$hostport" != "$DEPLOYHOOK_GIT_ORIGIN" ]; then
  echo "deployhook: not answering a credential prompt for $scheme://$hostport: the token is only for $DEPLOYHOOK_GIT_ORIGIN" >&2
  exit 1
fi
case "$1" in
  Username*) printf '%s\n' "$DEPLOYHOOK_GIT_USERNAME" ;;
  *) printf '%s\n' "$DEPLOYHOOK_GIT_PASSWORD" ;;
esac
