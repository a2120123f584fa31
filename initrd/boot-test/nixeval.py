"""Evaluate initrd/boot-test/units.nix inside real NixOS: find a nixpkgs tree, run nix-instantiate.

Shared by initrd/boot-test/run (the qemu boot test), initrd/boot-test/stage2.py (its stage-2 sibling)
and tests/sops/run (sops-nix coexistence).

The nixpkgs tree is, in this order: $NETSECRETS_NIXPKGS; <nixpkgs> on NIX_PATH; the tarball
../shared/nixpkgs/nixpkgs-*.tar.xz beside the repository, unpacked once into
${XDG_CACHE_HOME:-~/.cache}/netsecrets/nixpkgs-<first 16 hex of its SHA-256>/ (the same place
tests/nixos-eval/check.py unpacks it, so one copy serves both). None of them: NoNixpkgs, which the
callers turn into a loud skip (a failure under CI=true).
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
UNITS_NIX = HERE / "units.nix"
SHARED_NIXPKGS = REPO.parent / "shared" / "nixpkgs"  # ../shared beside the repository
NIXPKGS_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "netsecrets"


class NoNixpkgs(Exception):
    """No nixpkgs tree (or no nix-instantiate) to evaluate the NixOS module with."""


class EvalError(Exception):
    """The evaluation itself failed."""


def nix_env(workdir, nixpkgs=None):
    """nix-instantiate needs a writable state directory even for --eval."""
    state = Path(workdir) / "nix"
    for d in ("state", "log"):
        (state / d).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, NIX_STATE_DIR=str(state / "state"), NIX_LOG_DIR=str(state / "log"))
    if nixpkgs is not None:
        env["NIX_PATH"] = f"nixpkgs={nixpkgs}"
    return env


def is_nixpkgs(p):
    return (Path(p) / "nixos/lib/eval-config.nix").is_file()


def find_nixpkgs(workdir, log=print):
    """Returns (path, where it came from)."""
    if shutil.which("nix-instantiate") is None:
        raise NoNixpkgs("nix-instantiate not found (apt-get install nix-bin)")
    env = os.environ.get("NETSECRETS_NIXPKGS")
    if env:
        if not is_nixpkgs(env):
            raise EvalError(f"NETSECRETS_NIXPKGS={env} is not a nixpkgs tree (no nixos/lib/eval-config.nix)")
        return Path(env), "NETSECRETS_NIXPKGS"
    if os.environ.get("NIX_PATH"):
        p = subprocess.run(["nix-instantiate", "--find-file", "nixpkgs"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, env=nix_env(workdir), timeout=60)
        found = p.stdout.decode(errors="replace").strip()
        if p.returncode == 0 and found and is_nixpkgs(found):
            return Path(found), "<nixpkgs> on NIX_PATH"
    tarballs = sorted(SHARED_NIXPKGS.glob("nixpkgs-*.tar.xz"))
    if not tarballs:
        raise NoNixpkgs("no nixpkgs to evaluate the NixOS module with: set NETSECRETS_NIXPKGS to a nixpkgs "
                        f"tree, put <nixpkgs> on NIX_PATH, or provide {SHARED_NIXPKGS}/nixpkgs-*.tar.xz")
    tarball = tarballs[-1]
    h = hashlib.sha256()
    with open(tarball, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    dest = NIXPKGS_CACHE / f"nixpkgs-{h.hexdigest()[:16]}"
    if not is_nixpkgs(dest):
        NIXPKGS_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="nixpkgs-", dir=NIXPKGS_CACHE))
        t0 = time.monotonic()
        try:
            p = subprocess.run(["tar", "-C", str(tmp), "-xJf", str(tarball)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=900)
            if p.returncode != 0:
                raise EvalError(f"unpacking {tarball} failed: {p.stdout.decode(errors='replace')[-1000:]}")
            root = tmp if is_nixpkgs(tmp) else next((d for d in tmp.iterdir() if is_nixpkgs(d)), None)
            if root is None:
                raise EvalError(f"{tarball} holds no nixpkgs tree")
            try:
                os.rename(root, dest)  # atomic: a concurrent unpacker may have won
            except OSError:
                if not is_nixpkgs(dest):
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log(f"unpacked {tarball.name} into {dest} in {time.monotonic() - t0:.0f}s")
    return dest, f"{tarball.name} (unpacked in {dest})"


def evaluate(workdir, configs, log=print, timeout=900):
    """{name: netsecrets.client settings} -> {name: what units.nix returns for that machine}."""
    nixpkgs, where = find_nixpkgs(workdir, log)
    t0 = time.monotonic()
    try:
        p = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", str(UNITS_NIX),
                            "--argstr", "configsJson", json.dumps(configs)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=nix_env(workdir, nixpkgs),
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise EvalError(f"evaluating {UNITS_NIX.relative_to(REPO)} took over {timeout}s") from e
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace")
        raise EvalError(f"evaluating {UNITS_NIX.relative_to(REPO)} with {where} failed:\n{err[-3000:]}")
    evals = json.loads(p.stdout)
    log(f"evaluated {len(configs)} NixOS machine(s) with {where} in {time.monotonic() - t0:.1f}s")
    return evals
