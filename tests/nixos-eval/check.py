#!/usr/bin/env python3
"""The Nix side of netsecrets, checked without building anything.

  1. Every .nix file in the repository parses (nix-instantiate --parse).
  2. The modules inside real NixOS (nixos.nix and scenarios/): whole configurations
     built with nixos/lib/eval-config.nix of a nixpkgs tree -- the configurations
     users already have, verbatim, the documented file-based setups, enableInitrd
     and enableInitrdPassword with grub, systemd-boot and no boot loader -- must
     evaluate config.system.build.toplevel.drvPath; refused setups must fail
     with the module's own assertion; the rendered units, credentials,
     warnings and assertions are checked; no secret value reaches a unit, and
     no ignored or file-held secret reaches any derivation of the system.
  3. The flake (flake.nix here calls the repository's flake.nix outputs with that
     tree as nixpkgs): every checks.<system>.<name>.drvPath evaluates, for
     x86_64-linux and aarch64-linux, and the package (pkgsStatic) for both.
  4. eval.nix: what real NixOS cannot check (the modules against another
     nixpkgs lib, e.g. a newer one, given by NETSECRETS_NIXPKGS_LIB).
  5. systemd-analyze verify on units rendered by the real evaluation, and
     systemd-analyze security --offline=true of netsecrets-daemon.service
     (<= 2.0).

Scenarios (step 2) come in topics, one pair of files each, found by this script (a new
topic is a new pair, nothing to edit here):

  scenarios/<topic>.nix  a function of what scenarios/lib.nix shares ({ lib, loaders,
                         initrdNetwork, clientWith, serverWith, templateWith, ... }:)
                         giving an attribute set: scenario name -> { modules = [ ... ];
                         toplevel ? true (false: only options, warnings, assertions);
                         extend ? null (modules for extendModules) }, or -> { facts =
                         <plain data>; }. Scenario names are unique across topics.
  scenarios/<topic>.py   the expectations of those scenarios:
                           GROUPS = {"group": ["scenario", ...]}  every scenario of the
                             .nix file in exactly one group (checked). One nix-instantiate
                             per group, two at a time; a group named in several topics is
                             one group. Whole systems take about 1 GB each while evaluated,
                             small configurations much less: put new small ones in an
                             existing group (e.g. "options"), a new whole system in the
                             topic's own group.
                           WHOLE_SYSTEMS = [...]  scenarios whose toplevel.drvPath must
                             evaluate with no failed assertion (optional).
                           LITERALS = [...]  secret values written in the .nix file; none
                             may appear in any rendered unit (optional).
                           def checks(ctx): registers checks with R.check(name, fn), reading
                             facts through ctx (scenarios/lib.py: Scenarios; f, units,
                             iunits, warns, no_warn, failed, asserts, closure_check) and the
                             helpers of scenarios/lib.py (expect, has, has_not, unit_lines,
                             unit_value, words, exec_start, ...). Every topic sees every
                             scenario's facts.
  scenarios/lib.nix, scenarios/lib.py  what the topics share (not a topic).

nixpkgs: $NETSECRETS_NIXPKGS (a nixpkgs tree), else <nixpkgs> on NIX_PATH,
else the tarball ../shared/nixpkgs/nixpkgs-*.tar.xz beside the repository,
unpacked once into ${XDG_CACHE_HOME:-~/.cache}/netsecrets/nixpkgs-<hash>.
None: steps 2-5 are skipped loudly, and with CI=true that is a failure.

Usage: python3 tests/nixos-eval/check.py     One PASS/FAIL line per check; last line
"N passed, N failed"; exit status 0 only when nothing failed.
While working on part of it:
  NETSECRETS_CHECK_TOPICS=storage,consumers  only those topics: their scenarios (in their
      groups) and their checks; no flake, systemd-analyze only on their scenarios; a check
      that looks at another topic's scenario then fails for lack of facts.
  NETSECRETS_CHECK_GROUPS=servers,flake  only those evaluation groups (names from the
      topics' GROUPS, and flake, flake-aarch64); every check runs, those of the others fail.
  NETSECRETS_FACTS_JSON=<file>  also writes the facts of every evaluated scenario there
      (e.g. to compare the rendered units before and after a change of the modules).
"""

import concurrent.futures
import glob
import hashlib
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "scenarios")
sys.path.insert(0, SCENARIOS)
from lib import R, Scenarios, expect, has  # noqa: E402  (scenarios/lib.py)

REPO = os.path.dirname(os.path.dirname(HERE))
NIX_ARGS = ["--option", "sandbox", "false", "--option", "substituters", ""]

# Debian's Nix 2.8 is linked against a Boehm GC without the patch Nix carries for coroutines.
# In read-write mode Nix copies a path into the store inside a coroutine, and evaluates a
# source filter (builtins.filterSource, builtins.path { filter }, lib.fileset) there; if the
# collector runs during that, it scans from the coroutine's stack to the main stack's base
# and crashes. The scenarios avoid filters in read-write mode (scenarios/lib.nix says how);
# tests/nixos-eval/find-filters GROUP lists any filter a group still evaluates during a copy.
GC_CRASH = ("Nix 2.8's garbage collector ran inside the coroutine that copies a filtered source into "
            "the store; tests/nixos-eval/find-filters <group> names the filtered source")


# ---- tools --------------------------------------------------------------------------------


def ensure_nix():
    if shutil.which("nix-instantiate"):
        return True
    print("nix-instantiate not found; installing nix-bin (apt-get)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    log = ""
    for cmd in (["apt-get", *lock, "update"], ["apt-get", *lock, "install", "-y", "nix-bin"]):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True)
        log += p.stdout[-2000:] + p.stderr[-2000:]
        if p.returncode != 0:
            break
    if shutil.which("nix-instantiate"):
        return True
    R.fail("nix-instantiate available (apt-get install -y nix-bin)", log[-1500:])
    return False


def run(cmd, env, timeout=900):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def tail(text, n=30):
    return "\n".join(text.splitlines()[-n:])


# ---- nixpkgs ------------------------------------------------------------------------------


def is_tree(d):
    return bool(d) and os.path.isfile(os.path.join(d, "nixos", "lib", "eval-config.nix"))


def find_nixpkgs(env):
    """(path, where it came from) or (None, why not)."""
    given = os.environ.get("NETSECRETS_NIXPKGS")
    if given:
        if is_tree(given):
            return os.path.abspath(given), "NETSECRETS_NIXPKGS"
        R.fail(f"NETSECRETS_NIXPKGS={given} is a nixpkgs tree", "no nixos/lib/eval-config.nix there")
        return None, f"NETSECRETS_NIXPKGS={given} is not a nixpkgs tree"
    if os.environ.get("NIX_PATH"):
        p = run(["nix-instantiate", "--find-file", "nixpkgs"], env)
        found = p.stdout.strip()
        if p.returncode == 0 and is_tree(found):
            return found, "<nixpkgs> on NIX_PATH"
    tarballs = sorted(glob.glob(os.path.join(REPO, "..", "shared", "nixpkgs", "nixpkgs-*.tar.xz")))
    if not tarballs:
        return None, "no NETSECRETS_NIXPKGS, no <nixpkgs> on NIX_PATH, no ../shared/nixpkgs/nixpkgs-*.tar.xz"
    tarball = tarballs[-1]
    h = hashlib.sha256()
    with open(tarball, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    dest = os.path.join(cache, "netsecrets", f"nixpkgs-{h.hexdigest()[:16]}")
    label = f"{os.path.basename(tarball)}, unpacked in {dest}"
    if is_tree(dest):
        return dest, label + " (cached)"
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="nixpkgs-", dir=os.path.dirname(dest))
    p = subprocess.run(["tar", "-C", tmp, "-xJf", tarball], capture_output=True, text=True)
    if p.returncode != 0 or not is_tree(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
        return None, f"unpacking {tarball} failed: {tail(p.stderr, 5)}"
    try:
        os.rename(tmp, dest)
    except OSError:  # another run unpacked it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return dest, label


def nixpkgs_version(tree):
    try:
        with open(os.path.join(tree, "lib", ".version")) as f:
            return f.read().strip()
    except OSError:
        return "unknown"


# ---- step 1: parse ------------------------------------------------------------------------


def parse_all(env):
    print("== parse", flush=True)
    files = []
    for root, dirs, names in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if d not in (".git", "target", "result"))
        files += [os.path.join(root, n) for n in sorted(names) if n.endswith(".nix")]
    for f in files:
        p = run(["nix-instantiate", "--parse", f], env)
        rel = os.path.relpath(f, REPO)
        if p.returncode == 0:
            R.ok(f"parse {rel}")
        else:
            R.fail(f"parse {rel}", tail(p.stderr))


# ---- running evaluations ------------------------------------------------------------------


class Evaluator:
    """nix-instantiate --eval --strict --json against a private chroot store (one per group,
    so parallel groups do not wait for each other's database lock). In read-write mode the
    .drv files of every evaluated system are written where the leak checks can read them;
    a group whose derivations nobody reads (the flake's) evaluates read-only, where Nix
    computes store paths without copying anything (see GC_CRASH)."""

    def __init__(self, env, tmp, nixpkgs, group, write=True):
        self.env = env
        self.nixpkgs = nixpkgs
        self.group = group
        self.root = os.path.join(tmp, "store-" + group)
        os.makedirs(self.root, exist_ok=True)
        self.store = ["--store", f"local?root={self.root}"]
        self.mode = ["--read-write-mode"] if write else []

    def eval(self, file, args, attr=None):
        cmd = ["nix-instantiate", *NIX_ARGS, *self.store, *self.mode, "--eval", "--strict", "--json",
               file, "--arg", "nixpkgs", self.nixpkgs, *args]
        if attr:
            cmd += ["-A", attr]
        p = run(cmd, self.env)
        if p.returncode == -signal.SIGSEGV:
            # GC_CRASH: when the collector runs at another moment, the same evaluation passes.
            heap = self.env.get("GC_INITIAL_HEAP_SIZE", "Nix's default")
            print(f"info: nix-instantiate of group {self.group} crashed (SIGSEGV; {GC_CRASH}); evaluating it "
                  f"again with GC_INITIAL_HEAP_SIZE=3G instead of {heap}", flush=True)
            p = run(cmd, dict(self.env, GC_INITIAL_HEAP_SIZE="3G"))
        if p.returncode != 0:
            # A negative code is a signal (e.g. SIGKILL from the OOM killer: no stderr at all).
            hint = f" ({GC_CRASH})" if p.returncode == -signal.SIGSEGV else ""
            return None, f"exit status {p.returncode}{hint}\n" + tail(p.stderr, 40)
        return json.loads(p.stdout), p.stderr

    def closure(self, drv):
        p = run(["nix-store", *self.store, "--query", "--requisites", drv], self.env)
        if p.returncode != 0:
            raise AssertionError(f"nix-store -qR {drv}: {tail(p.stderr, 5)}")
        return p.stdout.split()

    def grep_closure(self, drv, needles):
        """{needle: [store paths in the closure of drv that contain it]}. Searched: every .drv
        (a derivation's whole environment, e.g. writeText's text) and every single-file source
        (what builtins.toFile or importing a file would add). Directory sources are copies of
        trees (nixpkgs' nixos/ for the manual, the package's src/), whose examples and test
        vectors may well contain the scenarios' literal password "hunter2"; they are not searched."""
        found = {n: [] for n in needles}
        raw = [(n, n.encode()) for n in needles]
        for path in self.closure(drv):
            real = self.root + path
            if os.path.islink(real) or not os.path.isfile(real):
                continue
            with open(real, "rb") as fh:
                data = fh.read()
            for n, b in raw:
                if b in data:
                    found[n].append(path)
        return found


# ---- step 2: real NixOS -------------------------------------------------------------------


class Topic:
    """scenarios/<name>.nix (the configurations) and scenarios/<name>.py (their expectations)."""

    def __init__(self, name):
        self.name = name
        spec = importlib.util.spec_from_file_location("topic_" + name.replace("-", "_"),
                                                      os.path.join(SCENARIOS, name + ".py"))
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        self.groups = self.module.GROUPS
        self.whole_systems = list(getattr(self.module, "WHOLE_SYSTEMS", []))
        self.literals = list(getattr(self.module, "LITERALS", []))
        self.scenarios = [s for ss in self.groups.values() for s in ss]


def discover_topics():
    """Every scenarios/<topic>.nix but lib.nix, each with its scenarios/<topic>.py."""
    names = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(SCENARIOS, "*.nix")))
    names = [n for n in names if n != "lib"]
    topics, missing = [], []
    for n in names:
        if os.path.isfile(os.path.join(SCENARIOS, n + ".py")):
            topics.append(Topic(n))
        else:
            missing.append(n)
    for n in missing:
        R.fail(f"scenarios/{n}.nix has its expectations in scenarios/{n}.py", "no such file")
    for p in glob.glob(os.path.join(SCENARIOS, "*.py")):
        n = os.path.basename(p)[:-3]
        if n != "lib" and n not in names:
            R.fail(f"scenarios/{n}.py has its configurations in scenarios/{n}.nix", "no such file")
    return topics


def merged_groups(topics):
    """{group: [scenario, ...]} over all topics' GROUPS (a group named in several topics is one)."""
    groups = {}
    for t in topics:
        for g, ss in t.groups.items():
            groups.setdefault(g, []).extend(ss)
    return groups


def nix_list(names):
    """A Nix list of strings, for --arg."""
    return "[ " + " ".join(json.dumps(n) for n in names) + " ]"


def check_layout(env, nixpkgs, topics):
    """Each topic's GROUPS name every scenario of its .nix file exactly once, and nothing else.
    Only the names are evaluated (no NixOS configuration): cheap. Prints only what is wrong."""
    expr = ("{ nixpkgs, dir }: let shared = import (dir + \"/lib.nix\") { inherit nixpkgs; "
            "canaryDir = \"/run/agenix\"; system = \"x86_64-linux\"; }; in "
            "builtins.listToAttrs (map (t: { name = t; value = builtins.attrNames "
            "(import (dir + \"/${t}.nix\") shared); }) " + nix_list(t.name for t in topics) + ")")
    p = run(["nix-instantiate", *NIX_ARGS, "--eval", "--strict", "--json", "-E", expr,
             "--arg", "nixpkgs", nixpkgs, "--arg", "dir", SCENARIOS], env)
    if p.returncode != 0:
        R.fail("the scenario names of scenarios/*.nix evaluate", tail(p.stderr))
        return
    names = json.loads(p.stdout)
    bad = []
    for t in topics:
        in_nix, in_py = sorted(names[t.name]), sorted(t.scenarios)
        if in_nix != in_py:
            bad.append(f"{t.name}: in {t.name}.nix only: {sorted(set(in_nix) - set(in_py))}; in GROUPS of "
                       f"{t.name}.py only: {sorted(set(in_py) - set(in_nix))}; twice in GROUPS: "
                       f"{sorted(s for s in set(in_py) if in_py.count(s) > 1)}")
        if not set(t.whole_systems) <= set(in_nix):
            bad.append(f"{t.name}: WHOLE_SYSTEMS not in {t.name}.nix: {sorted(set(t.whole_systems) - set(in_nix))}")
    if bad:
        R.fail("each scenario of scenarios/<topic>.nix is in exactly one group of GROUPS in <topic>.py", "\n".join(bad))
    else:
        print(f"info: {sum(len(v) for v in names.values())} scenarios in {len(topics)} topics "
              f"({', '.join(t.name for t in topics)})", flush=True)


def nixos_checks(env, tmp, nixpkgs):
    print("== NixOS: the modules in real NixOS (tests/nixos-eval/nixos.nix, scenarios/*.nix)", flush=True)
    topics = discover_topics()
    # NETSECRETS_CHECK_TOPICS=storage,consumers: only the scenarios and checks of those topics
    # (a check that looks at another topic's scenario then fails for lack of facts), no flake.
    chosen_topics = os.environ.get("NETSECRETS_CHECK_TOPICS")
    if chosen_topics:
        wanted = chosen_topics.split(",")
        unknown = [t for t in wanted if t not in [x.name for x in topics]]
        if unknown:
            R.fail(f"NETSECRETS_CHECK_TOPICS names topics ({', '.join(unknown)})",
                   f"known: {', '.join(t.name for t in topics)}")
        topics = [t for t in topics if t.name in wanted]
    check_layout(env, nixpkgs, topics)

    canary_dir = os.path.join(tmp, "canary")
    os.makedirs(canary_dir)
    canaries = {}
    for name in ("pw", "key"):
        value = f"canary-{name}-" + os.urandom(12).hex()
        with open(os.path.join(canary_dir, name), "w") as f:
            f.write(value)
        os.chmod(os.path.join(canary_dir, name), 0o400)
        canaries[name] = value

    # The groups of all topics, merged by name: one nix-instantiate per group, two at a time.
    # The module system keeps what it evaluated, so the many small configurations of all
    # topics share a few groups, sized so that no process grows past a few GB.
    groups = merged_groups(topics)
    group_of = {s: g for g, ss in groups.items() for s in ss}
    nixfile = os.path.join(HERE, "nixos.nix")
    flakefile = os.path.join(HERE, "flake.nix")
    facts, times, errors = {}, {}, {}
    evaluators = {g: Evaluator(env, tmp, nixpkgs, g) for g in groups}
    evaluators.update({g: Evaluator(env, tmp, nixpkgs, g, write=False) for g in ("flake", "flake-aarch64")})

    def run_group(group):
        t0 = time.monotonic()
        ev = evaluators[group]
        if group == "flake":
            out, err = ev.eval(flakefile, ["--arg", "checkSystems", '[ "x86_64-linux" ]'], attr="facts")
        elif group == "flake-aarch64":
            out, err = ev.eval(flakefile, ["--arg", "checkSystems", '[ "aarch64-linux" ]'], attr="facts.checks")
        else:
            out, err = ev.eval(nixfile, ["--arg", "only", nix_list(groups[group]), "--argstr", "canaryDir", canary_dir])
        return group, out, err, time.monotonic() - t0

    t_all = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        # The groups with the most scenarios first (the longest), the flake's last.
        all_groups = sorted(groups, key=lambda g: (-len(groups[g]), g))
        if not chosen_topics:
            all_groups += ["flake", "flake-aarch64"]
        # NETSECRETS_CHECK_GROUPS=storage,consumers: only those groups (names as in the topics'
        # GROUPS, and flake, flake-aarch64); every check runs, and those of the others fail for
        # lack of facts.
        chosen = os.environ.get("NETSECRETS_CHECK_GROUPS")
        if chosen:
            all_groups = [g for g in all_groups if g in chosen.split(",")]
        for group, out, err, secs in pool.map(run_group, all_groups):
            times[group] = secs
            if out is None:
                errors[group] = err
            elif group == "flake":
                facts.setdefault("flake", {}).update({k: v for k, v in out.items() if k != "checks"})
                facts.setdefault("flake-checks", {}).update(out["checks"])
            elif group == "flake-aarch64":
                facts.setdefault("flake-checks", {}).update(out)
            else:
                facts.update(out)
    wall = time.monotonic() - t_all
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
    print("info: evaluation times (s): " + ", ".join(f"{g} {t:.0f}" for g, t in times.items())
          + f"; wall {wall:.0f} with 2 in parallel; largest nix-instantiate {peak:.1f} GB", flush=True)
    if os.environ.get("NETSECRETS_FACTS_JSON"):
        with open(os.environ["NETSECRETS_FACTS_JSON"], "w") as fh:
            json.dump({"canaryDir": canary_dir, "facts": facts}, fh, sort_keys=True)

    for group, err in errors.items():
        R.fail(f"nix-instantiate of group {group} ({', '.join(groups.get(group, ['flake outputs']))})", err)

    whole_systems = [s for t in topics for s in t.whole_systems]
    ctx = Scenarios(facts, canary_dir, canaries, whole_systems, evaluators, group_of)

    # -- every supported scenario is a system that evaluates
    for name in whole_systems:
        def top(name=name):
            x = ctx.f(name)
            expect(x["failedAssertions"] == [], f"failed assertions: {x['failedAssertions']}")
            expect(x["drvPath"] and x["drvPath"].endswith(".drv"), f"toplevel.drvPath did not evaluate: {x['drvPath']}")
        R.check(f"NixOS: {name}: config.system.build.toplevel.drvPath evaluates", top)

    for t in topics:
        print(f"-- {t.name} (scenarios/{t.name}.nix, scenarios/{t.name}.py)", flush=True)
        t.module.checks(ctx)

    # -- no secret value in any unit
    literals = sorted({s for t in topics for s in t.literals})

    def no_literal_in_units():
        bad = []
        for name, x in facts.items():
            if name in ("flake", "flake-checks", "types", "docs"):
                continue
            for kind in ("units", "initrdUnits"):
                for u, text in (x.get(kind) or {}).items():
                    bad += [f"{name}: {u} contains {s!r}" for s in literals if s in text]
        expect(not bad, "\n".join(bad))
    R.check("NixOS: no password, key or secret value in any rendered unit text (stage 1 and 2, all scenarios)",
            no_literal_in_units)

    return facts



def flake_checks(facts):
    print("== flake outputs (tests/nixos-eval/flake.nix)", flush=True)
    fl = facts.get("flake")

    def g():
        expect(fl is not None, "the flake's outputs did not evaluate (see the group failure above)")
        return fl

    vm_tests = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(REPO, "nix", "vm-tests", "*.nix"))
                      if os.path.basename(p) not in ("default.nix", "common.nix"))

    def names():
        x = g()
        want = sorted(vm_tests + ["package"])
        for system, got in x["checkNames"].items():
            expect(sorted(got) == want, f"checks.{system}: {sorted(got)}, want every nix/vm-tests/*.nix + package {want}")
        expect(x["nixosModules"] == ["client", "default", "server"], x["nixosModules"])
        expect(x["overlay"] is True and x["formatterSystems"] == ["aarch64-linux", "x86_64-linux"], x)
    R.check("flake: checks.<system> has one check per VM test in nix/vm-tests/ plus the package; nixosModules, "
            "overlay, formatter", names)
    for system in ("x86_64-linux", "aarch64-linux"):
        for t in vm_tests + ["package"]:
            def one(t=t, system=system):
                d = (facts.get("flake-checks") or {}).get(system, {}).get(t)
                expect(d and d.endswith(".drv"), f"checks.{system}.{t}.drvPath did not evaluate: {d}")
            R.check(f"flake: checks.{system}.{t}.drvPath evaluates", one)

    def packages():
        x = g()
        for system, triple in (("x86_64-linux", "x86_64-unknown-linux-musl"), ("aarch64-linux", "aarch64-unknown-linux-musl")):
            expect(x["packages"][system] and x["packages"][system].endswith(".drv"), f"{system}: {x['packages']}")
            expect(triple in x["packageNames"][system], f"not a static musl build: {x['packageNames'][system]}")
            expect(x["defaultIsPackage"][system] is True, f"packages.{system}.default")
    R.check("flake: packages.{x86_64,aarch64}-linux.netsecrets evaluate (pkgsStatic, musl) and are the default",
            packages)

    def module_default():
        x = g()
        expect(x["moduleFailedAssertions"] == [], x["moduleFailedAssertions"])
        has(f'"{x["flakePackage"]}/bin/netsecrets" "receive"', x["moduleDaemon"] or "", "netsecrets-daemon.service")
        expect(x["moduleHasTemplates"] is True, f"netsecrets.client.templates / netsecrets.placeholder: {x['moduleHasTemplates']}")
    R.check("flake: nixosModules.default (imported with .server too) defaults to the flake's package; the client "
            "module brings netsecrets.client.templates and netsecrets.placeholder", module_default)


# ---- step 4: the stub evaluation ----------------------------------------------------------


def stub_checks(env, nixpkgs):
    print("== stub evaluation (tests/nixos-eval/eval.nix)", flush=True)
    given = os.environ.get("NETSECRETS_NIXPKGS_LIB")
    if given:
        if os.path.isfile(os.path.join(given, "lib", "default.nix")):
            libdir = os.path.join(given, "lib")
        elif os.path.isfile(os.path.join(given, "modules.nix")):
            libdir = given
        else:
            R.fail(f"NETSECRETS_NIXPKGS_LIB={given} holds nixpkgs' lib", "expected <dir>/lib/default.nix or <dir>/modules.nix")
            return
        print(f"nixpkgs lib: {libdir} (NETSECRETS_NIXPKGS_LIB)", flush=True)
    elif nixpkgs:
        libdir = os.path.join(nixpkgs, "lib")
        print(f"nixpkgs lib: the tree's ({nixpkgs_version(nixpkgs)}); set NETSECRETS_NIXPKGS_LIB to check "
              "against another (e.g. the flake's release)", flush=True)
    else:
        R.skip("stub evaluation: no nixpkgs lib (set NETSECRETS_NIXPKGS_LIB or NETSECRETS_NIXPKGS)")
        return
    p = run(["nix-instantiate", *NIX_ARGS, "--eval", "--strict", "--json", os.path.join(HERE, "eval.nix"),
             "--arg", "lib", f"import {libdir}"], env)
    if p.returncode != 0:
        R.fail("tests/nixos-eval/eval.nix evaluates", tail(p.stderr))
        return
    for r in json.loads(p.stdout)["results"]:
        (R.ok if r["ok"] else R.fail)(f"stub: {r['name']}", r["detail"])


# ---- step 5: systemd-analyze --------------------------------------------------------------


def analyze(facts, tmp):
    print("== systemd-analyze (units rendered by the real evaluation)", flush=True)
    if not shutil.which("systemd-analyze"):
        R.skip("systemd-analyze verify/security: systemd-analyze not installed")
        return
    bin_ = next((c for c in (os.path.join(REPO, "target", "x86_64-unknown-linux-musl", "release", "netsecrets"),
                             os.path.join(REPO, "target", "release", "netsecrets"),
                             os.path.join(REPO, "target", "debug", "netsecrets"))
                 if os.access(c, os.X_OK)), shutil.which("true"))
    sysctl = shutil.which("systemctl") or shutil.which("true")
    host = {"netsecrets": bin_, "systemctl": sysctl, "kill": shutil.which("kill") or shutil.which("true"),
            "systemd-creds": shutil.which("systemd-creds") or shutil.which("true")}
    print(f"Exec binaries for verify: {host}", flush=True)
    # Quoted (ExecStart of ours) or not (ExecReload's kill, the path unit's systemctl).
    store_exe = re.compile(r'"?/nix/store/[^"/\s]+/bin/(netsecrets|systemctl|kill|systemd-creds)\b"?')

    def write(group, units):
        d = os.path.join(tmp, "units", group)
        os.makedirs(d)
        for name, text in units.items():
            text = store_exe.sub(lambda m: json.dumps(host[m.group(1)]), text)
            with open(os.path.join(d, name), "w") as fh:
                fh.write(text)
        return d

    groups = [("doc-server", "units"), ("overrides-server", "units"), ("original-server", "units"),
              ("lowport-server", "units"), ("two-client-server", "units"), ("original-client", "units"),
              ("owned-client", "units"), ("initrd-grub", "initrdUnits"), ("prompt-grub", "initrdUnits"),
              ("templates-content", "units"), ("templates-initrd", "initrdUnits"), ("consumers", "units"),
              ("consumers-initrd", "initrdUnits"), ("offline-cache", "units")]
    if os.environ.get("NETSECRETS_CHECK_TOPICS"):
        groups = [(name, kind) for name, kind in groups if name in facts]
    dirs = {}
    for name, kind in groups:
        units = (facts.get(name) or {}).get(kind)
        # The services that use secrets are verified with ours (their Requires= name ours).
        extra = (facts.get(name) or {}).get("initrdConsumerUnits" if kind == "initrdUnits" else "consumerUnits")
        if units and extra and name.startswith("consumers"):
            units = {**units, **extra}
        # The RAM file systems they require (nix/modules/client/storage.nix) are verified with them.
        mounts = (facts.get(name) or {}).get("initrdMountUnits" if kind == "initrdUnits" else "mountUnits")
        if units and mounts:
            units = {**units, **mounts}
        label = f"{name}{' (stage 1)' if kind == 'initrdUnits' else ''}"
        if not units:
            R.fail(f"systemd-analyze verify: {label}", "no units (the evaluation failed)")
            continue
        d = write(label.replace(" ", "_").replace("(", "").replace(")", ""), units)
        dirs[name] = d
        files = sorted(os.listdir(d))
        p = subprocess.run(["systemd-analyze", "verify", *files], cwd=d, capture_output=True, text=True)
        out = (p.stdout + p.stderr).strip()
        if p.returncode == 0 and not out:
            R.ok(f"systemd-analyze verify: {label} ({' '.join(files)})")
        else:
            R.fail(f"systemd-analyze verify: {label}", out)

    def score(path):
        p = subprocess.run(["systemd-analyze", "security", "--offline=true", path], capture_output=True, text=True)
        m = re.search(r"Overall exposure level for .*: ([0-9.]+)", p.stdout + p.stderr)
        return (float(m.group(1)) if m else None), p.stdout + p.stderr

    if "doc-server" in dirs:
        s, out = score(os.path.join(dirs["doc-server"], "netsecrets-daemon.service"))
        if s is not None and s <= 2.0:
            R.ok(f"systemd-analyze security --offline=true netsecrets-daemon.service (documented server): "
                 f"exposure {s} (<= 2.0)")
        else:
            R.fail(f"systemd-analyze security --offline=true netsecrets-daemon.service: exposure {s} (want <= 2.0)",
                   "\n".join(line for line in out.splitlines() if "✗" in line))
    if "lowport-server" in dirs:
        print(f"info: exposure of netsecrets-daemon.service with port < 1024: "
              f"{score(os.path.join(dirs['lowport-server'], 'netsecrets-daemon.service'))[0]}")
    if "original-client" in dirs:
        print(f"info: exposure of the client's netsecrets-secret-db-password.service (runs as root): "
              f"{score(os.path.join(dirs['original-client'], 'netsecrets-secret-db-password.service'))[0]}")


# ---- main ---------------------------------------------------------------------------------


def main():
    if not ensure_nix():
        R.finish()
    tmp = tempfile.mkdtemp(prefix="netsecrets-nix-")
    try:
        # GC_INITIAL_HEAP_SIZE: fewer collections than with Nix's default (a 384 MB heap), so
        # less time collecting; it was also the first workaround for GC_CRASH.
        env = dict(os.environ, NIX_STATE_DIR=os.path.join(tmp, "nix-state"), NIX_LOG_DIR=os.path.join(tmp, "nix-log"),
                   NIX_CONF_DIR=os.path.join(tmp, "nix-conf"), HOME=os.environ.get("HOME") or tmp,
                   GC_INITIAL_HEAP_SIZE=os.environ.get("GC_INITIAL_HEAP_SIZE", "1G"))
        for k in ("NIX_STATE_DIR", "NIX_LOG_DIR", "NIX_CONF_DIR"):
            os.makedirs(env[k])
        parse_all(env)
        nixpkgs, where = find_nixpkgs(env)
        if nixpkgs:
            print(f"nixpkgs: {nixpkgs} ({where}; lib/.version {nixpkgs_version(nixpkgs)})", flush=True)
            facts = nixos_checks(env, tmp, nixpkgs)
            if os.environ.get("NETSECRETS_CHECK_TOPICS"):
                print("(NETSECRETS_CHECK_TOPICS: the flake is not evaluated, systemd-analyze looks only at "
                      "the chosen topics' scenarios)", flush=True)
            else:
                flake_checks(facts)
        else:
            R.skip(f"real-NixOS evaluation, flake checks and systemd-analyze: {where}. Set NETSECRETS_NIXPKGS "
                   "to a nixpkgs tree (or put nixpkgs on NIX_PATH)")
            facts = None
        stub_checks(env, nixpkgs)
        if facts is not None:
            analyze(facts, tmp)
    finally:
        # The chroot store holds read-only files; make them removable.
        subprocess.run(["chmod", "-R", "u+w", tmp], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    R.finish()


if __name__ == "__main__":
    main()
