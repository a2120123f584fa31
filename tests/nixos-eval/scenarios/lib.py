"""What every scenarios/<topic>.py shares: the report (R), the assertion helpers, reading unit
texts, and Scenarios, the facts of the evaluated scenarios (f, units, warns, asserts, ...).

A topic's checks look like

    def checks(ctx):
        f, units, warns = ctx.f, ctx.units, ctx.warns

        def original_server_unit():
            t = units("original-server")["netsecrets-daemon.service"]
            has('"receive"', exec_start(t), "ExecStart")
        R.check("NixOS: original server: ...", original_server_unit)

A check function returns None (pass) or raises (AssertionError from expect/has/...: fail).
"""

import hashlib
import os
import re
import sys


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def ok(self, name, detail=""):
        self.passed += 1
        print(f"PASS  {name}" + (f"  ({detail})" if detail else ""), flush=True)

    def fail(self, name, detail=""):
        self.failed += 1
        print(f"FAIL  {name}", flush=True)
        for line in str(detail).splitlines()[:40]:
            print(f"      {line}", flush=True)

    def skip(self, what):
        self.skipped += 1
        bar = "!" * 76
        print(f"\n{bar}\n!!! SKIPPED: {what}\n{bar}\n", flush=True)
        if os.environ.get("CI") == "true":
            self.fail(f"CI=true: a skipped check group is a failure ({what.split(':')[0]})")

    def check(self, name, fn):
        """fn() returns None/True (pass) or a string (why it failed); raising fails."""
        try:
            r = fn()
        except Exception as e:  # a missing fact or a wrong shape is a failure, never a crash
            self.fail(name, f"{type(e).__name__}: {e}")
            return
        if r is None or r is True:
            self.ok(name)
        else:
            self.fail(name, r if isinstance(r, str) else repr(r))

    def finish(self):
        if self.skipped:
            print(f"({self.skipped} check group(s) SKIPPED, see above)")
        print(f"{self.passed} passed, {self.failed} failed")
        sys.exit(0 if self.failed == 0 else 1)


R = Report()
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


def has(sub, text, what="text"):
    expect(sub in text, f"missing {sub!r} in {what}:\n{text}")


def has_not(sub, text, what="text"):
    lines = [line for line in text.splitlines() if sub in line]
    expect(not lines, f"unexpected {sub!r} in {what}:\n" + "\n".join(lines))


# ---- unit texts ---------------------------------------------------------------------------


def unit_lines(text, key):
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


def unit_value(text, key):
    v = unit_lines(text, key)
    expect(len(v) == 1, f"expected one {key}= line, got {v}:\n{text}")
    return v[0]


def words(text, key):
    return " ".join(unit_lines(text, key)).split()


def exec_start(text):
    return unit_value(text, "ExecStart")


# ExecStart= of ours runs the netsecrets package.
exe_re = re.compile(r'^"(/nix/store/[^"]+/bin/netsecrets)"')


def placeholder(name):
    """What nix/modules/placeholder.nix and src/client/template.rs compute, a third time."""
    return f"<netsecrets:{name}:{hashlib.sha256(('netsecrets-placeholder:' + name).encode()).hexdigest()}>"


def netsecrets_binary():
    for c in (os.path.join(REPO, "target", "x86_64-unknown-linux-musl", "release", "netsecrets"),
              os.path.join(REPO, "target", "release", "netsecrets"), os.path.join(REPO, "target", "debug", "netsecrets")):
        if os.access(c, os.X_OK):
            return c
    return None


# ---- the facts of the evaluated scenarios -------------------------------------------------


class Scenarios:
    """The facts of every evaluated scenario (all topics), and what the checks need besides:
    canary_dir/canaries (files whose contents must reach no derivation), whole_systems (the
    WHOLE_SYSTEMS of every topic), closure_check (a search of a system's derivations)."""

    def __init__(self, facts, canary_dir, canaries, whole_systems, evaluators, group_of):
        self.facts = facts
        self.canary_dir = canary_dir
        self.canaries = canaries
        self.whole_systems = whole_systems
        self.evaluators = evaluators
        self.group_of = group_of

    def f(self, name):
        if name not in self.facts:
            raise AssertionError(f"no facts for {name} (its group failed to evaluate)")
        return self.facts[name]

    def units(self, name):
        u = self.f(name)["units"]
        expect(u is not None, f"{name}: the units did not evaluate")
        return u

    def iunits(self, name):
        u = self.f(name)["initrdUnits"]
        expect(u is not None, f"{name}: the initrd units did not evaluate")
        return u

    def warns(self, name, *subs):
        ws = self.f(name)["warnings"]
        for s in subs:
            expect(any(s in w for w in ws), f"{name}: no warning containing {s!r}; warnings: {ws}")

    def no_warn(self, name, sub):
        ws = self.f(name)["warnings"]
        expect(not any(sub in w for w in ws), f"{name}: unexpected warning containing {sub!r}: {ws}")

    def failed(self, name):
        return self.f(name)["failedAssertions"]

    def asserts(self, name, *subs):
        fa = self.failed(name)
        for s in subs:
            expect(any(s in m for m in fa), f"{name}: no failed assertion containing {s!r}; failed: {fa}")

    def evaluator(self, name):
        """The Evaluator whose private store holds the .drv files of scenario `name`."""
        return self.evaluators[self.group_of[name]]

    def closure_check(self, name, absent, only_in=None):
        """A check: no string of `absent` is in any derivation of the system `name`; each of
        `only_in` ({string: regex}) is in some, and only in those whose path matches."""
        def c():
            drv = self.f(name)["drvPath"]
            expect(drv, f"{name}: no drvPath")
            found = self.evaluator(name).grep_closure(drv, list(absent) + list(only_in or {}))
            bad = [f"{s!r} in {p}" for s in absent for p in found[s]]
            for s, suffix in (only_in or {}).items():
                expect(found[s], f"{s!r} is in no derivation (expected the warned store file)")
                bad += [f"{s!r} in {p}" for p in found[s] if not re.search(suffix, p)]
            expect(not bad, "\n".join(bad))
        return c
