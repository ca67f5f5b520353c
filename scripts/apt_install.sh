#!/usr/bin/env bash
# apt_install.sh PACKAGE...: install Debian packages as root, waiting (bounded) for another apt or dpkg to finish.
# A second `make setup` on the same machine (another checkout, unattended-upgrades) holds apt's locks for a
# minute or two; apt-get fails at once on a held lock ("Could not get lock /var/lib/apt/lists/lock", or
# /var/lib/dpkg/lock-frontend), and DPkg::Lock::Timeout covers only dpkg's lock, not the package lists' that
# `apt-get update` takes. So each step is retried while its error is a held lock, every APT_LOCK_POLL seconds
# (default 5) for up to APT_LOCK_WAIT seconds (default 600); any other error fails as it comes.
set -euo pipefail
wait_s="${APT_LOCK_WAIT:-600}"
poll_s="${APT_LOCK_POLL:-5}"
export DEBIAN_FRONTEND=noninteractive

retry() {
    local waited=0 log
    log="$(mktemp)"
    trap 'rm -f "$log"' RETURN
    until "$@" </dev/null >/dev/null 2>"$log"; do
        if ! grep -q "Could not get lock" "$log"; then
            cat "$log" >&2
            return 1
        fi
        if [ "$waited" -ge "$wait_s" ]; then
            cat "$log" >&2
            echo "error: apt was still locked by another process after ${waited} s (APT_LOCK_WAIT=$wait_s);" \
                "run 'make setup' again once it has finished" >&2
            return 1
        fi
        [ "$waited" -eq 0 ] && echo "apt is busy (another install holds its lock): waiting up to ${wait_s} s" >&2
        sleep "$poll_s"
        waited=$((waited + poll_s))
    done
}

retry apt-get update -qq
retry apt-get install -y -qq --no-install-recommends "$@"
