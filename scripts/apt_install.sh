#!/usr/bin/env bash
# apt_install.sh PACKAGE...: install Debian packages as root, waiting (bounded) for another apt or dpkg to finish.
# A second `make setup` on the same machine (another checkout, unattended-upgrades) holds apt's locks for a
# minute or two; apt-get fails at once on a held lock ("Could not get lock /var/lib/apt/lists/lock"), and
# DPkg::Lock::Timeout covers only dpkg's own lock, not the package lists' that `apt-get update` takes. So a
# held lock is waited out, every APT_LOCK_POLL seconds (default 5) for up to APT_LOCK_WAIT seconds (default
# 600), and any other error fails as it comes.
set -euo pipefail
wait_s="${APT_LOCK_WAIT:-600}"
poll_s="${APT_LOCK_POLL:-5}"
export DEBIAN_FRONTEND=noninteractive

retry() {
    local waited=0 log
    log="$(mktemp)"
    trap 'rm -f "$log"' RETURN
    while true; do
        if "$@" </dev/null >/dev/null 2>"$log"; then
            return 0
        fi
        if ! grep -q "Could not get lock\|Unable to lock\|Unable to acquire the dpkg frontend lock" "$log" \
                || [ "$waited" -ge "$wait_s" ]; then
            cat "$log" >&2
            [ "$waited" -ge "$wait_s" ] && echo "error: apt was still locked by another process after ${waited} s" \
                "(APT_LOCK_WAIT=$wait_s); run 'make setup' again once it has finished" >&2
            return 1
        fi
        [ "$waited" -eq 0 ] && echo "apt is busy (another install holds its lock): waiting up to ${wait_s} s" >&2
        sleep "$poll_s"
        waited=$((waited + poll_s))
    done
}

retry apt-get update -qq
retry apt-get -o DPkg::Lock::Timeout=60 install -y -qq --no-install-recommends "$@"
