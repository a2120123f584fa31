#!/usr/bin/env python3
"""Stage-2 boot test: through switch-root into a real Debian system with systemd as PID 1.

The sibling of initrd/boot-test/run, sharing its modules (harness.py: processes and the scenario
loop; packages.py; image.py: kernel, dracut base initrd, the stage-1 archive of the rendered
initrd units; machines.py: test material and the NixOS evaluation; qemu.py: qemu, the serial
stream, the server's start). This file owns what only stage 2 has: the Debian root tree, its
per-machine disk image, the in-guest checks, the host's netsecrets-daemon and the six
scenarios. Each scenario boots a stock Debian cloud kernel under qemu with

  * the initrd of the existing builder (dracut's systemd initramfs, here with virtio_blk and
    ext4 as well) plus the archive of the machine's rendered stage-1 units, and
  * a root disk (virtio, ext4 made with `mkfs.ext4 -d`, a fresh image per boot) holding a
    minimal Debian bookworm with systemd as PID 1, built with mmdebstrap from Debian's
    packages and cached under ~/.cache/netsecrets/stage2-root-<hash>/ (hash of the package
    list and this script: a change to either rebuilds it), into which the **stage-2** units of
    the machine (config.systemd.units of a real NixOS evaluation, initrd/boot-test/units.nix)
    are installed verbatim, store paths mapped to the binary under test and Debian's tools.

The initrd's systemd mounts the disk at /sysroot and switches root; the Debian system boots
`systemd.unit=nsbt.target` (basic.target, networkd and the units the machine's NixOS
configuration wants; no getty, no apt timers). A test-only `nsbt-check.service` runs the
scenario's assertions inside the guest and prints `NSBT OK|FAIL <what>` on the console, with
the journal lines of the units involved after each FAIL (`NSBT JOURNAL`); it asks the host for
a step with `NSBT ASK <step>` and reads the answer from the console. Then it powers off.

The server of scenarios 1-4 is `netsecrets receive` on the host's 127.0.0.1 with the flags of
netsecrets-daemon.service's ExecStart as the server module renders it (its %d credentials are
host files), reached through qemu user networking with restrict=on and one guestfwd.

Scenarios (NETSECRETS_STAGE2_ONLY=1,3 or names; default all):
  1 fetch         every secret fetched in stage 2; the requiredBy consumer starts only after its
                  secret is in place; the consumer of a secret the server lacks does not start
  2 credentials   a consumer gets a secret (credential = true) over the stage-2 credentials
                  socket; a unit not listed is refused
  3 refresh       refreshInterval: a changed value restarts the consumer exactly once; an
                  unchanged one restarts nothing; a consumer stopped by hand stays stopped;
                  restarting a fetch unit whose value did not change restarts nothing
  4 ram           /var/lib/netsecrets is a RAM mount (ramfs or tmpfs), mounted before the
                  first fetch unit starts
  5 initrd-only   secrets.<name>.initrdOnly: there in stage 1 for its consumer, nowhere after
                  switch-root
  6 server        netsecrets-daemon.service in the guest as rendered: Type=notify ready,
                  a reload that changes a client takes effect, the path unit restarts the
                  daemon when a secret file changes

Environment: as initrd/boot-test/run (NETSECRETS_BIN, NETSECRETS_NIXPKGS, NETSECRETS_BOOT_QEMU,
NETSECRETS_BOOT_TIMEOUT, CI), plus
  NETSECRETS_STAGE2_ONLY    scenarios to run (numbers or names, comma-separated)
  NETSECRETS_STAGE2_CACHE   kernel, initrd, logs (default ~/.cache/netsecrets/stage2-boot)
  NETSECRETS_STAGE2_DEADLINE  seconds for the whole run (default 1500)
The last line of output is always `N passed, N failed`. See docs/boot-test.md.
"""

import hashlib
import inspect
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (initrd/boot-test/harness.py)
import image  # noqa: E402
import machines  # noqa: E402
import nixeval  # noqa: E402
import packages  # noqa: E402
import qemu  # noqa: E402
from harness import BIN, BOOT_TIMEOUT, Result, TestError, Unavailable, log, run, write  # noqa: E402
from packages import debian_mirror, ensure_mmdebstrap  # noqa: E402

# ensure_root and customise_root below call these as bt.run and bt.write: their source text is
# part of the cached root tree's name, so editing it would rebuild the tree.
bt = harness

XDG_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "netsecrets"
CACHE = Path(os.environ.get("NETSECRETS_STAGE2_CACHE") or XDG_CACHE / "stage2-boot")
TOTAL_DEADLINE = float(os.environ.get("NETSECRETS_STAGE2_DEADLINE", "1500"))

# The Debian root: bookworm minbase plus these (systemd as PID 1, udev for the network link).
# The test's own commands use absolute paths: NixOS gives services a PATH of store paths.
SUITE = "bookworm"
ROOT_PACKAGES = ["systemd", "systemd-sysv", "udev", "procps"]  # procps: kill, for ExecReload
# Timers and services of those packages that have nothing to do with the test.
ROOT_MASK = ["apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
             "fstrim.timer", "getty.target", "systemd-firstboot.service", "e2scrub_reap.service"]
KERNEL_MODULES = ("virtio_net", "virtio_pci", "virtio_blk", "ext4")
GUEST_SERVER_PORT = 7000  # the in-guest netsecrets-daemon of scenario 6 (guest loopback)

SD = "/var/lib/netsecrets"
EXPECT = "/nsbt/expect"  # test-only: the values the guest compares with (never a secret)
HOST_SERVER_PW = "/etc/nixos/netsecrets/server-password"
HOST_SERVER_KEY = "/etc/nixos/netsecrets/server-key"
GUEST_FILES = {  # the in-guest server's sources (scenario 6)
    "/etc/nsbt/server-password": "guest server pw\n",
    "/etc/nsbt/server-key": "guest server key\n",
    "/etc/nsbt/bob-password": "bob pw 1\n",
}
SOURCES = dict(machines.SOURCE_CONTENT,
               **{HOST_SERVER_PW: machines.TEST_PASSWORD + "\n", HOST_SERVER_KEY: machines.TEST_KEY},
               **GUEST_FILES)

SITE = dict(machines.SITE, passwordFile=machines.HOST_PASSWORD_SRC, timeout=8)


def _svc(cmd, oneshot=False):
    sc = {"ExecStart": f"/bin/sh -c '{cmd}'"}
    if oneshot:
        sc.update(Type="oneshot", RemainAfterExit=True)
    return {"wantedBy": ["multi-user.target"], "serviceConfig": sc}


# A consumer that runs until stopped; each start appends a line to /run/<unit>.starts, and a
# start that finds alpha in place (the value it started with) leaves /run/<unit>.saw-secret.
APP = _svc(f"/usr/bin/cmp -s {SD}/alpha {EXPECT}/alpha && : > /run/%n.saw-secret; echo start >> /run/%n.starts; "
           "exec /usr/bin/sleep infinity")
MARK = "/run/nsbt-ran-%n"
MACHINES = {
    # The host's server: netsecrets-daemon.service as the server module renders it.
    "host-server": {"enable": False, "serverModule": {
        "enable": True, "ip": "127.0.0.1", "port": machines.GUEST_PORT, "password_file": HOST_SERVER_PW,
        "encryptionKeyFile": HOST_SERVER_KEY, "secrets": ["alpha", "beta", "gamma"],
        "authorized_ips": ["127.0.0.1/32"], "verbose": True}},
    "fetch": dict(SITE, request_secrets=["alpha", "beta", "missing"],
                  secrets={"alpha": {"requiredBy": ["nsbt-app.service"]},
                           "missing": {"requiredBy": ["nsbt-blocked.service"]}},
                  services={"nsbt-app": APP, "nsbt-blocked": _svc(f": > {MARK}", True)}),
    "credentials": dict(SITE, request_secrets=["alpha", "beta"],
                        secrets={"beta": {"credential": True, "writeFile": False,
                                          "requiredBy": ["nsbt-cred.service"]}},
                        services={"nsbt-cred": _svc(f"/usr/bin/cmp -s %d/beta {EXPECT}/beta && : > {MARK}", True),
                                  "nsbt-unlisted": dict(_svc(f": > {MARK}", True),
                                                        requires=["netsecrets-credentials.socket"],
                                                        after=["netsecrets-credentials.socket"],
                                                        serviceConfig=dict(
                                                            _svc(f": > {MARK}", True)["serviceConfig"],
                                                            LoadCredential=["beta:/run/netsecrets-credentials.sock"]))}),
    "refresh": dict(SITE, request_secrets=["alpha"], refreshInterval="10s",
                    secrets={"alpha": {"requiredBy": ["nsbt-app.service"], "restartUnits": ["nsbt-app.service"]}},
                    services={"nsbt-app": APP}),
    "ram": dict(SITE, request_secrets=["alpha"]),
    "initrd-only": dict(SITE, request_secrets=["alpha", "gamma"], enableInitrd=True,
                        secrets={"gamma": {"initrdOnly": True, "initrdRequiredBy": ["nsbt-early.service"]}},
                        initrdServices={"nsbt-early": {
                            "wantedBy": ["initrd.target"], "unitConfig": {"DefaultDependencies": False},
                            "serviceConfig": {"Type": "oneshot", "RemainAfterExit": True,
                                              # secrets.gamma.initrdFile: an initrdOnly secret has a
                                              # directory of its own, removed with its stage-1 unit.
                                              "ExecStart": f"/bin/sh -c 'test -s {machines.STAGE1_DIR}/initrd-only/gamma/gamma && : > {MARK}'"}}}),
    "server": {"enable": False, "serverModule": {
        "enable": True, "ip": "127.0.0.1", "port": GUEST_SERVER_PORT,
        "password_file": "/etc/nsbt/server-password", "encryptionKeyFile": "/etc/nsbt/server-key",
        "secrets": ["s1", "s2"], "secretFiles": {"s1": "/etc/nsbt/s1", "s2": "/etc/nsbt/s2"},
        "clients": {"bob": {"passwordFile": "/etc/nsbt/bob-password", "secrets": ["s1"]}}, "verbose": True}},
}

# ------------------------------------------------------------------ guest checks (bash)

PRELUDE = r"""#!/bin/bash
# boot test only (initrd/boot-test/stage2.py): the scenario's assertions inside the guest,
# reported on the console; the host reads NSBT lines and answers NSBT ASK on the console.
set -u
stty -echo 2>/dev/null
fails=0
say() { echo "NSBT $*"; }
journal() {
    local u
    for u in "$@"; do
        journalctl -b --no-pager -o short-monotonic -u "$u" 2>&1 | tail -n 25 | sed "s|^|NSBT JOURNAL [$u] |"
    done
}
# check WHAT "UNITS" COMMAND...: OK, or FAIL and the journal of UNITS
check() {
    local what=$1 units=$2
    shift 2
    if "$@"; then say "OK $what"; else say "FAIL $what"; fails=$((fails + 1)); journal $units; fi
}
p() { systemctl show -P "$2" "$1"; }
is() { [ "$(p "$1" "$2")" = "$3" ]; }
isnt() { [ "$(p "$1" "$2")" != "$3" ]; }
now_us() { local up; read -r up _ < /proc/uptime; echo $(( 10#${up/./} * 10000 )); }
wait_for() { local end=$((SECONDS + $1)); shift; until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.5; done; }
ask() { say "ASK $1"; local line; read -r line; }
starts() { if [ -f "/run/$1.starts" ]; then wc -l < "/run/$1.starts"; else echo 0; fi; }
nstarts() { [ "$(starts "$1")" = "$2" ] || { say "NOTE $1 started $(starts "$1") time(s), want $2"; false; }; }
# after A B: A was active before B's main process started
after() {
    local a b
    a=$(p "$1" ActiveEnterTimestampMonotonic); b=$(p "$2" ExecMainStartTimestampMonotonic)
    [ "${a:-0}" -gt 0 ] && [ "${b:-0}" -ge "$a" ] || { say "NOTE $1 active at $a us, $2 started at $b us"; false; }
}
not_started() { [ ! -e "/run/nsbt-ran-$1" ] && isnt "$1" ActiveState active; }
# refresh_after T: a netsecrets-refresh.service run that began after T (us) has finished
refresh_after() {
    local s e
    s=$(p netsecrets-refresh.service ExecMainStartTimestampMonotonic)
    e=$(p netsecrets-refresh.service ExecMainExitTimestampMonotonic)
    [ "${s:-0}" -gt "$1" ] && [ "${e:-0}" -ge "$s" ] && isnt netsecrets-refresh.service ActiveState activating
}
stage2_root() {
    [ ! -e /etc/initrd-release ] && [ "$(cat /proc/1/comm)" = systemd ] && grep -q bookworm /etc/os-release
}
say "TIME switch-root=$(p initrd-switch-root.service InactiveExitTimestampMonotonic 2>/dev/null || echo 0) checks=$(now_us)"
check "switched root: systemd is PID 1 of the Debian system on /dev/vda" "" stage2_root
wait_refresh() {
    local t; t=$(now_us)
    check "a netsecrets-refresh.service run (the timer) $1" "netsecrets-refresh.timer netsecrets-refresh.service" \
        wait_for 90 refresh_after "$t"
    sleep 2  # --no-block restarts queued by the refresh have run
}
"""

CHECKS = {}

CHECKS["fetch"] = r"""
for n in alpha beta; do
    check "$n fetched in stage 2: exact bytes" "netsecrets-secret-$n.service" cmp -s "{SD}/$n" "{EXPECT}/$n"
    check "$n: mode 0400, owner 0:0" "" [ "$(stat -c %a:%u:%g "{SD}/$n")" = 400:0:0 ]
    check "netsecrets-secret-$n.service active" "netsecrets-secret-$n.service" is "netsecrets-secret-$n.service" ActiveState active
done
check "netsecrets-secret-missing.service failed (the server has no such secret)" "" is netsecrets-secret-missing.service ActiveState failed
check "{SD}/missing not written" "" [ ! -e {SD}/missing ]
check "netsecrets-client.service failed (one secret missing)" "netsecrets-client.service" is netsecrets-client.service ActiveState failed
check "nsbt-app.service (requiredBy alpha) running" "nsbt-app.service" is nsbt-app.service ActiveState active
check "nsbt-app.service found alpha in place when it started" "nsbt-app.service" [ -e /run/nsbt-app.service.saw-secret ]
check "nsbt-app.service started after netsecrets-secret-alpha.service finished" "nsbt-app.service" after netsecrets-secret-alpha.service nsbt-app.service
check "nsbt-blocked.service (requiredBy missing) did not start" "nsbt-blocked.service netsecrets-secret-missing.service" not_started nsbt-blocked.service
"""

CHECKS["credentials"] = r"""
check "nsbt-cred.service got beta as a credential (exact bytes)" "nsbt-cred.service netsecrets-credentials.socket netsecrets-credentials.service" [ -e /run/nsbt-ran-nsbt-cred.service ]
check "nsbt-cred.service active" "nsbt-cred.service" is nsbt-cred.service ActiveState active
check "beta never written to a file (writeFile = false)" "" [ ! -e {SD}/beta ]
check "alpha fetched to its file" "netsecrets-secret-alpha.service" cmp -s {SD}/alpha {EXPECT}/alpha
check "nsbt-unlisted.service (not in requiredBy) did not start" "nsbt-unlisted.service" not_started nsbt-unlisted.service
check "nsbt-unlisted.service got no credential directory" "" [ ! -e /run/credentials/nsbt-unlisted.service/beta ]
check "netsecrets credentials refused beta for nsbt-unlisted.service" "netsecrets-credentials.service" \
    eval 'journalctl -b --no-pager -u netsecrets-credentials.service | grep -q "refused beta for nsbt-unlisted.service"'
"""

CHECKS["refresh"] = r"""
# Each count is taken relative to the one before its step, so that one failing step does not
# fail the next.
A=nsbt-app.service
check "$A running with alpha" "$A" is $A ActiveState active
check "$A started once" "" nstarts $A 1
check "netsecrets-refresh.timer active" "netsecrets-refresh.timer" is netsecrets-refresh.timer ActiveState active
n=$(starts $A)
wait_refresh "with an unchanged value"
check "unchanged value: $A not restarted by the refresh" "$A netsecrets-refresh.service" nstarts $A "$n"
n=$(starts $A)
systemctl restart netsecrets-secret-alpha.service
sleep 2
check "restarting the fetch unit (value unchanged) succeeded" "netsecrets-secret-alpha.service" is netsecrets-secret-alpha.service ActiveState active
check "restarting the fetch unit (value unchanged) restarted nothing" "$A netsecrets-secret-alpha.service" nstarts $A "$n"
n=$(starts $A)
ask change-alpha
wait_refresh "after the server's value changed"
check "alpha holds the new value" "netsecrets-refresh.service" cmp -s {SD}/alpha {EXPECT}/alpha-new
check "changed value: $A restarted exactly once" "$A netsecrets-refresh.service" nstarts $A $((n + 1))
check "$A running" "$A" is $A ActiveState active
n=$(starts $A)
wait_refresh "after that (value unchanged again)"
check "unchanged again: no further restart" "$A netsecrets-refresh.service" nstarts $A "$n"
n=$(starts $A)
systemctl stop $A
wait_refresh "after $A was stopped by hand"
check "$A stopped by hand stays stopped through a refresh" "$A netsecrets-refresh.service" \
    eval 'is $A ActiveState inactive && nstarts $A "$n"'
"""

CHECKS["ram"] = r"""
ramfs() {
    local t; t=$(stat -f -c %T {SD})
    mountpoint -q {SD} && { [ "$t" = ramfs ] || [ "$t" = tmpfs ]; } || { say "NOTE {SD} is on $t, mount point: $(mountpoint {SD})"; false; }
}
check "{SD} is a RAM mount (ramfs or tmpfs)" "var-lib-netsecrets.mount" ramfs
check "var-lib-netsecrets.mount is active" "var-lib-netsecrets.mount" is var-lib-netsecrets.mount ActiveState active
for u in {FETCH_UNITS}; do
    check "var-lib-netsecrets.mount was mounted before $u started" "var-lib-netsecrets.mount $u" after var-lib-netsecrets.mount "$u"
done
check "alpha fetched into it" "netsecrets-secret-alpha.service" cmp -s {SD}/alpha {EXPECT}/alpha
"""

CHECKS["initrd-only"] = r"""
check "nsbt-early.service (initrdRequiredBy gamma) found gamma in stage 1" "" [ -e /run/nsbt-ran-nsbt-early.service ]
check "gamma not in {STAGE1} after switch-root" "" [ ! -e {STAGE1}/gamma ]
check "gamma's initrd-only directory gone after switch-root" "" [ ! -e {STAGE1}/initrd-only/gamma ]
check "gamma not in {SD}" "" [ ! -e {SD}/gamma ]
check "no stage-2 fetch unit for gamma" "" is netsecrets-secret-gamma.service LoadState not-found
check "gamma's value nowhere under /run, /var, /etc, /tmp" "" eval '! grep -rqsF -f {EXPECT}/gamma /run /var /etc /tmp'
check "alpha (not initrd-only) fetched in stage 2" "netsecrets-secret-alpha.service" cmp -s {SD}/alpha {EXPECT}/alpha
"""

CHECKS["server"] = r"""
fetch() { {EXE} send --server 127.0.0.1 --port {GPORT} --password-file /etc/nsbt/bob-password \
    --encryption-key-file /etc/nsbt/server-key --timeout 5 --request_secrets "$1"; }
got() { [ "$(fetch "$1")" = "$(cat "$2")" ]; }
D=netsecrets-daemon.service
check "$D is Type=notify" "$D" is $D Type notify
check "$D became ready (READY=1: active, not activating)" "$D" wait_for 60 is $D ActiveState active
check "netsecrets-daemon-sources.path active" "netsecrets-daemon-sources.path" is netsecrets-daemon-sources.path ActiveState active
check "client bob gets s1" "$D" got s1 /etc/nsbt/s1
pid=$(p $D MainPID)
sed -i 's/secrets=s1$/secrets=s2/' /etc/netsecrets/clients
systemctl reload $D
sleep 2
check "reload (ExecReload, SIGHUP) kept the process" "$D" is $D MainPID "$pid"
check "after the reload bob is refused s1" "$D" eval '! fetch s1 >/dev/null 2>&1'
check "after the reload bob gets s2" "$D" got s2 /etc/nsbt/s2
printf 'new value of s2' > /etc/nsbt/s2
check "netsecrets-daemon-sources.path restarted $D after s2 changed" "$D netsecrets-daemon-sources.service" \
    wait_for 60 eval 'isnt $D MainPID "$pid" && is $D ActiveState active'
check "bob gets the new s2" "$D" got s2 /etc/nsbt/s2
"""

# (number, name, machine, units nsbt-check.service runs after)
SCENARIOS = [
    ("1", "fetch", "fetch", ["netsecrets-client.service", "nsbt-app.service", "nsbt-blocked.service"]),
    ("2", "credentials", "credentials", ["netsecrets-client.service", "nsbt-cred.service", "nsbt-unlisted.service"]),
    ("3", "refresh", "refresh", ["netsecrets-client.service", "nsbt-app.service"]),
    ("4", "ram", "ram", ["netsecrets-client.service"]),
    ("5", "initrd-only", "initrd-only", ["netsecrets-client.service"]),
    ("6", "server", "server", ["netsecrets-daemon.service", "netsecrets-daemon-sources.path"]),
]


# ------------------------------------------------------------------ the Debian root

def ensure_root():
    """The cached Debian tree: mmdebstrap of ROOT_PACKAGES, then the test's own settings
    (customise_root). Rebuilt when the package list or this script changes."""
    # The script that makes the tree: these two functions and the lists they use.
    h = hashlib.sha256(f"{SUITE}\n{ROOT_PACKAGES}\n{ROOT_MASK}\n".encode()
                       + (inspect.getsource(ensure_root) + inspect.getsource(customise_root)).encode())
    dest = XDG_CACHE / f"stage2-root-{h.hexdigest()[:16]}"
    if (dest / "usr/lib/systemd/systemd").exists():
        log(f"Debian root unchanged, reusing {dest}")
        return dest
    ensure_mmdebstrap()
    XDG_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="stage2-root-tmp-", dir=XDG_CACHE))
    t0 = time.monotonic()
    try:
        tree = tmp / "root"
        rc, out = bt.run(["mmdebstrap", "--variant=minbase", "--mode=root", f"--include={','.join(ROOT_PACKAGES)}",
                          "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/doc/*",
                          "--dpkgopt=path-exclude=/usr/share/locale/*", SUITE, str(tree), debian_mirror()],
                         timeout=1200, check=False)
        if rc != 0:
            raise Unavailable(f"mmdebstrap failed:\n{out[-2000:]}")
        customise_root(tree)
        for old in XDG_CACHE.glob("stage2-root-*"):
            if old.is_dir() and old != tmp:
                shutil.rmtree(old, ignore_errors=True)
        os.rename(tree, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"mmdebstrap built {dest} in {time.monotonic() - t0:.0f}s")
    return dest


def customise_root(tree):
    bt.write(tree / "etc/machine-id", "6e657473656372657473737461676532\n", 0o444)  # not a first boot
    bt.write(tree / "etc/hostname", "nsbt\n")
    bt.write(tree / "etc/fstab", "# boot test: / is mounted by the initrd (root=/dev/vda rw)\n")
    for unit in ROOT_MASK:
        link = tree / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        os.symlink("/dev/null", link)
    bt.write(tree / "etc/systemd/network/50-nsbt.network", "[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n")
    wo = tree / "etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"
    wo.parent.mkdir(parents=True, exist_ok=True)
    wo.unlink(missing_ok=True)
    os.symlink("/lib/systemd/system/systemd-networkd-wait-online.service", wo)
    # users.users.netsecrets of the server module (a system user and group)
    with open(tree / "etc/passwd", "a") as f:
        f.write("netsecrets:x:990:990:netsecrets server:/var/empty:/usr/sbin/nologin\n")
    with open(tree / "etc/group", "a") as f:
        f.write("netsecrets:x:990:\n")


# ------------------------------------------------------------------ per-machine image

STORE_PROG = re.compile(r"/nix/store/[^\s\"'/]+/bin/[^\s\"';]+")


def unit_texts(ev):
    return dict(list(ev["stage2"].items()) + list((ev.get("stage2Consumers") or {}).items())
                + list((ev.get("mounts") or {}).items()))


def build_root_image(ctx, machine, scen, values):
    """A fresh ext4 image: the cached tree (hard links; files written here are replaced, never
    written through) plus the machine's rendered stage-2 units and what they name."""
    ev = ctx["evals"][machine]
    stage = ctx["work"] / f"root-{scen[1]}"
    shutil.rmtree(stage, ignore_errors=True)
    run(["cp", "-al", str(ctx["root"]), str(stage)], timeout=300)

    def put(path, data, mode=0o644):
        dest = stage / path.lstrip("/")
        if dest.is_symlink() or dest.exists():
            dest.unlink()  # a hard link into the cache: replace it, never write through
        write(dest, data, mode)

    def link(path, target):
        dest = stage / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        os.symlink(target, dest)

    sysd = "/etc/systemd/system"
    units = unit_texts(ev)
    for name, text in units.items():
        put(f"{sysd}/{name}", text)
    wants = set()
    for name, targets in list(ev["stage2WantedBy"].items()) + list((ev.get("stage2ConsumersWantedBy") or {}).items()):
        for t in targets:
            t = "nsbt.target" if t == "multi-user.target" else t  # the test boots its own small target
            link(f"{sysd}/{t}.wants/{name}", f"../{name}")
            wants.add(name)
    # Store paths: the binary under test, Debian's tools for the rest (systemctl, kill, true).
    for text in units.values():
        for prog in sorted(set(STORE_PROG.findall(text))):
            base = prog.rsplit("/", 1)[1]
            if base == "netsecrets":
                if not (stage / prog.lstrip("/")).exists():
                    put(prog, BIN.read_bytes(), 0o555)
                continue
            found = next((d for d in ("usr/bin", "bin", "usr/sbin", "sbin") if (stage / d / base).exists()), None)
            if found is None:
                raise TestError(f"a rendered unit runs {prog}; the Debian root has no {base}")
            link(prog, f"/{found}/{base}")
    # What the LoadCredential= lines load (the in-guest server's secret files too).
    sources = dict(SOURCES, **{"/etc/nsbt/s1": values["s1"], "/etc/nsbt/s2": values["s2"]})
    for name, text in units.items():
        for cid, src in re.findall(r"^LoadCredential=([^:\n]+):(\S+)$", text, re.M):
            if src.startswith("/run/"):
                continue
            if src not in sources:
                raise TestError(f"{name} loads {src}, which the stage-2 test does not provide")
            put(src, sources[src], 0o400)
    put("/etc/tmpfiles.d/netsecrets.conf", "\n".join(ev["tmpfiles"]) + "\n")
    for path, text in (ev.get("etc") or {}).items():
        put(f"/etc/{path}", text)
    fstab = "".join(f"{fs['device'] or 'none'} {fs['mountPoint']} {fs['fsType']} {','.join(fs['options']) or 'defaults'} 0 0\n"
                    for fs in ev.get("fileSystems") or [])
    if fstab:
        put("/etc/fstab", "# boot test: fileSystems the module sets\n" + fstab)
    if machine == "server":  # bob's fetches read these too
        for f, v in GUEST_FILES.items():
            put(f, v, 0o400)
    for name, v in values.items():
        put(f"{EXPECT}/{name}", v, 0o400)
    fetch_units = " ".join(sorted(u for u in ev["stage2"] if u.startswith("netsecrets-secret-")))
    exe = ev["exe"]
    script = PRELUDE + CHECKS[scen[1]].replace("{SD}", SD).replace("{EXPECT}", EXPECT) \
        .replace("{STAGE1}", machines.STAGE1_DIR).replace("{FETCH_UNITS}", fetch_units) \
        .replace("{EXE}", exe).replace("{GPORT}", str(GUEST_SERVER_PORT)) + '\nsay "END fails=$fails"\n'
    if not (stage / exe.lstrip("/")).exists():
        put(exe, BIN.read_bytes(), 0o555)
    put("/usr/local/bin/nsbt-check", script, 0o755)
    after = " ".join(scen[3])
    put(f"{sysd}/nsbt-check.service", f"""\
# boot test only: the scenario's checks; the guest powers off when they are done.
[Unit]
Description=boot test: stage-2 checks
After=basic.target network-online.target {after}
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/usr/local/bin/nsbt-check
StandardInput=tty
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
TTYReset=yes
TTYVHangup=no
TimeoutStartSec={int(BOOT_TIMEOUT)}
""")
    put(f"{sysd}/nsbt.target", "# boot test only: booted with systemd.unit=nsbt.target\n[Unit]\n"
        "Description=boot test (stage 2)\nRequires=basic.target\nAfter=basic.target\n"
        "Wants=systemd-networkd.service nsbt-check.service\nAllowIsolate=yes\n")
    disk = ctx["work"] / f"root-{scen[1]}.img"
    disk.unlink(missing_ok=True)
    run(["mkfs.ext4", "-q", "-F", "-L", "nsbt-root", "-E", "root_owner=0:0", "-d", str(stage), str(disk), "1G"],
           timeout=300)
    shutil.rmtree(stage, ignore_errors=True)
    return disk


# ------------------------------------------------------------------ the host's server

class HostDaemon:
    """netsecrets-daemon.service of the host-server machine, run on the host: its rendered
    ExecStart with %d/<id> pointing at a directory holding what its LoadCredential= lines load,
    the port replaced by an ephemeral one (the guest dials GUEST_SERVER:GUEST_PORT, guestfwd)."""

    def __init__(self, ctx, name, values):
        text = ctx["evals"]["host-server"]["stage2"]["netsecrets-daemon.service"]
        m = re.search(r"^ExecStart=(.*)$", text, re.M)
        if not m:
            raise TestError("netsecrets-daemon.service: no ExecStart")
        self.creds = ctx["work"] / f"creds-{name}"
        self.creds.mkdir(mode=0o700)
        for cid, src in re.findall(r"^LoadCredential=([^:\n]+):(\S+)$", text, re.M):
            v = values.get(cid, SOURCES.get(src))
            if v is None:
                raise TestError(f"netsecrets-daemon.service loads {src}, which the test does not provide")
            write(self.creds / cid, v, 0o400)
        args = shlex.split(m.group(1))
        args[0] = str(BIN)
        for i, a in enumerate(args):
            if args[i - 1] == "--port":
                args[i] = "0"
            args[i] = args[i].replace("%d/", f"{self.creds}/")
        self.p, self.err, self.port = qemu.start_receive(args, ctx["logdir"] / f"{name}.server.log",
                                                         "the host's netsecrets-daemon")

    def change(self, cid, value):
        """A new value, then what ExecReload does (SIGHUP: the daemon reads its files again)."""
        f = self.creds / cid
        tmp = self.creds / f".{cid}.new"
        write(tmp, value, 0o400)
        os.replace(tmp, f)
        os.kill(self.p.pid, signal.SIGHUP)
        time.sleep(1.0)

    def close(self):
        harness.stop(self.p)


# ------------------------------------------------------------------ one scenario

def hexval(n=16):
    return os.urandom(n).hex().encode()


def run_scenario(ctx, scen):
    num, name, machine, _ = scen
    r = Result(f"{num}-{name}")
    ev = ctx["evals"].get(machine)
    if isinstance(ev, str):  # the evaluation of this machine failed (an option it sets is missing)
        r.check(False, ev)
        return r
    if ev["assertions"]:
        r.check(False, "NixOS assertions: " + " | ".join(" ".join(a.split()) for a in ev["assertions"]))
        return r
    values = {"alpha": hexval(), "beta": hexval(12), "gamma": hexval(20), "alpha-new": hexval(),
              "s1": b"value of s1", "s2": b"value of s2"}
    server = None
    answers = {}
    if machine != "server":
        served = {k: values[k] for k in ("alpha", "beta", "gamma")}
        server = HostDaemon(ctx, r.name, served)
        ctx["servers"].append(server)
        answers["change-alpha"] = lambda: server.change("alpha", values["alpha-new"])
    t0 = time.monotonic()
    initrd = image.build_machine_initrd(ctx, machine)
    image_path = build_root_image(ctx, machine, scen, values)
    r.notes.append(f"initrd + root image ready in {time.monotonic() - t0:.1f}s")
    cmdline = ("console=ttyS0 panic=-1 ip=dhcp root=/dev/vda rootfstype=ext4 rw systemd.unit=nsbt.target "
               "systemd.show_status=1")
    # Scenario 6 has no host server; the guestfwd still names a port (nothing listens there).
    g = qemu.boot(ctx, r, initrd, server.port if server else qemu.free_port(), cmdline,
                  extra=["-drive", f"file={image_path},if=virtio,format=raw"])
    if g is None:
        return r
    deadline = g.t0 + BOOT_TIMEOUT
    pos = 0
    while True:
        m = g.serial.wait_for(rb"NSBT (ASK (\S+)\r?\n|END)", max(1.0, deadline - time.monotonic()), start=pos)
        if m is None:
            r.check(False, f"no NSBT END from the guest within {BOOT_TIMEOUT:.0f}s")
            break
        pos = m.end()
        if m.group(1) == b"END":
            break
        step = m.group(2).decode()
        if step in answers:
            answers[step]()
            r.notes.append(f"host: {step} at {time.monotonic() - g.t0:.1f}s")
        else:
            r.check(False, f"the guest asked for an unknown step {step}")
        g.type("done\n")
    t_end = time.monotonic() - g.t0
    rc = g.wait_exit(max(1.0, min(30.0, deadline - time.monotonic())))
    r.check(rc == 0, f"qemu did not power off cleanly (rc {rc})")
    text = g.serial.text()
    r.check("initrd-switch-root.service" in text and re.search(r"Welcome to \S*Debian", text),
            "the initrd did not switch root into the Debian system")
    oks = re.findall(r"NSBT OK (.*)", text)
    fails = re.findall(r"NSBT FAIL (.*)", text)
    for f in fails:
        r.check(False, f.strip())
    r.check(bool(oks) or bool(fails), "the guest reported no check")
    up = re.search(r"NSBT TIME switch-root=(\d+) checks=(\d+)", text)
    r.notes.append(f"{len(oks)} guest checks passed; boot to end of checks {t_end:.1f}s"
                   + (f" (guest: switch-root at {int(up.group(1)) / 1e6:.1f}s, checks began at "
                      f"{int(up.group(2)) / 1e6:.1f}s)" if up else ""))
    ctx["boot_times"].append(t_end)
    if fails:
        seen = set()
        r.journal = [l for l in text.splitlines() if ("NSBT JOURNAL" in l or "NSBT NOTE" in l)
                     and not (l in seen or seen.add(l))]
    return r


# ------------------------------------------------------------------ evaluation

OPTION_MISSING = re.compile(r"The option `([^']+)' does not exist")


def evaluate(ctx, names):
    """One nix-instantiate for all machines; if that fails because a machine sets an option the
    module does not have (yet), each machine alone, and that machine's scenarios report it."""
    configs = {m: MACHINES[m] for m in names}
    try:
        evals = nixeval.evaluate(ctx["work"], configs, log=log)
    except nixeval.EvalError as e:
        if not OPTION_MISSING.search(str(e)):
            raise TestError(str(e)) from e
        evals = {}
        for m in names:
            try:
                evals.update(nixeval.evaluate(ctx["work"], {m: configs[m]}, log=log))
            except nixeval.EvalError as e1:
                miss = OPTION_MISSING.search(str(e1))
                if not miss:
                    raise TestError(str(e1)) from e1
                opt = re.sub(r"^secrets\.[^.]+\.", "secrets.<name>.", miss.group(1))
                evals[m] = f"option {opt} does not exist (machine {m!r} sets {miss.group(1)})"
    for m, ev in evals.items():
        if isinstance(ev, dict):
            try:
                ev["stage2Password"] = machines.stage2_password_path(ev)
            except TestError:
                ev["stage2Password"] = ""  # a machine without the client
    return evals


# ------------------------------------------------------------------ main

def main():
    scen = harness.selected(SCENARIOS, "NETSECRETS_STAGE2_ONLY")

    def prepare(ctx):
        packages.ensure_packages()
        ensure_mmdebstrap()
        kver, vmlinuz, moddir = image.ensure_kernel(CACHE, KERNEL_MODULES)
        image.check_binary()
        log(f"kernel {kver}, binary {BIN}, accel {' '.join(qemu.accel())}")
        ctx["root"] = ensure_root()
        machine_names = sorted({s[2] for s in scen} | ({"host-server"} if any(s[2] != "server" for s in scen) else set()))
        ctx["configs"] = MACHINES
        ctx["evals"] = evaluate(ctx, machine_names)
        if isinstance(ctx["evals"].get("host-server", {}), str):
            raise TestError(ctx["evals"]["host-server"])
        ctx["vmlinuz"] = vmlinuz
        image.build_report_helper(ctx)
        ctx["base_initrd"] = image.build_base_initrd(CACHE, kver, moddir, drivers="virtio_pci virtio_net virtio_blk ext4")

    def summary(ctx, results, t_start):
        if ctx["boot_times"]:
            log(f"boot to end of checks: {min(ctx['boot_times']):.1f}-{max(ctx['boot_times']):.1f}s over "
                f"{len(ctx['boot_times'])} boots; whole run {time.monotonic() - t_start:.0f}s "
                f"({' '.join(qemu.accel())}); logs in {ctx['logdir']}")

    return harness.drive("stage-2 boot test", scen, CACHE, TOTAL_DEADLINE, prepare, run_scenario, summary)


if __name__ == "__main__":
    sys.exit(main())
