#!/usr/bin/env bash
# `make check-latest` (not in CI): would the newest versions that setup.py allows still work?
# Builds a throwaway venv with them (CPU torch pinned as in constraints.txt, nothing from the
# lock), runs the suite there, and prints what changed against the lock and what broke.
set -uo pipefail
LOCK=${1:-requirements.lock}
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/harmonyset-latest-XXXXXX)
VENV=$WORK/venv
trap 'rm -rf "$WORK"' EXIT
cd "$REPO"
python3 -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check"
$PIP install -q torch==2.13.0 || exit 2
# The package from a copy of the checkout, so the editable install does not touch this tree.
git ls-files -z | tar --null -T - -cf - | (mkdir -p "$WORK/src" && cd "$WORK/src" && tar xf -)
$PIP install -q --upgrade -c constraints.txt "$WORK/src[all,dev]" || { echo "check-latest: the newest versions do not even install"; exit 1; }
$PIP uninstall -y -q torchvision timm >/dev/null 2>&1
echo "== versions that differ from $LOCK (package: locked -> newest)"
"$VENV/bin/python" - "$LOCK" <<'PY'
import re, sys
from importlib import metadata
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
locked = {norm(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", open(sys.argv[1]).read(), re.M)}
now = {norm(d.metadata["Name"]): d.version for d in metadata.distributions()}
changed = sorted((n, locked[n], now[n]) for n in locked.keys() & now.keys() if locked[n] != now[n])
for name, old, new in changed:
    print(f"  {name}: {old} -> {new}")
for name in sorted(now.keys() - locked.keys() - {"harmonyset-hf", "pip", "setuptools"}):
    print(f"  {name}: (not in the lock) -> {now[name]}")
for name in sorted(locked.keys() - now.keys() - {"torchvision", "timm", "setuptools"}):
    print(f"  {name}: {locked[name]} -> (not installed)")
print(f"  {len(changed)} packages at a newer version than the lock")
PY
echo "== the suite with the newest versions"
cd "$WORK/src"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -x -rf 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
if [ "$status" = 0 ]; then
    echo "check-latest: the suite passes with the newest versions; 'make lock UPGRADE=1' would be safe"
else
    echo "check-latest: the suite FAILS with the newest versions (above); keep the lock, fix or bound the cause"
fi
exit "$status"
