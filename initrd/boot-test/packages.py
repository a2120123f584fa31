"""The Debian packages the boot tests need, installed with apt-get only when missing.

Owns: the list of programs the tests run and the package that brings each, installing them as
root (qemu-system-x86 from <codename>-backports on bookworm, whose own qemu conflicts with the
backported qemu-utils these machines ship), the apt sources of the machine, and for the stage-2
test mmdebstrap and the Debian mirror it builds the root tree from.
"""

import os
import re
import shutil
from pathlib import Path

from harness import QEMU, Unavailable, log, run


def has(cmd):
    return shutil.which(cmd, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/lib/systemd:/lib/systemd") is not None


REQUIRED = [
    # (what is missing, check, Debian package)
    ("dracut", lambda: has("dracut"), "dracut-core"),
    ("dracut systemd-networkd module", lambda: Path("/usr/lib/dracut/modules.d/01systemd-networkd").is_dir(), "dracut-network"),
    ("socat", lambda: has("socat"), "socat"),
    ("gcc", lambda: has("gcc"), "gcc"),
    ("libc.a", lambda: Path("/usr/lib/x86_64-linux-gnu/libc.a").exists(), "libc6-dev"),
    ("systemd-networkd", lambda: has("systemd-networkd"), "systemd"),
    ("systemd-udevd", lambda: has("systemd-udevd"), "udev"),
    ("ip", lambda: has("ip"), "iproute2"),
    ("dbus-daemon", lambda: has("dbus-daemon"), "dbus"),
    ("cpio", lambda: has("cpio"), "cpio"),
    ("zstd", lambda: has("zstd"), "zstd"),
    ("depmod", lambda: has("depmod"), "kmod"),
    ("nix-instantiate", lambda: has("nix-instantiate"), "nix-bin"),
]


def os_codename():
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def apt_sources_text():
    texts = []
    for f in [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*")):
        if f.suffix in (".list", ".sources") and f.is_file():
            texts.append((f, f.read_text(errors="replace")))
    return texts


def ensure_backports_source(codename):
    """qemu-system-x86 comes from <codename>-backports (bookworm's own 7.2 conflicts with the
    backported qemu-utils these machines ship): add that suite if absent, with the archive URI
    and key of the machine's own main entry."""
    suite = f"{codename}-backports"
    sources = apt_sources_text()
    if any(re.search(rf"\b{re.escape(suite)}\b", text) for _, text in sources):
        return
    uri = signed_by = None
    for _, text in sources:
        for stanza in re.split(r"\n\s*\n", text):  # deb822
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
            if codename in fields.get("Suites", "").split() and "main" in fields.get("Components", "").split():
                if not re.search(r"security", fields.get("URIs", "")):
                    uri, signed_by = fields.get("URIs", "").split()[0], fields.get("Signed-By")
        for m in re.finditer(rf"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+{re.escape(codename)}\s+.*\bmain\b", text, re.M):
            uri = uri or m.group(2)
    if not uri:
        raise Unavailable(f"no apt source for {codename} main found to derive {suite} from")
    entry = f"Types: deb\nURIs: {uri}\nSuites: {suite}\nComponents: main\n"
    if signed_by:
        entry += f"Signed-By: {signed_by}\n"
    dest = Path(f"/etc/apt/sources.list.d/netsecrets-boot-test-{suite}.sources")
    dest.write_text(entry)
    log(f"added apt source {dest} ({suite})")


def apt_install(pkgs, extra=()):
    args = ["apt-get", "install", "-y", "--no-install-recommends", *extra, *pkgs]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    rc, out = run(args, timeout=900, check=False, env=env)
    if rc != 0 and "apt --fix-broken install" in out:
        # A half-configured package elsewhere on the machine blocks every install.
        log("apt reports broken dependencies; running apt-get install -f first")
        run(["apt-get", "install", "-f", "-y"], timeout=900, check=False, env=env)
        rc, out = run(args, timeout=900, check=False, env=env)
    if rc != 0:
        raise Unavailable(f"apt-get install {' '.join(pkgs)} failed:\n{out[-2000:]}")


def ensure_packages():
    missing = [(what, pkg) for what, check, pkg in REQUIRED if not check()]
    need_qemu = not has(QEMU)
    if not missing and not need_qemu:
        return
    what = ", ".join(w for w, _ in missing) + (", qemu-system-x86_64" if need_qemu else "")
    if os.geteuid() != 0 or not has("apt-get"):
        raise Unavailable(f"missing {what}; this script installs them only as root on Debian")
    log(f"installing: {what}")
    codename = os_codename()
    if need_qemu and codename == "bookworm":
        ensure_backports_source(codename)
    rc, out = run(["apt-get", "update"], timeout=600, check=False)
    if rc != 0:
        raise Unavailable(f"apt-get update failed:\n{out[-2000:]}")
    if missing:
        apt_install(sorted({pkg for _, pkg in missing}))
    if need_qemu:
        apt_install(["qemu-system-x86"], ["-t", f"{codename}-backports"] if codename == "bookworm" else [])
    still = [w for w, check, _ in REQUIRED if not check()] + ([] if has(QEMU) else [QEMU])
    if still:
        raise Unavailable(f"still missing after apt-get: {', '.join(still)}")



def ensure_mmdebstrap():
    if shutil.which("mmdebstrap") and shutil.which("mkfs.ext4", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable("mmdebstrap / mkfs.ext4 missing; this script installs them only as root on Debian")
    log("installing mmdebstrap e2fsprogs")
    run(["apt-get", "update"], timeout=600, check=False)
    apt_install(["mmdebstrap", "e2fsprogs"])


def debian_mirror():
    for _, text in apt_sources_text():
        for m in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if not re.search(r"security|backports", m.group(1)) and "debian" in m.group(1):
                return m.group(1)
        for m in re.finditer(r"^deb\s+(\[[^\]]*\]\s+)?(\S*debian\S*)\s+\S+", text, re.M):
            if "security" not in m.group(2):
                return m.group(2)
    return "http://deb.debian.org/debian"
