"""What the boot tests boot: the kernel, the dracut base initrd, and each machine's archive.

Owns: the Debian cloud kernel (downloaded and unpacked, never installed) with a minimal module
tree; checking that the binary under test is a static executable; dracut's systemd initramfs
holding nothing of netsecrets (cached per kernel, module tree and dracut); building the report
helper; and per machine the uncompressed archive appended to that base: the units the NixOS
module rendered, verbatim, with what they run at the store paths they name, boot.initrd.secrets,
optionally the stage-2 units played in the initrd, and the test-only report unit and target.
"""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness import BIN, HERE, TestError, Unavailable, log, run, write
from machines import (CONSOLE_PW, COPY_SECRETS_UNIT, CRED_SECRETS, FETCH_UNITS, INITRD_ONLY_FILE, MARKER_FILE,
                      MARKER_UNIT, RENDERED, SECRET_NAMES, SOURCE_CONTENT, STAGE1_DIR, STAGE2_DIR,
                      STAGE2_MOUNTS, TEMPLATE_UNIT)
from packages import has

KERNEL_META = "linux-image-cloud-amd64"
REPORT_SRC = HERE / "nsbt-report.c"


def ensure_kernel(cache, modules=("virtio_net", "virtio_pci")):
    """The cloud kernel, downloaded and unpacked (not installed), and a minimal module
    tree with only `modules` and their dependencies (else dracut's networkd module packs
    every NIC). The stage-2 test (stage2.py) adds the disk and ext4 in its own cache."""
    kcache = cache / "kernel"
    stamp = kcache / "current"
    if stamp.exists():
        kver = stamp.read_text().strip()
        kd = kcache / kver
        if (kd / "vmlinuz").exists() and (kd / "kmods/lib/modules" / kver / "modules.dep").exists():
            return kver, kd / "vmlinuz", kd / "kmods/lib/modules" / kver
    if not has("apt-get"):
        raise Unavailable("no cached kernel and no apt-get to download one")
    kver = os.environ.get("NETSECRETS_BOOT_KERNEL")
    if not kver:
        _, out = run(["apt-cache", "depends", KERNEL_META], timeout=120, check=False)
        m = re.search(r"Depends:\s*linux-image-(\S+-cloud-amd64)\b", out)
        if not m:
            raise Unavailable(f"cannot resolve {KERNEL_META} with apt-cache:\n{out[-1000:]}")
        kver = m.group(1)
    log(f"fetching kernel {kver} (apt-get download + dpkg-deb -x, not installed)")
    kcache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="kernel-", dir=kcache))
    try:
        rc, out = run(["apt-get", "download", f"linux-image-{kver}"], cwd=tmp, timeout=600, check=False)
        if rc != 0:
            run(["apt-get", "update"], timeout=600, check=False)
            rc, out = run(["apt-get", "download", f"linux-image-{kver}"], cwd=tmp, timeout=600, check=False)
        if rc != 0:
            raise Unavailable(f"apt-get download linux-image-{kver} failed:\n{out[-1500:]}")
        deb = next(tmp.glob("linux-image-*.deb"))
        kroot = tmp / "kroot"
        run(["dpkg-deb", "-x", str(deb), str(kroot)], timeout=300)
        run(["depmod", "-b", str(kroot), kver], timeout=300)  # the .deb has no modules.dep
        deps = ""
        for mod in modules:  # one per call: a second name would be a module parameter
            _, out = run(["modprobe", "-d", str(kroot), "-S", kver, "--show-depends", mod], timeout=60)
            deps += out
        kd = kcache / kver
        if kd.exists():
            shutil.rmtree(kd)
        moddir = kd / "kmods/lib/modules" / kver
        moddir.mkdir(parents=True)
        src_moddir = kroot / "lib/modules" / kver
        for line in deps.splitlines():
            m = re.match(r"insmod\s+(\S+\.ko(\.\w+)?)", line.strip())
            if m:
                src = Path(m.group(1))
                rel = src.relative_to(src_moddir)
                (moddir / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, moddir / rel)
        for f in list(src_moddir.glob("modules.builtin*")) + [src_moddir / "modules.order"]:
            if f.is_file():
                shutil.copy2(f, moddir / f.name)
        run(["depmod", "-b", str(kd / "kmods"), kver], timeout=60)
        shutil.copy2(kroot / "boot" / f"vmlinuz-{kver}", kd / "vmlinuz")
        stamp.write_text(kver + "\n")
        for old in kcache.iterdir():
            if old.is_dir() and old.name not in (kver, tmp.name):
                shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return kver, kd / "vmlinuz", moddir




# ------------------------------------------------------------------ initrd

def check_binary():
    if not BIN.is_file():
        raise TestError(f"netsecrets binary not found at {BIN}; build it with "
                        "`cargo build --release --target x86_64-unknown-linux-musl` or set NETSECRETS_BIN")
    data = BIN.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise TestError(f"{BIN} is not a 64-bit ELF executable")
    phoff = int.from_bytes(data[32:40], "little")
    phentsize = int.from_bytes(data[54:56], "little")
    phnum = int.from_bytes(data[56:58], "little")
    for i in range(phnum):
        if int.from_bytes(data[phoff + i * phentsize:phoff + i * phentsize + 4], "little") == 3:  # PT_INTERP
            raise TestError(f"{BIN} is dynamically linked; the initrd has no loader for it (use the musl target)")
    for args in (["ask-password", "--help"], ["send", "--help"]):
        rc, out = run([str(BIN), *args], timeout=20, check=False)
        if rc != 0:
            raise TestError(f"`netsecrets {' '.join(args)}` failed (rc {rc}): {out.strip()[:500]}")


def build_report_helper(ctx):
    """nsbt-report (test-only, static: the initrd has no loader for anything else), built at
    each run from nsbt-report.c and never committed as a binary."""
    ctx["report_bin"] = ctx["work"] / "nsbt-report"
    run(["gcc", "-static", "-O2", "-Wall", "-o", str(ctx["report_bin"]), str(REPORT_SRC)], timeout=120)


def build_base_initrd(cache, kver, moddir, drivers="virtio_pci virtio_net", modules=""):
    """dracut's systemd initramfs with nothing of netsecrets in it; cached. Each scenario
    appends its own archive to it (build_machine_initrd)."""
    build = cache / "build"
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    # find and dirname: for the script of NixOS's initrd-nixos-copy-secrets.service.
    args = ["--force", "--no-hostonly", "--no-hostonly-cmdline", "--no-early-microcode",
            "--modules", "base systemd systemd-initrd systemd-networkd dracut-systemd" + modules,
            "--add-drivers", drivers, "--install", "find dirname", "--compress", "zstd"]
    _, dracut_version = run(["dracut", "--version"], timeout=30, check=False)
    h = hashlib.sha256(f"{kver}\n{dracut_version}\n{args}\n".encode())
    for f in sorted(moddir.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(moddir)).encode())
    image = cache / f"initrd-base-{h.hexdigest()[:16]}.img"
    if image.exists():
        log(f"base initrd unchanged, reusing {image.name}")
        return image
    confdir = build / "dracut.conf.d"
    confdir.mkdir()
    tmpdir = build / "tmp"
    tmpdir.mkdir()
    t0 = time.monotonic()
    run(["dracut", *args, "--conf", "/dev/null", "--confdir", str(confdir), "--tmpdir", str(tmpdir),
         "--kver", kver, "--kmoddir", str(moddir), str(build / "initrd.img")], timeout=600)
    for old in cache.glob("initrd-*.img"):
        old.unlink()
    shutil.move(build / "initrd.img", image)
    log(f"dracut built {image.name} in {time.monotonic() - t0:.1f}s ({image.stat().st_size / 1e6:.1f} MB)")
    return image


def exec_paths(text):
    """The programs of a unit's Exec*= lines (first word, quotes and prefixes stripped)."""
    paths = []
    for m in re.finditer(r"^Exec\w+=[-@:+!]*\"?([^\"\s]+)", text, re.M):
        paths.append(m.group(1))
    return paths



def report_unit(units, files):
    names = " ".join(sorted(units))
    return f"""\
# boot test only: print what the netsecrets units left in /run, then power off.
[Unit]
Description=boot test: report netsecrets results
DefaultDependencies=no
After=basic.target {names}
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=-/usr/bin/systemctl --no-pager show --property=Id,ActiveState,Result,ExecMainCode,ExecMainStatus,ActiveEnterTimestampMonotonic,ExecMainStartTimestampMonotonic,InactiveExitTimestampMonotonic,InactiveEnterTimestampMonotonic network-online.target systemd-networkd-wait-online.service {names}
ExecStart=/usr/bin/nsbt-report {' '.join(files)}
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
"""


def target_unit(wants):
    return ("# boot test only: booted with rd.systemd.unit=, no root fs, no switch-root.\n"
            "[Unit]\nDescription=boot test\nRequires=basic.target\nAfter=basic.target\n"
            f"Wants={' '.join(wants)}\nAllowIsolate=yes\n")


def cpio_newc(root, out):
    """root as an uncompressed newc archive owned by 0:0 (like NixOS's append-initrd-secrets)."""
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    p = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "+0:+0", "--reproducible", "--null",
                        "-O", str(out)], input=b"\0".join(n.encode() for n in names) + b"\0",
                       cwd=root, stderr=subprocess.PIPE, timeout=120)
    if p.returncode != 0:
        raise TestError(f"cpio failed: {p.stderr.decode(errors='replace')[-1000:]}")


def build_machine_initrd(ctx, cfg, with_stage2=False):
    """The base initrd plus one appended archive holding, for machine `cfg`: the units the module
    rendered (verbatim) with NixOS's .wants links, the static binary at the store path they name,
    the initrd's systemctl at the systemctl path they name, boot.initrd.secrets under
    /.initrd-secrets/ (copied into place by NixOS's own initrd-nixos-copy-secrets.service), and
    the test-only report unit and target; with_stage2: the stage-2 fetch units too, started
    after stage 1. The kernel unpacks concatenated archives in order."""
    key = f"{cfg}{'+stage2' if with_stage2 else ''}"
    if key in ctx["initrds"]:
        return ctx["initrds"][key]
    ev = ctx["evals"][cfg]
    if ev["assertions"] or ev["warnings"]:
        raise TestError(f"NixOS assertions/warnings for machine {cfg!r}: "
                        + " | ".join(" ".join(m.split()) for m in ev["assertions"] + ev["warnings"]))
    units = ev["units"]
    stage = ctx["work"] / f"append-{key}"
    shutil.rmtree(stage, ignore_errors=True)
    sysd = stage / "etc/systemd/system"
    provided = {}
    for name, text in units.items():
        write(sysd / name, text)
    for name, targets in ev["wantedBy"].items():
        for t in targets:
            link = sysd / f"{t}.wants" / name
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f"../{name}", link)
    # Stage-1 services that use secrets (scenario 7), as rendered.
    consumers = ev.get("consumers") or {}
    for name, text in consumers.items():
        write(sysd / name, text)
    for name, targets in (ev.get("consumersWantedBy") or {}).items():
        for t in targets:
            link = sysd / f"{t}.wants" / name
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f"../{name}", link)
    exe, systemctl = ev["exe"], ev["systemctl"]
    if not (exe.startswith("/nix/store/") and systemctl.startswith("/nix/store/")):
        raise TestError(f"unexpected store paths: {exe}, {systemctl}")
    write(stage / exe.lstrip("/"), BIN.read_bytes(), 0o555)
    provided[exe] = "the netsecrets binary under test"
    dest = stage / systemctl.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink("/usr/bin/systemctl", dest)  # the initrd's own systemctl, matching its systemd
    provided[systemctl] = "the initrd's systemctl"
    if COPY_SECRETS_UNIT in units:
        script = exec_paths(units[COPY_SECRETS_UNIT])
        if len(script) != 1 or not script[0].startswith("/nix/store/") or ev["copySecretsScript"] is None:
            raise TestError(f"{COPY_SECRETS_UNIT}: unexpected ExecStart {script}")
        # NixOS's makeJobScript: writeShellScriptBin with "set -e" and the script; the
        # interpreter is the initrd's bash instead of a store path.
        write(stage / script[0].lstrip("/"), "#!/bin/bash\nset -e\n" + ev["copySecretsScript"], 0o555)
        provided[script[0]] = "NixOS's copy-secrets script"
    for dest_path, src in ev["initrdSecrets"].items():
        if src not in SOURCE_CONTENT:
            raise TestError(f"boot.initrd.secrets.{dest_path} = {src}: not a source the boot test provides")
        write(stage / ".initrd-secrets" / dest_path.lstrip("/"), SOURCE_CONTENT[src], 0o400)
    stage2 = {}
    if with_stage2:
        # Stage 2, played in the initrd after stage 1 (there is no switch-root here): the
        # rendered stage-2 fetch units verbatim, ordered after every stage-1 unit by a test-only
        # drop-in; /var/lib/netsecrets as systemd-tmpfiles creates it; the files they load with
        # LoadCredential= from the root file system. What they read from /run is stage 1's.
        for name in FETCH_UNITS:
            if name in units:
                raise TestError(f"machine {cfg!r} has a stage-1 {name}; cannot play stage 2 in its initrd")
            stage2[name] = ev["stage2"][name]
            write(sysd / name, stage2[name])
            write(sysd / f"{name}.d/boot-test-stage-2.conf",
                  "# boot test only: stage 2 starts after stage 1\n[Unit]\nAfter="
                  + " ".join(sorted(units) + sorted(consumers)) + "\n")
            for ctl in re.findall(r'"--systemctl" "([^"]+)"', stage2[name]):
                if ctl not in provided:
                    d = stage / ctl.lstrip("/")
                    d.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink("/usr/bin/systemctl", d)
                    provided[ctl] = "the initrd's systemctl (stage 2's --systemctl)"
            for cid, src in re.findall(r"^LoadCredential=([^:\n]+):(\S+)$", stage2[name], re.M):
                if src.startswith("/run/"):
                    continue
                if src not in SOURCE_CONTENT:
                    raise TestError(f"stage-2 {name} loads {src}, which the boot test does not provide")
                write(stage / src.lstrip("/"), SOURCE_CONTENT[src], 0o400)
        # The RAM file system the stage-2 units require (nix/modules/client/storage.nix),
        # verbatim, started with them.
        # (run-netsecrets.mount only when stage 1 has none of its own.)
        for mount in STAGE2_MOUNTS:
            if mount in ev["stage2"] and mount not in units:
                stage2[mount] = ev["stage2"][mount]
                write(sysd / mount, stage2[mount])
        (stage / STAGE2_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
        os.chmod(stage / STAGE2_DIR.lstrip("/"), 0o751)
        if TEMPLATE_UNIT in ev["stage2"]:
            # The stage-2 render unit verbatim; the module's tmpfiles rules (its directory
            # under /run) as systemd-tmpfiles-setup applies them; the unit its restartUnits
            # names, running before the render so that the change action has something to do.
            stage2[TEMPLATE_UNIT] = ev["stage2"][TEMPLATE_UNIT]
            write(sysd / TEMPLATE_UNIT, stage2[TEMPLATE_UNIT])
            write(sysd / f"{TEMPLATE_UNIT}.d/boot-test-stage-2.conf",
                  "# boot test only: stage 2 starts after stage 1\n[Unit]\nAfter=" + " ".join(sorted(units)) + "\n")
            write(stage / "etc/tmpfiles.d/netsecrets.conf", "\n".join(ev["tmpfiles"]) + "\n")
            write(sysd / MARKER_UNIT,
                  "# boot test only: the template's restartUnits\n[Unit]\nDefaultDependencies=no\n"
                  f"Before={TEMPLATE_UNIT}\n[Service]\nType=oneshot\nRemainAfterExit=yes\n"
                  f"ExecStart=/bin/sh -c 'echo run >> {MARKER_FILE}'\n")
            stage2[MARKER_UNIT] = ""
    # The template files the render units name (in the store on NixOS; the text is this
    # machine's templates.<name>.content, so the store path ends in -netsecrets-template-<name>).
    templates = ctx["configs"][cfg].get("templates", {})
    for name, text in list(units.items()) + list(stage2.items()):
        for tpl in re.findall(r'"--template" "(/nix/store/[^"]+)"', text):
            tname = tpl.split("-netsecrets-template-", 1)[-1]
            if tname not in templates:
                raise TestError(f"{name} renders {tpl}, which the boot test does not provide")
            write(stage / tpl.lstrip("/"), templates[tname]["content"], 0o444)
    # Every program a rendered unit runs is now in the image.
    for name, text in list(units.items()) + [(n, t) for n, t in stage2.items() if n != MARKER_UNIT]:
        for prog in exec_paths(text):
            if prog not in provided:
                raise TestError(f"{name} runs {prog}, which the boot test does not put into the initrd")
    wanted = sorted(n for n, t in list(ev["wantedBy"].items()) + list((ev.get("consumersWantedBy") or {}).items())
                    if "initrd.target" in t)
    report = [f"{STAGE1_DIR}/{n}" for n in SECRET_NAMES] + [f"{STAGE1_DIR}/", CONSOLE_PW]
    report += [p for p in [ev["stage2Password"]] if p not in report and p.startswith("/run/")]
    report += sorted(ev["initrdSecrets"]) + ["/run/secrets/"]
    report += [f"{STAGE1_DIR}/rendered/{n}" for n, t in templates.items() if t.get("initrd")]
    report += [f"{STAGE1_DIR}/rendered/"] if templates else []
    if cfg == "initrd-only":
        report += [INITRD_ONLY_FILE, f"{STAGE1_DIR}/initrd-only/"]
    if stage2:
        report += [f"{STAGE2_DIR}/{n}" for n in SECRET_NAMES] + [f"{STAGE2_DIR}/"]
    if consumers:
        report += ["/run/nsbt-restarts"]
    if TEMPLATE_UNIT in stage2:
        report += [RENDERED, f"{STAGE1_DIR}/rendered/", MARKER_FILE]
    for name in sorted(consumers):
        report += [f"/run/credentials/{name}/", f"/run/nsbt-ran-{name}"]
        report += [f"/run/credentials/{name}/{n}" for n in CRED_SECRETS]
    write(stage / "usr/bin/nsbt-report", ctx["report_bin"].read_bytes(), 0o755)
    write(sysd / "nsbt-report.service", report_unit(list(units) + list(stage2) + sorted(consumers), report))
    write(sysd / "boot-test.target", target_unit(wanted + sorted(stage2) + ["nsbt-report.service"]))
    archive = ctx["work"] / f"append-{key}.cpio"
    cpio_newc(stage, archive)
    image = ctx["work"] / f"initrd-{key}.img"
    with open(image, "wb") as out:
        for part in (ctx["base_initrd"], archive):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
            # The kernel takes an uncompressed archive only at a 4-byte aligned offset
            # (init/initramfs.c); zeros between archives are skipped. A compressed base whose
            # size is not a multiple of 4 made the appended archive "invalid magic at start
            # of compressed archive", and the guest fell into the emergency shell.
            out.write(b"\0" * (-out.tell() % 4))
    ctx["initrds"][key] = image
    return image


