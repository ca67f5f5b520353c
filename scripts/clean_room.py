"""Clean-room check of the package as users install it: the wheel, a new venv, a folder outside the checkout.

Builds the wheel and sdist, runs ``twine check``, installs the wheel with ``pip install -c
requirements.lock 'harmonyset_hf-*.whl[all]'`` into a new virtual environment, and from a temporary
folder that is not the checkout runs: sample -> build -> ``load_dataset`` of the three configs ->
predict (a baseline) -> eval mc and oe (embedding judge) -> report, and one lm-eval and one
lmms-eval run of ``harmonyset_mc`` using the task folders shipped inside the package. Nothing from
the checkout is on the path: the installed package must carry everything it reads.

Usage: ``python scripts/clean_room.py [--lock requirements.lock] [--keep DIR]`` (``make test`` runs it).
pip's download cache is reused, so only the first run on a machine pays for downloads.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEP_TIMEOUT = 1200  # seconds for one step: installing from a cold pip cache is the slowest


class StepFailed(Exception):
    """A clean-room step that exited non-zero or whose output was wrong."""


def run(argv: list, *, cwd: Path, env: dict[str, str], timeout: int = STEP_TIMEOUT) -> str:
    """Run one command, returning its stdout; raise StepFailed with the tail of its output when it fails."""
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise StepFailed(f"{' '.join(map(str, argv[:4]))} ... exited {proc.returncode}\n"
                         f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def clean_env(venv: Path, home: Path) -> dict[str, str]:
    """An environment that points at the new venv only: no PYTHONPATH, offline hubs, caches in ``home``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "HARMONYSET_", "HF_", "PIP_CONSTRAINT"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HOME=str(home / "hf"), WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false")
    return env


def main(argv: list[str] | None = None) -> int:
    """Run every step; print one line per step and a closing 'clean-room: N passed, N failed' line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", default=str(REPO / "requirements.lock"), help="the lock to install with")
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    lock = Path(args.lock).resolve()
    root = Path(args.keep).resolve() if args.keep else Path(tempfile.mkdtemp(prefix="harmonyset-clean-room-"))
    root.mkdir(parents=True, exist_ok=True)
    if root == REPO or REPO in root.parents:
        parser.error(f"--keep {root} is inside the checkout; the point is to run outside it")
    venv, work, dist = root / "venv", root / "work", root / "dist"
    work.mkdir(exist_ok=True)
    # The build backend's own environment is constrained by the lock too (setuptools from the lock).
    build_env = {**os.environ, "PIP_CONSTRAINT": str(lock)}
    env = clean_env(venv, root)
    hub, mini = work / "hub", work / "mini"
    tasks_lmms = ""
    results: list[tuple[str, bool, float]] = []

    def step(name: str, fn) -> bool:
        start = time.monotonic()
        try:
            fn()
            ok = True
        except (StepFailed, subprocess.TimeoutExpired, AssertionError, OSError) as err:
            ok = False
            print(f"  FAILED {name}: {err}", file=sys.stderr)
        results.append((name, ok, time.monotonic() - start))
        print(f"clean-room {'ok  ' if ok else 'FAIL'} {name} ({time.monotonic() - start:.0f} s)", flush=True)
        return ok

    def build_dist() -> None:
        shutil.rmtree(dist, ignore_errors=True)
        run([sys.executable, "-m", "build", "--outdir", dist, REPO], cwd=root, env=build_env)
        wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
        assert len(wheels) == 1 and len(sdists) == 1, f"expected one wheel and one sdist, got {os.listdir(dist)}"
        run([Path(sys.executable).parent / "twine", "check", "--strict", *wheels, *sdists], cwd=root, env=build_env)

    def install() -> None:
        if venv.exists():
            shutil.rmtree(venv)
        run([sys.executable, "-m", "venv", venv], cwd=root, env=env)
        pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        torch = next(line.split("==")[1].split("+")[0] for line in lock.read_text().splitlines()
                     if line.startswith("torch=="))
        run([*pip, f"torch=={torch}"], cwd=work, env=env)
        wheel = next(dist.glob("*.whl"))
        run([*pip, "-c", lock, f"{wheel}[all]"], cwd=work, env=env)
        # As in `make setup`: lmms-eval pulls torchvision/timm, whose PyPI builds break imports here.
        subprocess.run([venv / "bin" / "python", "-m", "pip", "uninstall", "-y", "-q", "torchvision", "timm"],
                       cwd=work, env=env, capture_output=True, timeout=STEP_TIMEOUT)
        where = run([venv / "bin" / "python", "-c", "import harmonyset_hf; print(harmonyset_hf.__file__)"],
                    cwd=work, env=env).strip()
        assert Path(where).is_relative_to(venv), f"harmonyset_hf imported from {where}, not from the new venv"
        version = run([venv / "bin" / "harmonyset", "--version"], cwd=work, env=env)
        assert version.startswith("harmonyset-hf "), version

    def hs(*words) -> str:
        return run([venv / "bin" / "harmonyset", *words], cwd=work, env=env)

    def sample_and_build() -> None:
        hs("sample", "--out", mini, "--n", "12", "--seed", "0")
        hs("build", "--release", mini / "release", "--videos", mini / "videos", "--out", hub)
        readme = (hub / "README.md").read_text(encoding="utf-8")
        assert "configs:" in readme and "$" not in readme.split("---")[1], "card template not rendered"

    def load() -> None:
        code = ("import json, sys\nfrom datasets import load_dataset\n"
                "n = {c: load_dataset(sys.argv[1], c, split=s).num_rows for c, s in "
                "[('instruct', 'train'), ('oe', 'test'), ('mc', 'test')]}\nprint(json.dumps(n))")
        counts = json.loads(run([venv / "bin" / "python", "-c", code, hub], cwd=work, env=env).strip().splitlines()[-1])
        assert counts["instruct"] > 0 and counts["oe"] > 0 and counts["mc"] == 4 * counts["oe"], counts

    def predict_eval_report() -> None:
        hs("predict", "--data", hub, "--config", "mc", "--model", "baseline-random", "--out", work / "mc.jsonl")
        hs("predict", "--data", hub, "--config", "oe", "--model", "baseline-generic", "--out", work / "oe.jsonl")
        hs("eval", "mc", "--data", hub, "--predictions", work / "mc.jsonl", "--out", work / "res-mc")
        hs("eval", "oe", "--data", hub, "--predictions", work / "oe.jsonl", "--out", work / "res-oe",
           "--judge", "embedding")
        hs("report", work / "res-mc", work / "res-oe", "--out", work / "report")
        mc = json.loads((work / "res-mc" / "results.json").read_text())
        assert mc["overall"]["accuracy"] is not None, mc["overall"]
        assert any((work / "report").iterdir()), "empty report"

    def sync() -> None:
        # The instrument network is package data: a wheel without it fails here, not on a user's first video.
        video = sorted((mini / "videos").glob("*.mp4"))[0]
        report = json.loads(hs("sync", video, "--json"))
        # Not every item has a cut or a music change inside it (hs000009 of this draw has no change): what is
        # checked is that the analysis ran, network and all, and reported both lists.
        lists = ("cuts", "music_changes")
        assert all(isinstance(report.get(k), list) for k in lists), f"{video.name}: {sorted(report)}"

    def lm_eval() -> None:
        out = work / "lm-eval"
        # No --include_path: harmonyset-lm-eval adds the installed task folder by itself.
        run([venv / "bin" / "harmonyset-lm-eval", "--model", "harmonyset-baseline", "--tasks", "harmonyset_mc",
             "--metadata", json.dumps({"data": str(hub)}), "--output_path", out], cwd=work, env=env)
        result = json.loads(next(out.rglob("results_*.json")).read_text())
        assert "harmonyset_mc" in result["results"], result["results"].keys()

    def lmms_eval() -> None:
        nonlocal tasks_lmms
        tasks_lmms = hs("tasks-path", "lmms-eval").strip()
        assert Path(tasks_lmms).is_relative_to(venv), f"lmms-eval tasks at {tasks_lmms}, not in the venv"
        out = work / "lmms-eval"
        run([venv / "bin" / "lmms-eval", "--model", "harmonyset-baseline", "--include_path", tasks_lmms,
             "--tasks", "harmonyset_mc", "--output_path", out], cwd=work, env={**env, "HARMONYSET_DATA": str(hub)})
        result = json.loads(next(out.rglob("*results.json")).read_text())
        assert "harmonyset_mc" in result["results"], result["results"].keys()

    print(f"clean-room: working in {root}", flush=True)
    if step("build wheel + sdist, twine check", build_dist) and step("install the wheel with the lock", install):
        if step("sample + build (outside the checkout)", sample_and_build):
            step("load_dataset instruct/oe/mc", load)
            step("predict, eval mc/oe (embedding judge), report", predict_eval_report)
            step("sync on a mini video (packaged instrument network)", sync)
            step("lm-eval harmonyset_mc (packaged tasks)", lm_eval)
            step("lmms-eval harmonyset_mc (packaged tasks)", lmms_eval)
    passed = sum(ok for _, ok, _ in results)
    failed = len(results) - passed
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(f"clean-room: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed == 8 else 1


if __name__ == "__main__":
    sys.exit(main())
