#!/usr/bin/env python3
"""The Nix side of netsecrets, checked without building anything.

  1. Every .nix file in the repository parses (nix-instantiate --parse).
  2. The modules inside real NixOS (tests/nixos-eval/nixos.nix): whole configurations
     built with nixos/lib/eval-config.nix of a nixpkgs tree -- the seed's
     examples verbatim, the documented file-based setups, enableInitrd and
     enableInitrdPassword with grub, systemd-boot and no boot loader -- must
     evaluate config.system.build.toplevel.drvPath; refused setups must fail
     with the module's own assertion; the rendered units, credentials,
     warnings and assertions are checked; no secret value reaches a unit, and
     no ignored or file-held secret reaches any derivation of the system.
  3. The flake (tests/nixos-eval/flake.nix calls flake.nix's outputs with that tree
     as nixpkgs): every checks.<system>.<name>.drvPath evaluates, for
     x86_64-linux and aarch64-linux, and the package (pkgsStatic) for both.
  4. tests/nixos-eval/eval.nix: what real NixOS cannot check (the modules against
     another nixpkgs lib, e.g. a newer one, given by NETSECRETS_NIXPKGS_LIB).
  5. systemd-analyze verify on units rendered by the real evaluation, and
     systemd-analyze security --offline=true of netsecrets-daemon.service
     (<= 2.0).

nixpkgs: $NETSECRETS_NIXPKGS (a nixpkgs tree), else <nixpkgs> on NIX_PATH,
else the tarball ../shared/nixpkgs/nixpkgs-*.tar.xz beside the repository,
unpacked once into ${XDG_CACHE_HOME:-~/.cache}/netsecrets/nixpkgs-<hash>.
None: steps 2-5 are skipped loudly, and with CI=true that is a failure.

Usage: python3 tests/nixos-eval/check.py     One PASS/FAIL line per check; last line
"N passed, N failed"; exit status 0 only when nothing failed.
"""

import concurrent.futures
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
NIX_ARGS = ["--option", "sandbox", "false", "--option", "substituters", ""]


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


def expect(cond, why):
    if not cond:
        raise AssertionError(why)


def has(sub, text, what="text"):
    expect(sub in text, f"missing {sub!r} in {what}:\n{text}")


def has_not(sub, text, what="text"):
    lines = [line for line in text.splitlines() if sub in line]
    expect(not lines, f"unexpected {sub!r} in {what}:\n" + "\n".join(lines))


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
    so parallel groups do not wait for each other's database lock), so the .drv files of
    every evaluated system are written where the leak checks can read them."""

    def __init__(self, env, tmp, nixpkgs, group):
        self.env = env
        self.nixpkgs = nixpkgs
        self.root = os.path.join(tmp, "store-" + group)
        os.makedirs(self.root, exist_ok=True)
        self.store = ["--store", f"local?root={self.root}"]

    def eval(self, file, args, attr=None):
        cmd = ["nix-instantiate", *NIX_ARGS, *self.store, "--read-write-mode", "--eval", "--strict", "--json",
               file, "--arg", "nixpkgs", self.nixpkgs, *args]
        if attr:
            cmd += ["-A", attr]
        p = run(cmd, self.env)
        if p.returncode != 0:
            # A negative code is a signal (e.g. SIGKILL from the OOM killer: no stderr at all).
            return None, f"exit status {p.returncode}\n" + tail(p.stderr, 40)
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
        vectors may well contain the seed's "hunter2"; they are not searched."""
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


# ---- unit helpers -------------------------------------------------------------------------


def unit_lines(text, key):
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


def unit_value(text, key):
    v = unit_lines(text, key)
    expect(len(v) == 1, f"expected one {key}= line, got {v}:\n{text}")
    return v[0]


def words(text, key):
    return " ".join(unit_lines(text, key)).split()


# ---- step 2: real NixOS -------------------------------------------------------------------

# One nix-instantiate per group, two at a time (each system needs about 1 GB while evaluated).
GROUPS = {
    "servers": ["seed-server", "doc-server", "overrides-server", "lowport-server", "two-client-server",
                "clients-only-server", "rotation-server"],
    "clients": ["seed-client", "doc-client", "owned-client", "prompt-only-none"],
    "initrd": ["initrd-grub", "initrd-systemd-boot", "initrd-none-literals"],
    "prompt": ["prompt-grub", "prompt-systemd-boot", "prompt-none-literal-key"],
    "templates": ["templates-content", "templates-mosquitto", "templates-initrd"],
    # The module system keeps what it evaluated: the many small configurations are split in
    # two so that no process grows past a few GB.
    "types": ["types"],
    "options": [
        "initrd-none-files", "seed-client-initrd-none", "prompt-none-key-file",
        "prompt-with-password", "client-password-and-file", "client-no-server", "client-no-password",
        "client-stray-secret", "initrd-no-systemd", "initrd-no-network", "server-no-password",
        "server-no-secrets", "server-stray-file", "server-reserved-name", "server-plaintext", "disabled",
        "server-client-bad",
        "template-unrequested", "template-cut", "template-both", "template-initrd-off", "template-no-client",
        "template-no-context", "template-credential-only", "consumer-refused",
        "protocol-pinned", "client-protocol-2-plaintext",
    ],
    # Services that use secrets (issue 14): ordering, credentials, change actions, refresh.
    "consumers": ["consumers", "consumers-initrd"],
    # The offline cache: stage-2 flags, no stage-1 flags, the assertion on `after`.
    "offline": ["offline-cache", "offline-cache-refused"],
    # Change actions without refreshInterval, refreshStartsUnits, secrets.<name>.path.
    "day": ["consumers-no-interval", "consumers-start-units", "no-actions"],
    "docs": ["docs"],
    # Where the secrets are kept: RAM file systems, initrdOnly, keepOnDisk.
    "storage": ["storage-luks", "storage-disk", "storage-refused"],
}
WHOLE_SYSTEMS = (GROUPS["servers"] + GROUPS["clients"] + GROUPS["initrd"] + GROUPS["prompt"]
                 + GROUPS["templates"] + GROUPS["consumers"] + ["storage-luks", "storage-disk"])
WHOLE_SYSTEMS += ["offline-cache"]

# Secret values used by tests/nixos-eval/nixos.nix. None may appear in any rendered unit.
LITERALS = ["hunter2", "my-aes-key", "ignored-literal-key", "literal-initrd-password", "literal-initrd-key",
            "literal-prompt-key", "typed-anyway", "both-set"]

NIXPKGS_INITRD_MSG = "boot.loader.initrd.secrets values must be unquoted paths"


def nixos_checks(env, tmp, nixpkgs):
    print("== NixOS: the modules in real NixOS (tests/nixos-eval/nixos.nix)", flush=True)
    canary_dir = os.path.join(tmp, "canary")
    os.makedirs(canary_dir)
    canaries = {}
    for name in ("pw", "key"):
        value = f"canary-{name}-" + os.urandom(12).hex()
        with open(os.path.join(canary_dir, name), "w") as f:
            f.write(value)
        os.chmod(os.path.join(canary_dir, name), 0o400)
        canaries[name] = value

    nixfile = os.path.join(HERE, "nixos.nix")
    flakefile = os.path.join(HERE, "flake.nix")
    facts, times, errors = {}, {}, {}
    evaluators = {g: Evaluator(env, tmp, nixpkgs, g) for g in list(GROUPS) + ["flake", "flake-aarch64"]}
    group_of = {s: g for g, ss in GROUPS.items() for s in ss}

    def run_group(group):
        import time
        t0 = time.monotonic()
        ev = evaluators[group]
        if group == "flake":
            out, err = ev.eval(flakefile, ["--arg", "checkSystems", '[ "x86_64-linux" ]'], attr="facts")
        elif group == "flake-aarch64":
            out, err = ev.eval(flakefile, ["--arg", "checkSystems", '[ "aarch64-linux" ]'], attr="facts.checks")
        else:
            only = "[ " + " ".join(json.dumps(s) for s in GROUPS[group]) + " ]"
            out, err = ev.eval(nixfile, ["--arg", "only", only, "--argstr", "canaryDir", canary_dir])
        return group, out, err, time.monotonic() - t0

    import time
    t_all = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        all_groups = ["options", "types", "servers", "clients", "initrd", "prompt", "templates",
                      "consumers", "offline", "day", "docs", "storage", "flake", "flake-aarch64"]
        # NETSECRETS_CHECK_GROUPS=storage,consumers: only those (while working on them; the
        # checks of the others then fail for lack of facts).
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
    import resource
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 / 1024
    print("info: evaluation times (s): " + ", ".join(f"{g} {t:.0f}" for g, t in times.items())
          + f"; wall {wall:.0f} with 2 in parallel; largest nix-instantiate {peak:.1f} GB", flush=True)

    for group, err in errors.items():
        R.fail(f"nix-instantiate of group {group} ({', '.join(GROUPS.get(group, ['flake outputs']))})", err)

    def f(name):
        if name not in facts:
            raise AssertionError(f"no facts for {name} (its group failed to evaluate)")
        return facts[name]

    def units(name):
        u = f(name)["units"]
        expect(u is not None, f"{name}: the units did not evaluate")
        return u

    def iunits(name):
        u = f(name)["initrdUnits"]
        expect(u is not None, f"{name}: the initrd units did not evaluate")
        return u

    def warns(name, *subs):
        ws = f(name)["warnings"]
        for s in subs:
            expect(any(s in w for w in ws), f"{name}: no warning containing {s!r}; warnings: {ws}")

    def no_warn(name, sub):
        ws = f(name)["warnings"]
        expect(not any(sub in w for w in ws), f"{name}: unexpected warning containing {sub!r}: {ws}")

    def failed(name):
        return f(name)["failedAssertions"]

    def asserts(name, *subs):
        fa = failed(name)
        for s in subs:
            expect(any(s in m for m in fa), f"{name}: no failed assertion containing {s!r}; failed: {fa}")

    # -- every supported scenario is a system that evaluates
    for name in WHOLE_SYSTEMS:
        def top(name=name):
            x = f(name)
            expect(x["failedAssertions"] == [], f"failed assertions: {x['failedAssertions']}")
            expect(x["drvPath"] and x["drvPath"].endswith(".drv"), f"toplevel.drvPath did not evaluate: {x['drvPath']}")
        R.check(f"NixOS: {name}: config.system.build.toplevel.drvPath evaluates", top)

    exe_re = re.compile(r'^"(/nix/store/[^"]+/bin/netsecrets)"')

    def exec_start(text):
        return unit_value(text, "ExecStart")

    # -- the seed's server, verbatim
    def seed_server_unit():
        t = units("seed-server")["netsecrets-daemon.service"]
        e = exec_start(t)
        expect(exe_re.match(e), f"ExecStart does not run the netsecrets package: {e}")
        for s in ['"receive" "--server" "10.0.0.1" "--port" "8081"', '"--password-file" %d/netsecrets.password',
                  '"--secret-file" db-password=%d/db-password "--secret-file" api-key=%d/api-key',
                  '"--authorized-ips" "10.0.0.0/24"', '"--encryption-key-file" %d/netsecrets.encryption-key']:
            has(s, e, "ExecStart")
        has_not("--verbose", e, "ExecStart")
        has_not("--insecure", e, "ExecStart")
        lc = unit_lines(t, "LoadCredential")
        expect(len(lc) == 4, f"LoadCredential: {lc}")
        expect(lc[0].startswith("netsecrets.password:/nix/store/") and lc[0].endswith("-netsecrets-server-password"), lc[0])
        expect(lc[1:3] == ["db-password:/run/secrets/db-password", "api-key:/run/secrets/api-key"], lc)
        expect(lc[3].startswith("netsecrets.encryption-key:/nix/store/"), lc[3])
        expect(unit_lines(t, "IPAddressDeny") == ["any"] and unit_lines(t, "IPAddressAllow") == ["10.0.0.0/24"], t)
        for k, v in [("User", "netsecrets"), ("Group", "netsecrets"), ("ProtectSystem", "strict"),
                     ("PrivateUsers", "true"), ("PrivateDevices", "true"), ("NoNewPrivileges", "true"),
                     ("MemoryDenyWriteExecute", "true"), ("Restart", "on-failure"), ("Type", "notify"),
                     ("NotifyAccess", "main")]:
            expect(unit_lines(t, k) == [v], f"{k}= is {unit_lines(t, k)}, want {v}")
        expect(unit_lines(t, "CapabilityBoundingSet") == [""], f"CapabilityBoundingSet {unit_lines(t, 'CapabilityBoundingSet')}")
        # AF_UNIX for READY=1 on $NOTIFY_SOCKET (Type=notify)
        expect(unit_lines(t, "RestrictAddressFamilies") == ["AF_INET", "AF_INET6", "AF_UNIX"], t)
        expect("@system-service" in unit_lines(t, "SystemCallFilter"), t)
        expect("network-online.target" in words(t, "After") and "network-online.target" in words(t, "Wants"), t)
        expect(f("seed-server")["wantedBy"]["netsecrets-daemon.service"] == ["multi-user.target"], "wantedBy")
        expect(not unit_lines(t, "Environment") or all("PATH=" in e or "LOCALE" in e or "TZDIR" in e
                                                        for e in unit_lines(t, "Environment")), t)
    R.check("NixOS: seed server: netsecrets-daemon.service runs `receive` with credentials only, hardened, "
            "IPAddressAllow= from authorized_ips", seed_server_unit)

    def seed_server_rest():
        x = f("seed-server")
        warns("seed-server", "netsecrets.server.password is set", "netsecrets.server.encryptionKey is set",
              "world-readable")
        no_warn("seed-server", "is ignored")
        expect(x["users"] == {"netsecrets": {"isSystemUser": True, "group": "netsecrets"}}, x["users"])
        expect(x["groups"] == ["netsecrets"], x["groups"])
        expect(x["firewallTCP"] == [], x["firewallTCP"])
        expect(json.loads(x["configJson"]) == {
            "ip": "10.0.0.1", "port": 8081, "secrets": ["db-password", "api-key"],
            "authorized_ips": ["10.0.0.0/24"], "insecure": False, "verbose": False, "encryption": True, "clients": {},
            "password_file": None, "encryption_key_file": None,
            "secret_files": {"db-password": "/run/secrets/db-password", "api-key": "/run/secrets/api-key"},
        }, x["configJson"])
    R.check("NixOS: seed server: literal values warn (not errors); user/group; /etc/netsecrets/config.json "
            "holds the non-secret settings; firewall closed by default", seed_server_rest)

    def doc_server():
        x = f("doc-server")
        t = units("doc-server")["netsecrets-daemon.service"]
        expect(unit_lines(t, "LoadCredential") == [
            "netsecrets.password:/run/agenix/netsecrets-password", "db-password:/run/secrets/db-password",
            "api-key:/run/secrets/api-key", "netsecrets.encryption-key:/run/agenix/netsecrets-key"],
            unit_lines(t, "LoadCredential"))
        expect(x["firewallTCP"] == [8081], x["firewallTCP"])
        no_warn("doc-server", "netsecrets")
    R.check("NixOS: documented file-based server: credentials from the files, openFirewall, no warning", doc_server)

    def two_client_server():
        x = f("two-client-server")
        t = units("two-client-server")["netsecrets-daemon.service"]
        e = exec_start(t)
        for s_ in ['"--password-file" %d/netsecrets.password', '"--clients-file" "/etc/netsecrets/clients"',
                   '"--authorized-ips" "10.0.0.0/24,10.0.1.0/24,fd00::/64,10.0.5.7"']:
            has(s_, e, "ExecStart")
        expect(unit_lines(t, "IPAddressAllow") == ["10.0.0.0/24", "10.0.1.0/24", "fd00::/64", "10.0.5.7"],
               unit_lines(t, "IPAddressAllow"))
        lc = unit_lines(t, "LoadCredential")
        expect(lc[-3:] == ["netsecrets.client.builder.password:/run/agenix/netsecrets-builder-password",
                           f"netsecrets.client.laptop.password:{canary_dir}/pw",
                           f"netsecrets.client.laptop.key:{canary_dir}/key"], lc)
        reload = unit_lines(t, "ExecReload")
        expect(len(reload) == 1 and re.match(r"^/nix/store/[^ ]+-coreutils-[^ ]+/bin/kill -HUP \$MAINPID$", reload[0]),
               f"ExecReload: {reload}")
        expect(x["clientsFile"] ==
               "builder password=netsecrets.client.builder.password from=10.0.1.0/24,fd00::/64 secrets=*\n"
               "laptop password=netsecrets.client.laptop.password key=netsecrets.client.laptop.key from=10.0.5.7 "
               "secrets=wifi\n", x["clientsFile"])
        for v in canaries.values():
            expect(v not in x["clientsFile"] and v not in t, "a client's password or key in the unit or clients file")
        expect(len(x["reloadTriggers"]) == 1 and x["reloadTriggers"][0].startswith("/nix/store/"), x["reloadTriggers"])
        # A changed client password or key file restarts the daemon like any other source file.
        watched = unit_lines(units("two-client-server")["netsecrets-daemon-sources.path"], "PathChanged")
        for want in ("/run/agenix/netsecrets-builder-password", f"{canary_dir}/pw", f"{canary_dir}/key"):
            expect(want in watched, f"{want} not watched: {watched}")
        no_warn("two-client-server", "netsecrets")
    R.check("NixOS: two named clients: each password and key through LoadCredential=, the clients file in "
            "/etc names only credential ids (no secret), IPAddressAllow= and --authorized-ips include the "
            "clients' networks, ExecReload= sends SIGHUP, a clients-only change reloads", two_client_server)

    def clients_only_server():
        t = units("clients-only-server")["netsecrets-daemon.service"]
        e = exec_start(t)
        has_not("--password-file", e, "ExecStart")
        has_not("--encryption-key-file", e, "ExecStart")
        has('"--authorized-ips" "10.0.5.7"', e, "ExecStart")
        expect(unit_lines(t, "IPAddressAllow") == ["10.0.5.7"] and unit_lines(t, "IPAddressDeny") == ["any"], t)
        expect(unit_lines(t, "LoadCredential") == [
            "wifi:/run/secrets/wifi", "netsecrets.client.laptop.password:/run/agenix/laptop-pw",
            "netsecrets.client.laptop.key:/run/agenix/laptop-key"], unit_lines(t, "LoadCredential"))
        no_warn("clients-only-server", "no encryption key")
        asserts("server-client-bad", 'clients."default"', 'names "disk"')
    def rotation_server():
        x = f("rotation-server")
        t = units("rotation-server")["netsecrets-daemon.service"]
        e = exec_start(t)
        for s_ in ['"--password-file" %d/netsecrets.password "--password-file" %d/netsecrets.password.1',
                   '"--encryption-key-file" %d/netsecrets.encryption-key '
                   '"--encryption-key-file" %d/netsecrets.encryption-key.1',
                   '"--max-failures" "10" "--max-per-ip" "16" "--max-connections" "512" "--timeout" "9"']:
            has(s_, e, "ExecStart")
        lc = unit_lines(t, "LoadCredential")
        for want in ["netsecrets.password:/run/agenix/pw-old", "netsecrets.password.1:/run/agenix/pw-new",
                     "netsecrets.encryption-key:/run/agenix/key-old",
                     "netsecrets.encryption-key.1:/run/agenix/key-new",
                     "netsecrets.client.nas.password:/run/agenix/nas-pw-old",
                     "netsecrets.client.nas.password.1:/run/agenix/nas-pw-new",
                     "netsecrets.client.nas.key:/run/agenix/nas-key-old",
                     "netsecrets.client.nas.key.1:/run/agenix/nas-key-new"]:
            expect(want in lc, f"{want} not in {lc}")
        expect(x["clientsFile"] ==
               "nas password=netsecrets.client.nas.password password=netsecrets.client.nas.password.1 "
               "key=netsecrets.client.nas.key key=netsecrets.client.nas.key.1 from=10.0.5.8 secrets=wifi\n",
               x["clientsFile"])
        watched = unit_lines(units("rotation-server")["netsecrets-daemon-sources.path"], "PathChanged")
        for want in ("/run/agenix/pw-new", "/run/agenix/key-new", "/run/agenix/nas-pw-new", "/run/agenix/nas-key-new"):
            expect(want in watched, f"{want} not watched: {watched}")
        no_warn("rotation-server", "netsecrets")
        # Without the limits set, none reaches the command line (the daemon's defaults).
        e2 = exec_start(units("two-client-server")["netsecrets-daemon.service"])
        for flag in ("--max-failures", "--max-per-ip", "--max-connections", "--timeout"):
            has_not(flag, e2, "ExecStart")
    R.check("NixOS: rotation: password and key files as lists (shared and per client) each reach the daemon "
            "through LoadCredential= and the clients file; maxFailures/maxPerIp/maxConnections/timeout map to "
            "the flags, and are absent when null", rotation_server)

    R.check("NixOS: clients only: no shared password or server key needed, IPAddressAllow= is the clients' "
            "networks; a reserved client name and a secret not served are refused", clients_only_server)

    def server_rotation():
        x = f("doc-server")
        u = units("doc-server")
        t = u["netsecrets-daemon.service"]
        expect(unit_value(t, "Type") == "notify" and unit_value(t, "NotifyAccess") == "main", t)
        expect(re.fullmatch(r"/nix/store/[^/]+-coreutils-[^/]+/bin/kill -HUP \$MAINPID", unit_value(t, "ExecReload")),
               unit_value(t, "ExecReload"))
        p = u["netsecrets-daemon-sources.path"]
        expect(unit_lines(p, "PathChanged") == ["/run/secrets/db-password", "/run/secrets/api-key",
                                                "/run/agenix/netsecrets-password", "/run/agenix/netsecrets-key"],
               unit_lines(p, "PathChanged"))
        expect(unit_value(p, "Unit") == "netsecrets-daemon-sources.service", p)
        expect("multi-user.target" in x["wantedBy"]["netsecrets-daemon-sources.path"], x["wantedBy"])
        svc = u["netsecrets-daemon-sources.service"]
        expect(unit_value(svc, "ExecStart") == f"{x['systemctl']} try-restart netsecrets-daemon.service", svc)
        # A literal password or key is a store file: not watched.
        sp = units("seed-server")["netsecrets-daemon-sources.path"]
        expect(unit_lines(sp, "PathChanged") == ["/run/secrets/db-password", "/run/secrets/api-key"], sp)
    R.check("NixOS: server: Type=notify (READY=1 from the daemon), ExecReload= SIGHUP; "
            "netsecrets-daemon-sources.path (PathChanged= on every secret, password and key file outside the "
            "store) restarts netsecrets-daemon (LoadCredential= copies are made at start)", server_rotation)

    def overrides_server():
        t = units("overrides-server")["netsecrets-daemon.service"]
        expect(unit_lines(t, "LoadCredential") == [
            "netsecrets.password:/run/agenix/netsecrets-password", "db-password:/run/agenix/db",
            "api-key:/run/agenix/api-key", "netsecrets.encryption-key:/run/agenix/netsecrets-key"],
            unit_lines(t, "LoadCredential"))
        expect(unit_lines(t, "RestartSec") == ["30s"] and unit_lines(t, "ProtectSystem") == ["full"], t)
        has('"--verbose"', exec_start(t))
        has('"--authorized-ips" "10.0.0.0/24,fd00::/64"', exec_start(t))
        expect(unit_lines(t, "IPAddressAllow") == ["10.0.0.0/24", "fd00::/64"], t)
        warns("overrides-server", "netsecrets.server.encryptionKey is ignored because netsecrets.server.encryptionKeyFile")
        no_warn("overrides-server", "encryptionKey is set")
    R.check("NixOS: server with secretFiles, secretsDir, overrides and the client's spelling passwordFile; "
            "encryptionKey + encryptionKeyFile warns naming both", overrides_server)

    def lowport():
        t = units("lowport-server")["netsecrets-daemon.service"]
        expect(unit_lines(t, "CapabilityBoundingSet") == ["CAP_NET_BIND_SERVICE"], t)
        expect(unit_lines(t, "AmbientCapabilities") == ["CAP_NET_BIND_SERVICE"], t)
        expect(unit_lines(t, "PrivateUsers") == ["false"], t)
        has('"--insecure"', exec_start(t))
        has_not("--encryption-key", exec_start(t))
        expect(len(unit_lines(t, "LoadCredential")) == 2, unit_lines(t, "LoadCredential"))
    R.check("NixOS: server on port 443 gets CAP_NET_BIND_SERVICE only; insecure drops the key", lowport)

    # -- the seed's client, verbatim
    def seed_client_units():
        u = units("seed-client")
        expect(sorted(u) == ["netsecrets-client.service", "netsecrets-secret-api-key.service",
                             "netsecrets-secret-db-password.service"], sorted(u))
        agg = u["netsecrets-client.service"]
        for k in ("Wants", "After"):
            for d in ("netsecrets-secret-db-password.service", "netsecrets-secret-api-key.service",
                      "network-online.target"):
                expect(d in words(agg, k), f"{k}= lacks {d}:\n{agg}")
        # Wants= its fetches (one failing does not stop the others); Requires= only the ramfs.
        expect(words(agg, "Requires") == ["var-lib-netsecrets.mount"], agg)
        # One is-active per unit: with several in one call, is-active succeeds if ANY is active.
        e = unit_lines(agg, "ExecStart")
        expect(len(e) == 2 and all(re.fullmatch(r'"/nix/store/[^"]+-systemd-[^"]+/bin/systemctl" "is-active" '
                                                rf'"--quiet" "{u}"', line)
                                   for line, u in zip(e, ["netsecrets-secret-db-password.service",
                                                          "netsecrets-secret-api-key.service"])), e)
        expect(f("seed-client")["wantedBy"]["netsecrets-client.service"] == ["multi-user.target"], "wantedBy")
        t = u["netsecrets-secret-db-password.service"]
        e = exec_start(t)
        expect(exe_re.match(e), e)
        for s in ['"send" "--server" "10.0.0.1" "--port" "8081" "--fallbacks" "10.0.0.2"',
                  '"--password-file" %d/netsecrets.password "--encryption-key-file" %d/netsecrets.encryption-key',
                  '"--request_secrets" "db-password" "--file-output" "/var/lib/netsecrets/db-password" '
                  '"--owner" "root" "--group" "root" "--mode" "0400"']:
            has(s, e, "ExecStart")
        has_not("api-key", e)
        lc = unit_lines(t, "LoadCredential")
        expect(len(lc) == 2 and lc[0].startswith("netsecrets.password:/nix/store/")
               and lc[1] == "netsecrets.encryption-key:/run/secrets/enc-key", lc)
        for k, v in [("ProtectSystem", "strict"), ("ReadWritePaths", "/var/lib/netsecrets"), ("Type", "oneshot"),
                     ("NoNewPrivileges", "true")]:
            expect(unit_lines(t, k) == [v], f"{k}: {unit_lines(t, k)}")
        expect(unit_lines(t, "RestrictAddressFamilies") == ["AF_INET", "AF_INET6"], t)
        expect("network-online.target" in words(t, "After") and "network-online.target" in words(t, "Wants"), t)
    R.check("NixOS: seed client: one fetch unit per secret running `send` once into /var/lib/netsecrets/<name>, "
            "credentials only, netsecrets-client.service aggregates with systemctl is-active", seed_client_units)

    def seed_client_rest():
        x = f("seed-client")
        warns("seed-client", "netsecrets.client.password is set",
              "netsecrets.client.encryptionKey is ignored because netsecrets.client.encryptionKeyFile")
        no_warn("seed-client", "netsecrets.client.encryptionKey is set")
        expect(x["secrets"]["db-password"]["file"] == "/var/lib/netsecrets/db-password", x["secrets"])
        expect(x["secrets"]["api-key"]["file"] == "/var/lib/netsecrets/api-key", x["secrets"])
        expect(x["secrets"]["db-password"]["initrdFile"] == "/run/netsecrets/db-password", x["secrets"])
        expect(x["etcMyapp"] == "/var/lib/netsecrets/db-password", x["etcMyapp"])
        expect(x["tmpfiles"] == ["d /var/lib/netsecrets 0751 root root -",
                                 "z /var/lib/netsecrets/db-password 0400 root root -",
                                 "z /var/lib/netsecrets/api-key 0400 root root -"], x["tmpfiles"])
        expect(x["initrdUnits"] == {} and x["initrdSecrets"] == {}, "stage-1 parts without enableInitrd")
    R.check("NixOS: seed client: literal password warns, encryptionKey + encryptionKeyFile warns naming both; "
            "secrets.<name>.file and the consumer example; tmpfiles; nothing in stage 1", seed_client_rest)

    def doc_client():
        t = units("doc-client")["netsecrets-secret-api-key.service"]
        has('"--owner" "myapp" "--group" "myapp" "--mode" "0440"', exec_start(t))
        expect("z /var/lib/netsecrets/api-key 0440 myapp myapp -" in f("doc-client")["tmpfiles"], f("doc-client")["tmpfiles"])
        expect(unit_lines(t, "LoadCredential") == ["netsecrets.password:/run/agenix/netsecrets-password",
                                                    "netsecrets.encryption-key:/run/secrets/enc-key"], t)
        no_warn("doc-client", "netsecrets")
    R.check("NixOS: documented file-based client: owner/group/mode per secret, credentials from the files, "
            "no warning", doc_client)

    def owned():
        u = units("owned-client")
        name = "netsecrets-secret-a\\x40b\\x2bc.service"
        expect(name in u, f"no {name}: {sorted(u)}")
        e = exec_start(u[name])
        has('"--fallbacks" "10.0.0.2,odd%%host$$name"', e)
        has('"--request_secrets" "a@b+c" "--file-output" "/var/lib/netsecrets/a@b+c"', e)
        has('"--insecure"', e)
        has_not("--encryption-key", e)
        expect(name in words(u["netsecrets-client.service"], "Wants"), u["netsecrets-client.service"])
        t = u["netsecrets-secret-db-password.service"]
        has('"--owner" "postgres" "--group" "postgres" "--mode" "0440"', exec_start(t))
        expect(unit_lines(t, "TimeoutStartSec") == ["5min"], t)
        expect(unit_lines(t, "LoadCredential") == ["netsecrets.password:/run/agenix/pw"], t)
    R.check("NixOS: client: % and $ escaped for systemd, @/+ names get valid unit names, owners, overrides, "
            "the server's spelling password_file", owned)

    # -- stage 1
    def initrd_files(name, loader):
        def c():
            x = f(name)
            expect(x["supportsInitrdSecrets"] is True, f"{loader} should support initrd secrets")
            expect(x["initrdSecrets"] == {
                "/etc/netsecrets/initrd-key": {"kind": "string", "value": f"{canary_dir}/key"},
                "/etc/netsecrets/initrd-password": {"kind": "string", "value": f"{canary_dir}/pw"},
            }, x["initrdSecrets"])
            iu = iunits(name)
            t = iu["netsecrets-secret-luks-key.service"]
            e = exec_start(t)
            expect(exe_re.match(e), e)
            has('"--password-file" "/etc/netsecrets/initrd-password" "--encryption-key-file" "/etc/netsecrets/initrd-key"', e)
            has('"--request_secrets" "luks-key" "--file-output" "/run/netsecrets/luks-key" "--mode" "0400"', e)
            has('"--timeout" "120"', e)
            for k, v in [("DefaultDependencies", "false"), ("TimeoutStartSec", "10min"),
                         ("RuntimeDirectory", "netsecrets"), ("RuntimeDirectoryPreserve", "true")]:
                expect(unit_lines(t, k) == [v], f"{k}: {unit_lines(t, k)}\n{t}")
            for d in ("network-online.target", "initrd-nixos-copy-secrets.service"):
                expect(d in words(t, "After"), f"After= lacks {d}")
            for d in ("cryptsetup-pre.target", "initrd.target", "netsecrets-client.service"):
                expect(d in words(t, "Before"), f"Before= lacks {d}")
            expect("shutdown.target" in words(t, "Conflicts"), t)
            agg = iu["netsecrets-client.service"]
            e = unit_lines(agg, "ExecStart")
            expect(len(e) == 2 and all(re.fullmatch(rf'"/nix/store/[^"]+/bin/systemctl" "is-active" "--quiet" "{u}"',
                                                    line)
                                       for line, u in zip(e, ["netsecrets-secret-luks-key.service",
                                                              "netsecrets-secret-api-key.service"])), e)
            expect(x["initrdWantedBy"]["netsecrets-client.service"] == ["initrd.target"], x["initrdWantedBy"])
            expect("netsecrets-ask-password.service" not in iu, "prompt unit without enableInitrdPassword")
            sp = x["initrdStorePaths"]
            expect(any(p.endswith("/bin/netsecrets") for p in sp) and x["initrdSystemctl"] in sp, sp)
        R.check(f"NixOS: enableInitrd with passwordFile/encryptionKeyFile and {loader}: appended by the boot "
                f"loader (boot.initrd.secrets), stage-1 units fetch to /run/netsecrets/<name> before "
                f"cryptsetup-pre.target", c)
    initrd_files("initrd-grub", "grub")
    initrd_files("initrd-systemd-boot", "systemd-boot")

    def initrd_literals():
        x = f("initrd-none-literals")
        expect(x["supportsInitrdSecrets"] is False, "no boot loader should not support initrd secrets")
        s = x["initrdSecrets"]
        expect(sorted(s) == ["/etc/netsecrets/initrd-key", "/etc/netsecrets/initrd-password"], s)
        for k, v in s.items():
            expect(v["kind"] == "string" and v["value"].startswith("/nix/store/"),
                   f"{k} must be a store-path string (nixpkgs refuses a derivation here): {v}")
        warns("initrd-none-literals", "netsecrets.client.password is set", "netsecrets.client.encryptionKey is set")
    R.check("NixOS: enableInitrd with literal password/key and no boot loader: store-path strings that "
            "nixpkgs' boot.initrd.secrets check accepts (warned)", initrd_literals)

    def initrd_refused():
        fa = failed("initrd-none-files")
        expect(len(fa) == 2, f"want exactly the module's two assertions, got: {fa}")
        asserts("initrd-none-files", "netsecrets.client.encryptionKeyFile cannot reach stage 1",
                "netsecrets.client.passwordFile cannot reach stage 1", "enableInitrdPassword = true",
                "boot.loader.grub or boot.loader.systemd-boot", "netsecrets.client.encryptionKey instead")
        expect(not any(NIXPKGS_INITRD_MSG in m for m in fa), "nixpkgs' own message is shown instead")
        asserts("seed-client-initrd-none", "netsecrets.client.encryptionKeyFile cannot reach stage 1")
        expect(not any("passwordFile cannot reach" in m or NIXPKGS_INITRD_MSG in m
                       for m in failed("seed-client-initrd-none")), failed("seed-client-initrd-none"))
        fa = failed("prompt-none-key-file")
        expect(len(fa) == 1 and "netsecrets.client.encryptionKeyFile cannot reach stage 1" in fa[0], fa)
    R.check("NixOS: a file for stage 1 on a machine whose boot loader cannot append initrd secrets: the "
            "module's assertion names the option and what to do instead (not nixpkgs' message)", initrd_refused)

    def prompt(name, loader, key_file):
        def c():
            x = f(name)
            iu = iunits(name)
            expect(sorted(iu) == ["netsecrets-ask-password.service", "netsecrets-client.service",
                                  "netsecrets-secret-luks-key.service"], sorted(iu))
            ask = iu["netsecrets-ask-password.service"]
            # Each typed password checked once against the server (issue 12: a typo costs one failure).
            expect(re.fullmatch(r'"/nix/store/[^"]+/bin/netsecrets" "ask-password" "--tty" "/dev/console" '
                                r'"--output" "/run/netsecrets-password" "--verify-secret" "luks-key" '
                                r'"--server" "10.0.0.1" "--port" "8080" '
                                r'"--encryption-key-file" "/etc/netsecrets/initrd-key" "--timeout" "60" "--tries" "3" "--protocol" "2"',
                                exec_start(ask)), exec_start(ask))
            expect("network-online.target" in words(ask, "After") and "network-online.target" in words(ask, "Wants")
                   and "initrd-nixos-copy-secrets.service" in words(ask, "After"), ask)
            expect(unit_lines(ask, "TTYPath") == ["/dev/console"] and unit_lines(ask, "DefaultDependencies") == ["false"], ask)
            expect(x["initrdWantedBy"]["netsecrets-ask-password.service"] == ["initrd.target"], x["initrdWantedBy"])
            fetch = iu["netsecrets-secret-luks-key.service"]
            has('"--password-file" "/run/netsecrets-password"', exec_start(fetch))
            expect("netsecrets-ask-password.service" in words(fetch, "After"), fetch)
            expect("netsecrets-secret-luks-key.service" in words(ask, "Before"), ask)
            stage2 = units(name)["netsecrets-secret-luks-key.service"]
            expect("netsecrets.password:/run/netsecrets-password" in unit_lines(stage2, "LoadCredential"), stage2)
            expect(x["client"]["consolePasswordFile"] == "/run/netsecrets-password", x["client"])
            want = {"/etc/netsecrets/initrd-key"}
            expect(set(x["initrdSecrets"]) == want, f"only the key goes into the initrd: {x['initrdSecrets']}")
            if key_file:
                expect(x["initrdSecrets"]["/etc/netsecrets/initrd-key"]["value"] == "/run/agenix/key", x["initrdSecrets"])
            for n, t in list(iu.items()) + list(units(name).items()):
                has_not("/run/secrets", t, n)
                has_not("copy-password", t, n)
        R.check(f"NixOS: enableInitrdPassword + enableInitrd with {loader}: prompt -> fetch in stage 1; stage 2 "
                f"loads /run/netsecrets-password (consolePasswordFile); the typed password is verified once per try against the "
                f"server; nothing under /run/secrets", c)
    prompt("prompt-grub", "grub", True)
    prompt("prompt-systemd-boot", "systemd-boot", True)
    prompt("prompt-none-literal-key", "no boot loader (literal key)", False)

    def prompt_only():
        x = f("prompt-only-none")
        iu = iunits("prompt-only-none")
        expect(sorted(iu) == ["netsecrets-ask-password.service"], sorted(iu))
        expect(x["initrdSecrets"] == {}, x["initrdSecrets"])
        # No initrd network: the typed password cannot be checked in stage 1, only stored.
        has_not("--verify-secret", iu["netsecrets-ask-password.service"], "netsecrets-ask-password.service")
        t = units("prompt-only-none")["netsecrets-secret-db-password.service"]
        expect(unit_lines(t, "LoadCredential") == ["netsecrets.password:/run/netsecrets-password",
                                                    "netsecrets.encryption-key:/run/agenix/key"], t)
    R.check("NixOS: enableInitrdPassword alone, no boot loader: only the prompt in stage 1, no initrd "
            "secrets, stage 2 loads the typed password", prompt_only)

    # -- warnings and assertions for what would otherwise be silently ignored or wrong
    def ignored():
        warns("prompt-with-password",
              "netsecrets.client.password is ignored because netsecrets.client.enableInitrdPassword",
              "netsecrets.client.passwordFile is ignored because netsecrets.client.enableInitrdPassword")
        warns("client-password-and-file", "netsecrets.client.password is ignored because netsecrets.client.passwordFile")
        no_warn("client-password-and-file", "password is set")
        warns("initrd-no-network", "initrd has no network")
        no_warn("prompt-grub", "initrd has no network")
        warns("server-plaintext", "plaintext")
    R.check("NixOS: warnings name both options for every ignored setting (password/passwordFile with "
            "enableInitrdPassword, password with passwordFile); no initrd network; plaintext", ignored)

    def assertions():
        asserts("client-no-server", "netsecrets.client.server")
        asserts("client-no-password", "netsecrets.client.passwordFile")
        asserts("client-stray-secret", "secrets.b")
        asserts("initrd-no-systemd", "boot.initrd.systemd.enable = true")
        asserts("server-no-password", "netsecrets.server.password_file")
        asserts("server-no-secrets", "netsecrets.server.secrets is empty")
        asserts("server-stray-file", "netsecrets.server.secretFiles.other")
        asserts("server-reserved-name", "reserved")
        for n in ("seed-server", "seed-client", "owned-client"):
            expect(failed(n) == [], f"{n}: {failed(n)}")
        expect(not any(u for u in (f("disabled")["units"] or {})), f("disabled")["units"])
    R.check("NixOS: assertions name the option to set; a disabled module defines no unit", assertions)

    # -- the wire protocol: every unit that talks to a server says which (2 with a key unless
    # netsecrets.client.protocol says otherwise), the server its --min-protocol
    def protocol_flags():
        talkers = re.compile(r'"(send|credentials|ask-password)"')
        seen = {}
        for name in WHOLE_SYSTEMS + ["protocol-pinned"]:
            x = f(name)
            cl = x["client"] or {}
            keyed = not cl.get("insecure") and bool(cl.get("encryptionKeyFile") or cl.get("encryptionKey"))
            want = cl.get("protocol") or (2 if keyed else 1)
            texts = list((x["units"] or {}).items()) + [("initrd " + n, t) for n, t in (x["initrdUnits"] or {}).items()]
            for n, t in texts:
                for e in unit_lines(t, "ExecStart"):
                    m = talkers.search(e)
                    if not m or (m.group(1) == "ask-password" and "--verify-secret" not in e):
                        continue
                    expect(e.count('"--protocol"') == 1 and f'"--protocol" "{want}"' in e,
                           f"{name}: {n}: want --protocol {want}: {e}")
                    seen[(name, m.group(1), want)] = True
            d = (x["units"] or {}).get("netsecrets-daemon.service")
            if d is not None:
                want_min = (x["server"] or {}).get("minProtocol", 1)
                has(f'"--min-protocol" "{want_min}"', exec_start(d), f"{name}: netsecrets-daemon ExecStart")
                seen[(name, "receive", want_min)] = True
        # The cases that must have been seen: defaults with and without a key, stage 1 and
        # stage 2, credentials, the typed password's check, and both pinned settings.
        for case in [("seed-client", "send", 2), ("owned-client", "send", 1), ("consumers", "credentials", 2),
                     ("prompt-grub", "ask-password", 2), ("initrd-grub", "send", 2),
                     ("protocol-pinned", "send", 1), ("seed-server", "receive", 1), ("protocol-pinned", "receive", 2)]:
            expect(case in seen, f"no unit checked for {case}; seen: {sorted(seen)}")
        asserts("client-protocol-2-plaintext", "netsecrets.client.protocol = 2 needs an encryption key")
        expect(failed("protocol-pinned") == [], failed("protocol-pinned"))
    R.check("NixOS: every unit that talks to a server passes --protocol (2 with a key, 1 in plaintext or when "
            "netsecrets.client.protocol = 1), stage 1 and 2, send, credentials and the typed password's check; "
            "the server passes --min-protocol (netsecrets.server.minProtocol); protocol 2 without a key is an assertion",
            protocol_flags)

    def types():
        t = f("types")
        accepted = {"server-port-string": 8081, "server-port-int": 8081, "server-port-default": 8080,
                    "client-port-string": 8081, "server-alias-passwordFile": "/run/a/pw",
                    "client-alias-password_file": "/run/a/pw", "client-mode-0440": "0440",
                    "template-path-default": "/run/netsecrets/rendered/t", "template-placeholder-unrequested": False}
        for k, v in accepted.items():
            expect(t[k] == {"ok": True, "value": v}, f"{k}: {t[k]}, want {v}")
        refused = [k for k in t if k not in accepted]
        expect(len(refused) == 16, f"refused cases: {refused}")
        for k in refused:
            expect(t[k]["ok"] is False, f"{k} was accepted: {t[k]}")
    R.check("NixOS: option types: ports as int or string, bad ports, store paths, Nix path values, "
            "relative paths, bad secret names and setuid modes refused; consolePasswordFile read-only; password_file and "
            "passwordFile on both modules; a template's path in the store refused; netsecrets.placeholder read-only and "
            "only for requested secrets", types)

    templates_checks(f, units, iunits, warns, asserts, evaluators[group_of["templates-mosquitto"]])

    # -- no secret value in any unit; no ignored or file-held secret in any derivation
    def no_literal_in_units():
        bad = []
        for name, x in facts.items():
            if name in ("flake", "flake-checks", "types", "docs"):
                continue
            for kind in ("units", "initrdUnits"):
                for u, text in (x.get(kind) or {}).items():
                    bad += [f"{name}: {u} contains {s!r}" for s in LITERALS if s in text]
        expect(not bad, "\n".join(bad))
    R.check("NixOS: no password, key or secret value in any rendered unit text (stage 1 and 2, all scenarios)",
            no_literal_in_units)


    # -- issue 14: services that use secrets
    def storage_ram():
        x = f("storage-luks")
        m = x["mountUnits"]
        expect(m is not None and "var-lib-netsecrets.mount" in m, f"no var-lib-netsecrets.mount: {m}")
        mu = m["var-lib-netsecrets.mount"]
        expect(unit_value(mu, "What") == "ramfs" and unit_value(mu, "Type") == "ramfs"
               and unit_value(mu, "Where") == "/var/lib/netsecrets", mu)
        expect("mode=0751" in unit_value(mu, "Options"), mu)
        expect("local-fs.target" in x["mountWantedBy"]["var-lib-netsecrets.mount"], x["mountWantedBy"])
        u = units("storage-luks")
        for name in ("netsecrets-secret-db-password.service", "netsecrets-client.service",
                     "netsecrets-refresh.service", "netsecrets-credentials.service", "netsecrets-template-app.service"):
            expect(name in u, f"no {name}: {sorted(u)}")
            for key in ("Requires", "After"):
                expect("var-lib-netsecrets.mount" in words(u[name], key), f"{name} {key}= lacks the mount:\n{u[name]}")
        expect("run-netsecrets.mount" in m and unit_value(m["run-netsecrets.mount"], "What") == "ramfs",
               f"stage 2: /run/netsecrets (rendered templates) is ramfs too: {sorted(m)}")
        expect("run-netsecrets.mount" in words(u["netsecrets-template-app.service"], "Requires"),
               "the stage-2 render unit Requires= run-netsecrets.mount")
        expect(unit_value(u["netsecrets-credentials.service"], "ProtectProc") == "default",
               "the credentials service must see /proc/<pid>/cgroup of systemd's loader")
        im = x["initrdMountUnits"]
        expect(im is not None and "run-netsecrets.mount" in im, f"no run-netsecrets.mount in the initrd: {im}")
        imu = im["run-netsecrets.mount"]
        expect(unit_value(imu, "What") == "ramfs" and unit_value(imu, "Where") == "/run/netsecrets", imu)
        expect(unit_value(imu, "IgnoreOnIsolate") in ("true", "yes"), imu)
        iu = iunits("storage-luks")
        for name in ("netsecrets-secret-db-password.service", "netsecrets-secret-luks-root.service",
                     "netsecrets-client.service"):
            for key in ("Requires", "After"):
                expect("run-netsecrets.mount" in words(iu[name], key), f"stage 1 {name} {key}= lacks the mount")
        d = f("storage-disk")
        expect("var-lib-netsecrets.mount" not in (d["mountUnits"] or {}), f"keepOnDisk: no mount: {d['mountUnits']}")
        expect("var-lib-netsecrets.mount" not in words(units("storage-disk")["netsecrets-secret-db-password.service"],
                                                       "Requires"), "keepOnDisk: no Requires= on a mount")
    R.check("NixOS: /var/lib/netsecrets is a ramfs mount (var-lib-netsecrets.mount, 0751) that every stage-2 "
            "fetch, render, refresh and credentials unit Requires= and is After=; stage 1 likewise on "
            "/run/netsecrets (IgnoreOnIsolate: kept across switch-root); keepOnDisk = true: no mount", storage_ram)

    def storage_initrd_only():
        x = f("storage-luks")
        expect(x["drvPath"], "the LUKS example evaluates to a system")
        path = "/run/netsecrets/initrd-only/luks-root/luks-root"
        expect(x["secrets"]["luks-root"]["initrdFile"] == path, x["secrets"]["luks-root"])
        expect(x["luksKeyFile"] == path, x["luksKeyFile"])
        u = units("storage-luks")
        expect("netsecrets-secret-luks-root.service" not in u, "initrdOnly: no stage-2 fetch unit")
        expect("netsecrets-secret-db-password.service" in u, "the other secret has its stage-2 unit")
        expect(not any("luks-root" in t for t in u.values()), "initrdOnly: no stage-2 unit names it")
        expect(not any("luks-root" in r for r in x["tmpfiles"]), f"initrdOnly: no tmpfiles rule: {x['tmpfiles']}")
        iu = iunits("storage-luks")
        lu = iu["netsecrets-secret-luks-root.service"]
        has(f'"--file-output" "{path}"', exec_start(lu), "ExecStart")
        expect(words(lu, "RuntimeDirectory") == ["netsecrets/initrd-only/luks-root"],
               f"only its own directory (systemd empties every RuntimeDirectory= it does not preserve):\n{lu}")
        expect(unit_value(lu, "RuntimeDirectoryPreserve") in ("false", "no"), lu)
        for key in ("Conflicts", "Before"):
            expect("initrd-switch-root.target" in words(lu, key), f"{key}= lacks initrd-switch-root.target:\n{lu}")
        other = iu["netsecrets-secret-db-password.service"]
        expect(unit_value(other, "RuntimeDirectoryPreserve") in ("true", "yes"), other)
        expect("initrd-switch-root.target" not in words(other, "Conflicts"), other)
        expect("netsecrets-secret-luks-root.service" in iu["netsecrets-client.service"], "stage 1 waits for it")
        asserts("storage-refused", "secrets.luks-root.initrdOnly needs netsecrets.client.enableInitrd",
                "secrets.luks-root.initrdOnly: the secret is never fetched in stage 2")
    R.check("NixOS: secrets.<name>.initrdOnly (the LUKS example): fetched in stage 1 into its own "
            "RuntimeDirectory (removed when the unit stops; Conflicts=/Before= initrd-switch-root.target), "
            "no stage-2 unit or tmpfiles rule; refused with requiredBy or without enableInitrd", storage_initrd_only)

    def consumer_ordering():
        u = units("consumers")
        c = f("consumers")["consumerUnits"]
        expect(c is not None, "consumer units did not evaluate")
        app = c["myapp.service"]
        for key, wants in (("Requires", ("netsecrets-ready-db-password.service", "netsecrets-credentials.socket")),
                           ("After", ("netsecrets-secret-db-password.service", "netsecrets-ready-db-password.service",
                                      "netsecrets-credentials.socket")),
                           ("Wants", ("netsecrets-secret-db-password.service",))):
            w = words(app, key)
            for want in wants:
                expect(want in w, f"myapp.service {key}= lacks {want}: {w}")
            expect("netsecrets-secret-api-token.service" not in w, f"no fetch unit for a credential-only secret: {w}")
        expect(unit_lines(app, "LoadCredential") == ["api-token:/run/netsecrets-credentials.sock"],
               f"LoadCredential of myapp.service: {unit_lines(app, 'LoadCredential')}")
        other = c["other.service"]
        expect(not unit_lines(other, "LoadCredential") and not unit_lines(other, "Requires"),
               f"other.service is not listed and gets nothing:\n{other}")
        expect("netsecrets-secret-api-token.service" not in u, "writeFile = false: no fetch unit")
        expect(not any("api-token" in r for r in f("consumers")["tmpfiles"]), f("consumers")["tmpfiles"])
        cl = [w.strip('"') for w in words(u["netsecrets-client.service"], "ExecStart")]
        expect(len(unit_lines(u["netsecrets-client.service"], "ExecStart")) == 1, "one is-active per fetch unit")
        expect("netsecrets-secret-db-password.service" in cl and "netsecrets-secret-api-token.service" not in cl, cl)
    R.check("NixOS: secrets.<name>.requiredBy: Wants=/After= on the fetch unit, Requires=/After= on its gate "
            "netsecrets-ready-<name>.service (and the credentials socket); "
            "credential = true: LoadCredential=<name>:<socket> for the listed unit only; writeFile = false: no "
            "fetch unit, no file", consumer_ordering)

    def consumer_credentials():
        u = units("consumers")
        svc = u["netsecrets-credentials.service"]
        ex = exec_start(svc)
        has('"credentials"', ex, "ExecStart")
        has('"--allow" "api-token=myapp.service"', ex, "ExecStart")
        expect("db-password" not in ex, f"only credential secrets are served: {ex}")
        has("%d/netsecrets.password", ex, "ExecStart")
        expect(unit_value(svc, "Type") == "notify" and unit_value(svc, "NotifyAccess") == "main", svc)
        expect("AF_UNIX" in words(svc, "RestrictAddressFamilies"), svc)
        sock = u["netsecrets-credentials.socket"]
        expect(unit_value(sock, "ListenStream") == "/run/netsecrets-credentials.sock", sock)
        expect(unit_value(sock, "SocketMode") == "0600" and unit_value(sock, "SocketUser") == "root", sock)
        expect("sockets.target" in f("consumers")["wantedBy"]["netsecrets-credentials.socket"], f("consumers")["wantedBy"])
    R.check("NixOS: netsecrets-credentials.socket (0600, root) activates `netsecrets credentials --allow "
            "api-token=myapp.service` (Type=notify, AF_UNIX)", consumer_credentials)

    def consumer_actions():
        x = f("consumers")
        u = units("consumers")
        fetch = exec_start(u["netsecrets-secret-db-password.service"])
        has(f'"--restart-unit" "myapp.service" "--reload-unit" "nginx.service" "--systemctl" "{x["systemctl"]}"',
            fetch, "the fetch unit's ExecStart")
        expect("--start-unit" not in fetch, f"the boot fetch starts nothing itself (ordering does): {fetch}")
        expect("AF_UNIX" in words(u["netsecrets-secret-db-password.service"], "RestrictAddressFamilies"),
               "systemctl needs AF_UNIX to reach PID 1")
        refresh = u["netsecrets-refresh.service"]
        lines = unit_lines(refresh, "ExecStart")
        expect(len(lines) == 1 and lines[0].startswith("-"), f"one ExecStart per file secret, failures ignored: {lines}")
        has('"--file-output" "/var/lib/netsecrets/db-password"', lines[0], "refresh ExecStart")
        expect("--start-unit" not in lines[0], f"a refresh starts nothing by default: {lines[0]}")
        expect(unit_value(refresh, "Type") == "oneshot", refresh)
        expect("AF_UNIX" in words(refresh, "RestrictAddressFamilies"), refresh)
        timer = u["netsecrets-refresh.timer"]
        expect(unit_value(timer, "OnBootSec") == "15min" and unit_value(timer, "OnUnitActiveSec") == "15min", timer)
        expect("timers.target" in x["wantedBy"]["netsecrets-refresh.timer"], x["wantedBy"])
        expect("netsecrets-refresh.timer" not in units("seed-client"), "refreshInterval is off by default")
    R.check("NixOS: restartUnits/reloadUnits become send --restart-unit/--reload-unit --systemctl <systemd's>; "
            "refreshInterval = \"15min\": netsecrets-refresh.timer (OnBootSec, OnUnitActiveSec) runs the fetches "
            "again, starting no unit; off by default", consumer_actions)

    def consumer_initrd():
        iu = iunits("consumers-initrd")
        c = f("consumers-initrd")["initrdConsumerUnits"]
        expect(c is not None, "initrd consumer units did not evaluate")
        un = c["unlock.service"]
        for key in ("Requires", "After"):
            w = words(un, key)
            for want in ("netsecrets-secret-luks-key.service", "netsecrets-credentials.socket"):
                expect(want in w, f"unlock.service {key}= lacks {want}: {w}")
        expect(unit_lines(un, "LoadCredential") == ["luks-key:/run/netsecrets-credentials-initrd.sock"], un)
        svc = iu["netsecrets-credentials.service"]
        has('"--allow" "luks-key=unlock.service"', exec_start(svc), "stage-1 credentials ExecStart")
        has('"--password-file" "/etc/netsecrets/initrd-password"', exec_start(svc), "stage-1 credentials ExecStart")
        sock = iu["netsecrets-credentials.socket"]
        for t in (svc, sock):
            expect(unit_value(t, "DefaultDependencies") == "false", t)
        expect(unit_value(sock, "ListenStream") == "/run/netsecrets-credentials-initrd.sock", sock)
        expect(not f("consumers")["initrdUnits"] or "netsecrets-credentials.socket" not in f("consumers")["initrdUnits"],
               "no stage-1 credentials without initrdRequiredBy")
    R.check("NixOS: initrdRequiredBy in stage 1: Requires=/After= the stage-1 fetch, LoadCredential from the "
            "stage-1 socket, netsecrets-credentials.{socket,service} without default dependencies", consumer_initrd)

    def consumer_refused():
        asserts("consumer-refused", "secrets.a: writeFile = false needs credential = true",
                "secrets.b.credential = true: list the services",
                "secrets.c.initrdRequiredBy needs netsecrets.client.enableInitrd")
    R.check("NixOS: refused: writeFile = false without credential, credential without requiredBy, "
            "initrdRequiredBy without enableInitrd", consumer_refused)

    # -- the offline cache
    def offline_stage2():
        x = f("offline-cache")
        u = units("offline-cache")
        creds = x["systemctl"].replace("/bin/systemctl", "/bin/systemd-creds")
        want = ('"--offline-cache" "/var/lib/netsecrets-cache" "--offline-after" "12" "--offline-max-age" "86400" '
                f'"--systemd-creds" "{creds}"')
        fetch = u["netsecrets-secret-db-password.service"]
        has(want, exec_start(fetch), "the fetch unit's ExecStart")
        refresh = unit_lines(u["netsecrets-refresh.service"], "ExecStart")
        expect(len(refresh) == 1 and want in refresh[0], f"refresh ExecStart: {refresh}")
        for t in (fetch, u["netsecrets-refresh.service"]):
            expect("/var/lib/netsecrets-cache" in words(t, "ReadWritePaths"), t)
            expect(unit_value(t, "PrivateDevices") == "false" and unit_value(t, "DevicePolicy") == "closed", t)
            expect(unit_lines(t, "DeviceAllow") == ["/dev/tpmrm0 rw"], t)
            for key in ("Wants", "After"):
                expect("netsecrets-cache-setup.service" in words(t, key), f"{key}= {words(t, key)}")
        setup = u["netsecrets-cache-setup.service"]
        expect(exec_start(setup) == x["systemctl"].replace("/bin/systemctl", "/bin/systemd-creds setup"), setup)
        expect(unit_value(setup, "ConditionPathExists") == "!/var/lib/systemd/credential.secret", setup)
        expect("d /var/lib/netsecrets-cache 0700 root root -" in x["tmpfiles"], x["tmpfiles"])
        expect(x["client"]["offlineCache"] == {"enable": True, "after": 12, "maxAge": 86400}, x["client"]["offlineCache"])
        no_warn("offline-cache", "offlineCache")
        # Off by default: no flag, no directory, no device.
        d = units("seed-client")
        for t in d.values():
            expect("--offline" not in t and "netsecrets-cache" not in t and "tpmrm0" not in t, t)
        expect(f("seed-client")["client"]["offlineCache"] == {"enable": False, "after": 10, "maxAge": 604800},
               f("seed-client")["client"]["offlineCache"])
    R.check("NixOS: offlineCache: stage-2 fetch and refresh units pass --offline-cache /var/lib/netsecrets-cache "
            "--offline-after --offline-max-age --systemd-creds <systemd's>, may write the cache and open "
            "/dev/tpmrm0 only, after netsecrets-cache-setup (systemd-creds setup); tmpfiles 0700 root; off by "
            "default", offline_stage2)

    def offline_stage1():
        iu = iunits("offline-cache")
        fetch = iu["netsecrets-secret-db-password.service"]
        expect("--offline" not in fetch and "systemd-creds" not in fetch, fetch)
        has('"--file-output" "/run/netsecrets/db-password"', exec_start(fetch), "stage-1 ExecStart")
    R.check("NixOS: offlineCache: the stage-1 (initrd) fetch gets no cache flags (the host key and the cache "
            "are on the root file system)", offline_stage1)

    def offline_refused():
        asserts("offline-cache-refused", "offlineCache.after (10 s) must be below netsecrets.client.timeout (10 s)")
        warns("offline-cache-refused", "offlineCache is enabled without netsecrets.client.refreshInterval")
    R.check("NixOS: offlineCache: after >= timeout is refused; no refreshInterval is warned about", offline_refused)
    # -- day two: change actions, restarts, stopped units, `path`
    def no_propagating_dependency():
        for name in ("consumers", "consumers-no-interval", "no-actions"):
            for unit, text in f(name)["consumerUnits"].items():
                for key in ("Requires", "Requisite", "BindsTo", "PartOf"):
                    bad = [w for w in words(text, key) if w.startswith("netsecrets-secret-")]
                    expect(not bad, f"{name}: {unit} {key}= {bad}: a restart of the fetch unit would restart it")
        tpl = units("templates-content")["netsecrets-template-app.conf.service"]
        for key in ("Requires", "Requisite", "BindsTo", "PartOf"):
            bad = [w for w in words(tpl, key) if w.startswith("netsecrets-secret-")]
            expect(not bad, f"template unit {key}= {bad}")
        # The gates, and the RAM file systems the files are on.
        expect(sorted(words(tpl, "Requires")) == ["netsecrets-ready-api-key.service",
                                                  "netsecrets-ready-db-password.service",
                                                  "run-netsecrets.mount", "var-lib-netsecrets.mount"], tpl)
        gate = units("no-actions")["netsecrets-ready-db-password.service"]
        expect(words(gate, "Wants") == ["netsecrets-secret-db-password.service"] == words(gate, "After"), gate)
        expect(not words(gate, "Requires") and not words(gate, "BindsTo") and not words(gate, "PartOf"), gate)
        ex = [w.strip('"') for w in words(gate, "ExecStart")]
        expect(ex[0].endswith("/bin/systemctl") and ex[1:] == ["is-active", "--quiet",
                                                              "netsecrets-secret-db-password.service"], ex)
        expect(unit_value(gate, "Type") == "oneshot" and unit_value(gate, "RemainAfterExit") == "true", gate)
        other = f("no-actions")["consumerUnits"]["other.service"]
        expect(words(other, "Requires") == ["netsecrets-ready-db-password.service"], other)
    R.check("NixOS: restarting a fetch unit restarts no consumer: requiredBy units and templates have only Wants= "
            "on netsecrets-secret-<name>.service (no Requires/Requisite/BindsTo/PartOf, which propagate restarts) "
            "and Requires= on the gate netsecrets-ready-<name>.service (systemctl is-active of the fetch unit, "
            "Wants=/After= it), so they still never start without the secret", no_propagating_dependency)

    def default_refresh():
        for name in ("consumers-no-interval", "templates-content"):
            u = units(name)
            expect("netsecrets-refresh.timer" in u, f"{name}: change actions but no netsecrets-refresh.timer")
            t = u["netsecrets-refresh.timer"]
            expect(unit_value(t, "OnUnitActiveSec") == "1h" and unit_value(t, "OnBootSec") == "1h", t)
            expect(unit_value(t, "RandomizedDelaySec") == "10min", t)
            no_warn(name, "refreshInterval")
        expect("netsecrets-refresh.timer" not in units("no-actions"), "no change action: no refresh")
        t = units("consumers")["netsecrets-refresh.timer"]
        expect(unit_value(t, "OnUnitActiveSec") == "15min" and not unit_lines(t, "RandomizedDelaySec"), t)
    R.check("NixOS: restartUnits/reloadUnits (a secret's or a template's) without refreshInterval: "
            "netsecrets-refresh.timer every 1h with RandomizedDelaySec=10min; none without change actions; "
            "an explicit refreshInterval is kept as given", default_refresh)

    def start_opt_in():
        for name, want in (("consumers", False), ("consumers-no-interval", False), ("consumers-start-units", True)):
            u = units(name)
            lines = unit_lines(u["netsecrets-refresh.service"], "ExecStart")
            got = any('"--start-unit" "myapp.service"' in line for line in lines)
            expect(got == want, f"{name}: --start-unit in the refresh: {got}, want {want}: {lines}")
            fetch = exec_start(u["netsecrets-secret-db-password.service"])
            expect("--start-unit" not in fetch, f"{name}: the boot fetch starts nothing: {fetch}")
        expect(f("consumers")["client"]["refreshStartsUnits"] is False, "refreshStartsUnits defaults to false")
    R.check("NixOS: a refresh never starts a unit by default (no --start-unit: a unit stopped by hand stays "
            "stopped); netsecrets.client.refreshStartsUnits = true opts in", start_opt_in)

    def secret_path():
        for name in ("consumers", "no-actions", "consumers-no-interval"):
            x = f(name)
            expect(x["secretPaths"] is not None, f"{name}: config.secrets.<name>.path does not evaluate")
            for n, s_ in x["secrets"].items():
                expect(x["secretPaths"][n] == s_["file"], f"{name}: path {x['secretPaths'][n]} != file {s_['file']}")
            expect(x["secretPaths"], f"{name}: no secrets")
        x = f("consumers-no-interval")
        expect(x["etcMyapp"] == "/var/lib/netsecrets/db-password", x["etcMyapp"])
        expect(x["warnings"] == [], x["warnings"])
    R.check("NixOS: config.secrets.<name>.path works wherever .file does (same value, usable in "
            "environment.etc, no warning)", secret_path)

    def overrides_doc():
        d = f("docs")["clientSystemdOverrides"]
        expect("netsecrets-refresh.service" in d and "netsecrets-secret-<name>.service" in d, d)
    R.check("NixOS: netsecrets.client.systemdOverrides says it changes the fetch units and netsecrets-refresh.service",
            overrides_doc)

    def config_json():
        j = json.loads(f("clients-only-server")["configJson"])
        expect(j["encryption"] is True, f"every client has a key, yet encryption = {j['encryption']}")
        expect(j["clients"] == {"laptop": {"encryption": True, "authorized_ips": ["10.0.5.7"], "secrets": ["wifi"]}},
               j["clients"])
        j = json.loads(f("two-client-server")["configJson"])
        expect(j["encryption"] is True and j["clients"]["builder"]["encryption"] is True, j)
    R.check("NixOS: /etc/netsecrets/config.json says encryption = true when every client has a key (own or the "
            "server's), and per client", config_json)

    def closure_check(name, absent, only_in=None):
        def c():
            drv = f(name)["drvPath"]
            expect(drv, f"{name}: no drvPath")
            found = evaluators[group_of[name]].grep_closure(drv, list(absent) + list(only_in or {}))
            bad = [f"{s!r} in {p}" for s in absent for p in found[s]]
            for s, suffix in (only_in or {}).items():
                expect(found[s], f"{s!r} is in no derivation (expected the warned store file)")
                bad += [f"{s!r} in {p}" for p in found[s] if not re.search(suffix, p)]
            expect(not bad, "\n".join(bad))
        return c
    R.check("NixOS: seed client: the ignored encryptionKey is in no derivation of the system; the literal "
            "password only in its warned store file",
            closure_check("seed-client", ["my-aes-key"], {"hunter2": r"-netsecrets-client-password(\.drv)?$"}))
    R.check("NixOS: server: an encryptionKey ignored for encryptionKeyFile is in no derivation of the system",
            closure_check("overrides-server", ["ignored-literal-key"]))
    R.check("NixOS: two named clients: the clients' password and key file contents are in no derivation",
            closure_check("two-client-server", [canaries["pw"], canaries["key"]]))
    R.check("NixOS: enableInitrd with grub: the password and key files' contents are in no derivation "
            "(appended at install time, never copied into the store)",
            closure_check("initrd-grub", [canaries["pw"], canaries["key"]]))

    return facts


# ---- templates (nix/modules/templates.nix) ------------------------------------------------


def placeholder(name):
    """What nix/modules/placeholder.nix and src/client/template.rs compute, a third time."""
    return f"<netsecrets:{name}:{hashlib.sha256(('netsecrets-placeholder:' + name).encode()).hexdigest()}>"


def netsecrets_binary():
    for c in (os.path.join(REPO, "target", "x86_64-unknown-linux-musl", "release", "netsecrets"),
              os.path.join(REPO, "target", "release", "netsecrets"), os.path.join(REPO, "target", "debug", "netsecrets")):
        if os.access(c, os.X_OK):
            return c
    return None


def templates_checks(f, units, iunits, warns, asserts, mosquitto_ev):
    store_exe = r'"/nix/store/[^"]+/bin/netsecrets"'

    def content():
        x = f("templates-content")
        ph = x["placeholders"]
        expect(ph == {n: placeholder(n) for n in ("db-password", "api-key")}, ph)
        u = units("templates-content")
        t = u["netsecrets-template-app.conf.service"]
        want = (store_exe + r' "render" "--template" "/nix/store/[a-z0-9]{32}-netsecrets-template-app\.conf" '
                r'"--output" "/run/netsecrets/rendered/app\.conf" '
                r'"--secret" "db-password=/var/lib/netsecrets/db-password" "--secret" "api-key=/var/lib/netsecrets/api-key" '
                r'"--owner" "myapp" "--group" "myapp" "--restart-unit" "myapp\.service" "--reload-unit" "nginx\.service" '
                r'"--systemctl" "/nix/store/[^"]+/bin/systemctl" "--mode" "0440"$')
        expect(re.match(want, unit_value(t, "ExecStart")), f"ExecStart:\n{unit_value(t, 'ExecStart')}")
        fetches = ["netsecrets-secret-db-password.service", "netsecrets-secret-api-key.service"]
        gates = ["netsecrets-ready-db-password.service", "netsecrets-ready-api-key.service"]
        ram = ["run-netsecrets.mount", "var-lib-netsecrets.mount"]  # the ramfs (client-storage.nix)
        expect(words(t, "After") == fetches + gates + ram and words(t, "Wants") == fetches
               and words(t, "Requires") == gates + ram, t)
        expect(words(t, "Before") == ["myapp.service"], t)
        expect(x["requiredBy"]["netsecrets-template-app.conf.service"] == ["myapp.service"], x["requiredBy"])
        expect(unit_lines(t, "Type") == ["oneshot"] and unit_lines(t, "RemainAfterExit") == [], t)
        for k, v in [("ProtectSystem", ["strict"]), ("RestrictAddressFamilies", ["AF_UNIX"]), ("PrivateNetwork", ["true"]),
                     ("ReadWritePaths", ["-/run/netsecrets/rendered"]), ("NoNewPrivileges", ["true"])]:
            expect(unit_lines(t, k) == v, f"{k}= {unit_lines(t, k)}, want {v}")
        p = u["netsecrets-template-app.conf.path"]
        expect(unit_lines(p, "PathChanged") == ["/var/lib/netsecrets/db-password", "/var/lib/netsecrets/api-key"], p)
        expect(unit_lines(p, "Unit") == ["netsecrets-template-app.conf.service"], p)
        expect(x["wantedBy"]["netsecrets-template-app.conf.path"] == ["multi-user.target"], x["wantedBy"])
        expect(x["wantedBy"]["netsecrets-template-app.conf.service"] == ["multi-user.target"], x["wantedBy"])
        # A file built by a derivation is not read at evaluation: every requested secret.
        b = unit_value(u["netsecrets-template-built.conf.service"], "ExecStart")
        has('"--secret" "db-password=/var/lib/netsecrets/db-password" "--secret" "api-key=/var/lib/netsecrets/api-key"', b)
        has('"--owner" "root" "--group" "root"', b)
        has_not("--restart-unit", b)
        expect(any("d /run/netsecrets/rendered 0751 root root -" == r for r in x["tmpfiles"]), x["tmpfiles"])
        text = x["templates"]["app.conf"]["content"]
        expect(text.count(placeholder("db-password")) == 2 and text.count(placeholder("api-key")) == 1, text)
    R.check("NixOS: templates (content): netsecrets-template-app.conf.service renders the store template with the "
            "secrets it uses (Wants=/After= their fetches, Requires= their netsecrets-ready gates), owner/mode and change actions, Before=/RequiredBy= its "
            "consumers, sandboxed (AF_UNIX only, writes only the rendered directory); a .path unit re-renders when a "
            "secret file changes; a derivation-built file gets every requested secret; placeholders are sha256 of the tag "
            "and name", content)

    def agree():
        """The template text NixOS evaluated, rendered by the binary: Nix's placeholders are Rust's."""
        exe = netsecrets_binary()
        if exe is None:
            return "no netsecrets binary under target/ (run cargo build first)"
        text = f("templates-content")["templates"]["app.conf"]["content"]
        d = tempfile.mkdtemp(prefix="netsecrets-tmpl-")
        try:
            tpl = os.path.join(d, "tpl")
            with open(tpl, "w") as fh:
                fh.write(text)
            vals = {"db-password": b"db\x00\xffpw", "api-key": placeholder("db-password").encode()}
            args = [exe, "render", "--template", tpl, "--output", os.path.join(d, "out"), "--mode", "0440"]
            for n, v in vals.items():
                with open(os.path.join(d, n), "wb") as fh:
                    fh.write(v)
                args += ["--secret", f"{n}={os.path.join(d, n)}"]
            p = subprocess.run(args, capture_output=True)
            expect(p.returncode == 0, p.stderr.decode(errors="replace"))
            with open(os.path.join(d, "out"), "rb") as fh:
                got = fh.read()
            # One pass, as the binary does: api-key's value is db-password's placeholder and stays.
            by_ph = {placeholder(n).encode(): v for n, v in vals.items()}
            want = re.sub(b"|".join(re.escape(p) for p in by_ph), lambda m: by_ph[m.group(0)], text.encode())
            expect(got == want, f"{got!r} != {want!r}")
            expect(os.stat(os.path.join(d, "out")).st_mode & 0o7777 == 0o440, "mode")
        finally:
            shutil.rmtree(d, ignore_errors=True)
    R.check("NixOS: templates: the text NixOS evaluated, rendered by the netsecrets binary, has every placeholder "
            "replaced (Nix and Rust agree; binary values, a value that looks like a placeholder stays)", agree)

    def placeholder_cli():
        """`netsecrets placeholder NAME` prints what config.netsecrets.placeholder.NAME is."""
        exe = netsecrets_binary()
        if exe is None:
            return "no netsecrets binary under target/ (run cargo build first)"
        phs = f("templates-content")["placeholders"]
        expect(phs, "no placeholders evaluated")
        for n, want in phs.items():
            p = subprocess.run([exe, "placeholder", n], capture_output=True, text=True)
            expect(p.returncode == 0 and p.stdout == want + "\n", f"{n}: {p.stdout!r} {p.stderr!r}, want {want!r}")
    R.check("NixOS: templates: `netsecrets placeholder NAME` prints config.netsecrets.placeholder.NAME exactly",
            placeholder_cli)

    def mosquitto():
        x = f("templates-mosquitto")
        u = units("templates-mosquitto")
        expect(re.match(r"^/nix/store/[^ ]+/bin/mosquitto -c /run/netsecrets/rendered/mosquitto\.conf$", x["mosquittoExecStart"]),
               x["mosquittoExecStart"])
        t = u["netsecrets-template-mosquitto.conf.service"]
        e = unit_value(t, "ExecStart")
        expect(re.search(r'"--template" "/nix/store/[a-z0-9]{32}-mosquitto\.conf" "--output" "/run/netsecrets/rendered/mosquitto\.conf" '
                         r'"--secret" "br1passwd=/var/lib/netsecrets/br1passwd" "--secret" "br2passwd=/var/lib/netsecrets/br2passwd" '
                         r'"--owner" "mosquitto" "--group" "mosquitto" "--restart-unit" "mosquitto\.service"', e), e)
        expect(x["requiredBy"]["netsecrets-template-mosquitto.conf.service"] == ["mosquitto.service"], x["requiredBy"])
        # The generated mosquitto.conf (placeholders only) is in the system's closure; its
        # placeholders are in nothing else but the derivations that carry the module's text.
        found = mosquitto_ev.grep_closure(x["drvPath"], [placeholder("br1passwd"), placeholder("br2passwd")])
        for n, paths in found.items():
            expect(any(p.endswith("-mosquitto.conf.drv") for p in paths), f"{n}: {paths}")
    R.check("NixOS: templates, the seed's Mosquitto example (extendModules, as scalpel): the config file the "
            "mosquitto module generated, with the two bridge passwords as placeholders, is rendered to "
            "/run/netsecrets/rendered/mosquitto.conf for mosquitto:mosquitto 0440, mosquitto's ExecStart points there "
            "and requires it; the store file is in the closure with placeholders only", mosquitto)

    def initrd():
        x = f("templates-initrd")
        iu = iunits("templates-initrd")
        t = iu["netsecrets-template-unlock.conf.service"]
        e = unit_value(t, "ExecStart")
        expect(re.match(store_exe + r' "render" "--template" "(/nix/store/[a-z0-9]{32}-netsecrets-template-unlock\.conf)" '
                        r'"--output" "/run/netsecrets/rendered/unlock\.conf" "--secret" "luks-key=/run/netsecrets/luks-key" '
                        r'"--mode" "0400"$', e), e)
        tpl = re.search(r'"(/nix/store/[^"]+-netsecrets-template-unlock\.conf)"', e).group(1)
        expect(tpl in x["initrdStorePathsAll"], f"{tpl} not in boot.initrd.systemd.storePaths")
        expect(words(t, "After") == ["netsecrets-secret-luks-key.service", "run-netsecrets.mount"]
               == words(t, "Requires"), t)
        expect("cryptsetup-pre.target" in words(t, "Before") and unit_lines(t, "DefaultDependencies") == ["false"], t)
        expect(x["initrdRequiredBy"]["netsecrets-template-unlock.conf.service"] == ["cryptsetup-pre.target"], x["initrdRequiredBy"])
        expect(x["initrdWantedBy"]["netsecrets-template-unlock.conf.service"] == ["initrd.target"], x["initrdWantedBy"])
        # Stage 2 renders it again, with owner and group.
        has('"--owner" "root"', unit_value(units("templates-initrd")["netsecrets-template-unlock.conf.service"], "ExecStart"))
    R.check("NixOS: templates in stage 1 (initrd = true): rendered after the stage-1 fetch from /run/netsecrets/<name>, "
            "before cryptsetup-pre.target, the template file in the initrd; stage 2 renders it again", initrd)

    def refused():
        asserts("template-unrequested", 'uses the placeholder of secret "other", which is not in netsecrets.client.request_secrets')
        asserts("template-cut", "is not a whole placeholder", "config.netsecrets.placeholder.db-password")
        asserts("template-both", "set exactly one of `content`")
        asserts("template-initrd-off", "needs netsecrets.client.enableInitrd", "is not under /run")
        asserts("template-no-client", "needs netsecrets.client.enable = true")
        asserts("template-credential-only", 'uses secret "db-password", which has secrets.db-password.writeFile = false')
        warns("template-no-context", "without string context")
    R.check("NixOS: templates: build-time assertions for a placeholder of an unrequested secret, a cut placeholder, "
            "content and file both set, stage 1 without enableInitrd or outside /run, no client, a secret kept out of "
            "files (writeFile = false); a warning for a store "
            "path without context", refused)


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

    groups = [("doc-server", "units"), ("overrides-server", "units"), ("seed-server", "units"),
              ("lowport-server", "units"), ("two-client-server", "units"), ("seed-client", "units"),
              ("owned-client", "units"), ("initrd-grub", "initrdUnits"), ("prompt-grub", "initrdUnits"),
              ("templates-content", "units"), ("templates-initrd", "initrdUnits"), ("consumers", "units"),
              ("consumers-initrd", "initrdUnits"), ("offline-cache", "units")]
    dirs = {}
    for name, kind in groups:
        units = (facts.get(name) or {}).get(kind)
        # The services that use secrets are verified with ours (their Requires= name ours).
        extra = (facts.get(name) or {}).get("initrdConsumerUnits" if kind == "initrdUnits" else "consumerUnits")
        if units and extra and name.startswith("consumers"):
            units = {**units, **extra}
        # The RAM file systems they require (client-storage.nix) are verified with them.
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
    if "seed-client" in dirs:
        print(f"info: exposure of the client's netsecrets-secret-db-password.service (runs as root): "
              f"{score(os.path.join(dirs['seed-client'], 'netsecrets-secret-db-password.service'))[0]}")


# ---- main ---------------------------------------------------------------------------------


def main():
    if not ensure_nix():
        R.finish()
    tmp = tempfile.mkdtemp(prefix="netsecrets-nix-")
    try:
        env = dict(os.environ, NIX_STATE_DIR=os.path.join(tmp, "nix-state"), NIX_LOG_DIR=os.path.join(tmp, "nix-log"),
                   NIX_CONF_DIR=os.path.join(tmp, "nix-conf"), HOME=os.environ.get("HOME") or tmp)
        for k in ("NIX_STATE_DIR", "NIX_LOG_DIR", "NIX_CONF_DIR"):
            os.makedirs(env[k])
        parse_all(env)
        nixpkgs, where = find_nixpkgs(env)
        if nixpkgs:
            print(f"nixpkgs: {nixpkgs} ({where}; lib/.version {nixpkgs_version(nixpkgs)})", flush=True)
            facts = nixos_checks(env, tmp, nixpkgs)
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
