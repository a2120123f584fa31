"""The stage-1 scenarios: what each boots, what it does at the console, and what it checks.

Owns: reading the guest's NSBT report lines (files, directory listings, unit properties, the
clock), booting one machine and answering its password prompts (boot_and_report), the checks
every scenario shares (check_units, check_secrets, check_typed_password), the eleven scenario
functions and their table (SCENARIOS: number, short name, function, machine).
"""

import os
import re
import time

from harness import BOOT_TIMEOUT, Result
from image import build_machine_initrd
from machines import (CONSOLE_PW, CONSUMERS, FETCH_UNITS, INITRD_ONLY_FILE, MARKER_FILE, MARKER_UNIT, RENDERED,
                      SOURCE_CONTENT, STAGE1_DIR, STAGE2_DIR, TEMPLATE_NAME, TEMPLATE_TEXT, TEMPLATE_UNIT,
                      TEST_PASSWORD, WRONG_PASSWORD, placeholder)
from qemu import Server, boot, free_port

PROMPT = b"netsecrets password: "  # the ask-password default prompt (CLI contract)
SERVER_LATE_DELAY = 8.0


def parse_report(text):
    files, dirs, props = {}, {}, {}
    clock = None
    for line in text.splitlines():
        line = line.strip()
        m = re.search(r"NSBT FILE path=(\S+) size=(\d+) mode=(\d+) uid=(\d+) gid=(\d+) ctime_real_ns=(\d+) hex=([0-9a-f]*)$", line)
        if m:
            files[m.group(1)] = {"size": int(m.group(2)), "mode": m.group(3), "uid": int(m.group(4)),
                                 "gid": int(m.group(5)), "ctime_real_ns": int(m.group(6)),
                                 "content": bytes.fromhex(m.group(7))}
        m = re.search(r"NSBT DIR path=(\S+) entries=(.*)$", line)
        if m:  # None: the directory does not exist (or cannot be read)
            dirs[m.group(1)] = None if m.group(2).startswith("<") else [e for e in m.group(2).split(",") if e]
        m = re.search(r"NSBT CLOCK mono_ns=(\d+) real_ns=(\d+)", line)
        if m:
            clock = (int(m.group(1)), int(m.group(2)))
    block = {}
    # systemctl show: blocks of KEY=VALUE, a blank line between units. Other lines are console
    # messages of systemd or the kernel that landed in between; they do not end a block.
    for line in text.splitlines() + [""]:
        m = re.match(r"^\s*([A-Za-z]+)=(.*)$", line)
        if m:
            block[m.group(1)] = m.group(2).strip()
        elif not line.strip():
            if "Id" in block:
                props[block["Id"]] = block
            block = {}
    return files, dirs, props, clock


def mono_of_file(f, clock):
    mono_now, real_now = clock
    return f["ctime_real_ns"] - (real_now - mono_now)



def boot_and_report(r, ctx, server_port, cfg, prompt_answer=None, late_server=None, with_stage2=False):
    """Boot machine `cfg` (units from its NixOS evaluation); returns (guest, parsed report)."""
    initrd = build_machine_initrd(ctx, cfg, with_stage2)
    cmdline = "console=ttyS0 panic=-1 ip=dhcp rd.systemd.unit=boot-test.target"
    g = boot(ctx, r, initrd, server_port, cmdline)
    if g is None:
        return None, None
    deadline = g.t0 + BOOT_TIMEOUT
    if late_server is not None:
        m = g.serial.wait_for(rb"netsecrets: fetching \S+ from \S+ \(round 1\)", deadline - time.monotonic())
        if r.check(m is not None, "did not see the first fetch attempt (send --verbose)"):
            t_start = time.monotonic()
            r.notes.append(f"first fetch attempt at {t_start - g.t0:.1f}s after qemu start; server starts {SERVER_LATE_DELAY:.0f}s later")
            time.sleep(SERVER_LATE_DELAY)
            late_server()
            r.notes.append(f"server listening {time.monotonic() - t_start:.1f}s after the first attempt")
    # One answer per prompt, in order: the prompt asks again when the server refuses a typed
    # password (ask-password --verify-secret, as the module renders it with an initrd network).
    answers = [prompt_answer] if isinstance(prompt_answer, str) else list(prompt_answer or [])
    seen = 0
    for i, answer in enumerate(answers):
        m = g.serial.wait_for(re.escape(PROMPT), deadline - time.monotonic(), start=seen)
        if not r.check(m is not None, f"no password prompt {i + 1} on the console"):
            break
        seen = m.end()
        r.notes.append(f"boot to prompt {i + 1}: {time.monotonic() - g.t0:.1f}s")
        # The prompt turns echo off with TCSAFLUSH, which drops whatever was typed ahead.
        time.sleep(1.0)
        g.type(answer + "\n")
    m = g.serial.wait_for(rb"NSBT END", max(1.0, deadline - time.monotonic()))
    r.check(m is not None, f"no report from the guest within {BOOT_TIMEOUT:.0f}s")
    t_end = time.monotonic() - g.t0
    rc = g.wait_exit(max(1.0, min(30.0, deadline - time.monotonic())))
    t_exit = time.monotonic() - g.t0
    r.check(rc == 0, f"qemu did not power off cleanly (rc {rc})")
    text = g.serial.text()
    files, dirs, props, clock = parse_report(text)
    r.notes.append(f"boot to report {t_end:.1f}s, to power-off {t_exit:.1f}s"
                   + (f", guest uptime at report {clock[0] / 1e9:.1f}s" if clock else ""))
    ctx["boot_times"].append(t_exit)
    return g, (text, files, dirs, props, clock)


def check_units(r, ctx, cfg, rep, failing=()):
    """Every unit the module rendered for stage 1 ran: Result=success, except `failing`, which
    must have failed. NixOS's copy of boot.initrd.secrets put each file in place."""
    text, files, dirs, props, clock = rep
    ev = ctx["evals"][cfg]
    for unit in sorted(ev["units"]):
        res = props.get(unit, {}).get("Result")
        if unit in failing:
            r.check(res not in (None, "success"), f"{unit} Result={res}, want a failure")
        else:
            r.check(res == "success", f"{unit} Result={res}")
    for dest, src in ev["initrdSecrets"].items():
        f = files.get(dest)
        if r.check(f is not None, f"boot.initrd.secrets {dest} not in place in the initrd"):
            r.check(f["content"] == SOURCE_CONTENT[src].encode(), f"{dest}: not the content handed over")
    # Stage 1 leaves /run/secrets to sops-nix (which keeps it as a symlink it replaces at every
    # activation) unless a rendered unit names it.
    if not any("/run/secrets" in t for t in ev["units"].values()):
        r.check(dirs.get("/run/secrets/", "unreported") is None,
                f"/run/secrets exists after stage 1 ({dirs.get('/run/secrets/')}), though no stage-1 unit names it")
    r.notes.append(f"machine {cfg!r}: {len(ev['units'])} units rendered by the module: {', '.join(sorted(ev['units']))}")


def check_secrets(r, rep, secrets):
    text, files, dirs, props, clock = rep
    for name, value in secrets.items():
        f = files.get(f"{STAGE1_DIR}/{name}")
        if not r.check(f is not None, f"{STAGE1_DIR}/{name} missing in the guest"):
            continue
        r.check(f["content"] == value, f"{STAGE1_DIR}/{name}: content differs ({len(f['content'])} bytes, want {len(value)})")
        r.check(f["mode"] == "0400", f"{STAGE1_DIR}/{name}: mode {f['mode']}, want 0400")
        r.check(f["uid"] == 0 and f["gid"] == 0, f"{STAGE1_DIR}/{name}: owner {f['uid']}:{f['gid']}, want 0:0")
    r.check(sorted(dirs.get(STAGE1_DIR + "/") or []) == sorted(secrets),
            f"{STAGE1_DIR}/ holds {dirs.get(STAGE1_DIR + '/')}, want exactly {sorted(secrets)}")
    for unit in FETCH_UNITS + ["netsecrets-client.service"]:
        res = props.get(unit, {}).get("Result")
        r.check(res == "success", f"{unit} Result={res}")
    client = props.get(FETCH_UNITS[0], {})
    online = props.get("network-online.target", {}).get("ActiveEnterTimestampMonotonic")
    if clock and online and online.isdigit() and int(online) > 0:
        parts = []
        for name in secrets:
            f = files.get(f"{STAGE1_DIR}/{name}")
            if f:
                dt = (mono_of_file(f, clock) / 1e3 - int(online)) / 1e6
                parts.append(f"{name} {dt:.3f}s")
                r.timing = getattr(r, "timing", []) + [dt]
        start = client.get("ExecMainStartTimestampMonotonic") or client.get("InactiveExitTimestampMonotonic")
        r.notes.append(f"network-online at {int(online) / 1e6:.2f}s guest; network-online -> secret on disk: "
                       + ", ".join(parts)
                       + (f" (alpha fetch unit started {(int(start) - int(online)) / 1e6:+.3f}s after network-online)"
                          if start and start.isdigit() and int(start) else ""))
    else:
        r.notes.append("network-online timestamp not reported")


def check_typed_password(r, ctx, cfg, rep, typed):
    """The typed password is where stage 1 and stage 2 read it, root-only, never echoed."""
    text, files, dirs, props, clock = rep
    stage2 = ctx["evals"][cfg]["stage2Password"]
    r.check(typed not in text, "the typed password appears in the serial log (echo on?)")
    for path in dict.fromkeys([CONSOLE_PW, stage2]):
        f = files.get(path)
        if r.check(f is not None, f"{path} missing"):
            r.check(f["content"] in (typed.encode(), typed.encode() + b"\n"),
                    f"{path}: content is not the typed password ({len(f['content'])} bytes)")
            r.check(f["mode"] == "0400", f"{path}: mode {f['mode']}, want 0400")
    r.notes.append(f"stage 2 reads the password from {stage2} (LoadCredential of the rendered stage-2 unit): holds the typed password")


def scenario_aes(ctx):
    r = Result("1-aes-two-secrets")
    secrets = {"alpha": os.urandom(40) + b"\x00\n\xff", "beta": b"db password with spaces\n"}
    srv = Server(ctx["work"], secrets, 0, ctx["logdir"] / f"{r.name}.server.log")
    try:
        g, rep = boot_and_report(r, ctx, srv.port, "file")
        if rep:
            check_units(r, ctx, "file", rep)
            check_secrets(r, rep, secrets)
    finally:
        srv.close()
    return r


def scenario_prompt(ctx):
    r = Result("2-console-password")
    secrets = {"alpha": os.urandom(32), "beta": b"\n\n"}
    srv = Server(ctx["work"], secrets, 0, ctx["logdir"] / f"{r.name}.server.log")
    try:
        g, rep = boot_and_report(r, ctx, srv.port, "prompt", prompt_answer=TEST_PASSWORD)
        if rep:
            check_units(r, ctx, "prompt", rep)
            check_secrets(r, rep, secrets)
            check_typed_password(r, ctx, "prompt", rep, TEST_PASSWORD)
    finally:
        srv.close()
    return r


def scenario_late(ctx):
    r = Result("3-server-late")
    secrets = {"alpha": os.urandom(24), "beta": b"late but there"}
    port = free_port()
    holder = {}

    def late():
        holder["srv"] = Server(ctx["work"], secrets, port, ctx["logdir"] / f"{r.name}.server.log")

    try:
        g, rep = boot_and_report(r, ctx, port, "file", late_server=late)
        if rep:
            check_units(r, ctx, "file", rep)
            check_secrets(r, rep, secrets)
            if getattr(r, "timing", None):
                r.check(min(r.timing) >= SERVER_LATE_DELAY - 2.0,
                        f"secret on disk {min(r.timing):.1f}s after network-online: too early for a late server")
            r.timing = []  # not a representative network-online -> disk time
            rounds = re.findall(r"netsecrets: fetching alpha from \S+ \(round (\d+)\)", rep[0])
            r.check(len(rounds) >= 2, f"no retry seen in the guest (rounds {rounds})")
            r.notes.append(f"guest fetch rounds for alpha: {len(rounds)}")
    finally:
        if "srv" in holder:
            holder["srv"].close()
    return r


def scenario_wrong(ctx):
    """A typo at the console, then the right password: the prompt checks each typed password once
    against the server, says it was not accepted, asks again, and the boot goes on normally. The
    server sees exactly one wrong password from the guest: a typo never becomes a lockout."""
    r = Result("4-typo-then-right-password")
    secrets = {"alpha": os.urandom(16), "beta": b"delivered after a typo"}
    srv = Server(ctx["work"], secrets, 0, ctx["logdir"] / f"{r.name}.server.log")
    try:
        g, rep = boot_and_report(r, ctx, srv.port, "prompt-short", prompt_answer=[WRONG_PASSWORD, TEST_PASSWORD])
        if rep:
            text, files, dirs, props, clock = rep
            check_units(r, ctx, "prompt-short", rep)
            check_secrets(r, rep, secrets)
            check_typed_password(r, ctx, "prompt-short", rep, TEST_PASSWORD)
            again = [l.strip() for l in text.splitlines() if "was not accepted" in l]
            if r.check(bool(again), "the console did not say the first password was not accepted"):
                r.notes.append(f"console: {again[0][:200]}")
            r.check(WRONG_PASSWORD not in text and TEST_PASSWORD not in text,
                    "a typed password appears in the serial log (echo on?)")
        log_text = srv.err.text()
        wrong = log_text.count("outcome=wrong-password")
        r.check(wrong == 1, f"the server logged {wrong} wrong-password outcomes for one typo, want 1")
        r.check("locked out" not in log_text, "the typo locked the guest's address out")
    finally:
        srv.close()
    return r


def scenario_stage2(ctx):
    """enableInitrdPassword without enableInitrd: stage 1 only asks; the typed password must be
    where the stage-2 fetch units read it."""
    r = Result("5-password-for-stage-2")
    # A server is up: with an initrd network the prompt checks the typed password against it.
    srv = Server(ctx["work"], {"alpha": b"a", "beta": b"b"}, 0, ctx["logdir"] / f"{r.name}.server.log")
    try:
        g, rep = boot_and_report(r, ctx, srv.port, "prompt-stage2", prompt_answer=TEST_PASSWORD)
    finally:
        srv.close()
    if rep:
        text, files, dirs, props, clock = rep
        ev = ctx["evals"]["prompt-stage2"]
        r.check(not any(u in ev["units"] for u in FETCH_UNITS),
                "the module renders stage-1 fetch units without enableInitrd")
        check_units(r, ctx, "prompt-stage2", rep)
        check_typed_password(r, ctx, "prompt-stage2", rep, TEST_PASSWORD)
        r.check(dirs.get(STAGE1_DIR + "/") is None, f"{STAGE1_DIR}/ exists without enableInitrd: {dirs.get(STAGE1_DIR + '/')}")
    return r


def scenario_stage2_units(ctx):
    """The same machine, and then its rendered stage-2 fetch units themselves (in the initrd,
    after stage 1: sandbox and LoadCredential= as rendered) fetch the secrets with the typed
    password."""
    r = Result("6-stage-2-units")
    secrets = {"alpha": os.urandom(20) + b"\n", "beta": b"stage two"}
    srv = Server(ctx["work"], secrets, 0, ctx["logdir"] / f"{r.name}.server.log")
    try:
        g, rep = boot_and_report(r, ctx, srv.port, "prompt-stage2", prompt_answer=TEST_PASSWORD, with_stage2=True)
        if rep:
            text, files, dirs, props, clock = rep
            check_units(r, ctx, "prompt-stage2", rep)
            check_typed_password(r, ctx, "prompt-stage2", rep, TEST_PASSWORD)
            for unit in FETCH_UNITS:
                pr = props.get(unit, {})
                r.check(pr.get("Result") == "success", f"stage-2 {unit} Result={pr.get('Result')}"
                        + (f" (main process status {pr.get('ExecMainStatus')}; 31 is SIGSYS: a syscall the unit's "
                           "SystemCallFilter= forbids)" if pr.get("Result") == "signal" else ""))
            for name, value in secrets.items():
                f = files.get(f"{STAGE2_DIR}/{name}")
                if r.check(f is not None, f"{STAGE2_DIR}/{name} missing after the stage-2 fetch"):
                    r.check(f["content"] == value, f"{STAGE2_DIR}/{name}: content differs")
                    r.check(f["mode"] == "0400" and f["uid"] == 0 and f["gid"] == 0,
                            f"{STAGE2_DIR}/{name}: mode {f['mode']} owner {f['uid']}:{f['gid']}, want 0400 0:0")
            r.check(sorted(dirs.get(STAGE2_DIR + "/") or []) == sorted(secrets),
                    f"{STAGE2_DIR}/ holds {dirs.get(STAGE2_DIR + '/')}, want exactly {sorted(secrets)}")
            if not r.failures:
                r.notes.append("the rendered stage-2 fetch units (sandbox and LoadCredential= as rendered) fetched "
                               f"{', '.join(secrets)} into {STAGE2_DIR} with the typed password")
    finally:
        srv.close()
    return r


def rendered(secrets):
    """TEMPLATE_TEXT with each placeholder replaced by its secret's value in one pass, as the
    binary renders it: a value that holds a placeholder is copied as it is."""
    by_ph = {placeholder(n).encode(): v for n, v in secrets.items()}
    return re.sub(b"|".join(re.escape(p) for p in by_ph), lambda m: by_ph[m.group(0)], TEMPLATE_TEXT.encode())


def scenario_template(ctx):
    """templates.<name>.initrd: the module's stage-1 render unit, after the stage-1 fetches,
    puts the exact bytes of both secrets (alpha twice) into the rendered file."""
    r = Result("9-template")
    # alpha's value looks like a placeholder (of beta): it must be copied, not expanded.
    secrets = {"alpha": os.urandom(16) + placeholder("beta").encode() + b"\x00\n", "beta": b"bridge pw\n"}
    srv = Server(ctx["work"], secrets, 0, ctx["logdir"] / f"{r.name}.server.log")
    try:
        g, rep = boot_and_report(r, ctx, srv.port, "template")
        if rep:
            text, files, dirs, props, clock = rep
            check_units(r, ctx, "template", rep)
            unit = f"netsecrets-template-{TEMPLATE_NAME}.service"
            r.check(unit in ctx["evals"]["template"]["units"], f"the module rendered no stage-1 {unit}")
            # One pass, as the binary does: alpha's value holds beta's placeholder, which stays.
            want = rendered(secrets)
            f = files.get(RENDERED)
            if r.check(f is not None, f"{RENDERED} missing in the guest"):
                r.check(f["content"] == want, f"{RENDERED}: content differs ({len(f['content'])} bytes, want {len(want)})")
                r.check(f["mode"] == "0440" and f["uid"] == 0 and f["gid"] == 0,
                        f"{RENDERED}: mode {f['mode']} owner {f['uid']}:{f['gid']}, want 0440 0:0")
            r.check(dirs.get(f"{STAGE1_DIR}/rendered/") == [TEMPLATE_NAME],
                    f"{STAGE1_DIR}/rendered/ holds {dirs.get(STAGE1_DIR + '/rendered/')}, want only {TEMPLATE_NAME}")
            for name, value in secrets.items():
                sf = files.get(f"{STAGE1_DIR}/{name}")
                r.check(sf is not None and sf["content"] == value, f"{STAGE1_DIR}/{name} missing or different")
            active = [int(props.get(u, {}).get("ActiveEnterTimestampMonotonic") or 0) for u in FETCH_UNITS]
            started = int(props.get(unit, {}).get("ExecMainStartTimestampMonotonic") or 0)
            r.check(started > 0 and all(0 < a <= started for a in active),
                    f"{unit} started at {started}, the fetches were done at {active}: not after them")
            if not r.failures:
                r.notes.append(f"{unit} (as the module renders it) wrote {RENDERED} ({len(want)} bytes, 0440) "
                               "from the stage-1 secrets")
    finally:
        srv.close()
    return r


def scenario_template_stage2(ctx):
    """The stage-2 render unit as the module renders it (sandbox, SystemCallFilter=, AF_UNIX
    only), played in the initrd after the stage-2 fetches: the file gets its owner (fchown) and
    mode, and the change action reaches PID 1 through the sandboxed systemctl (the running unit
    in restartUnits runs a second time)."""
    r = Result("10-template-stage-2")
    secrets = {"alpha": os.urandom(12) + b"\n", "beta": placeholder("alpha").encode()}
    srv = Server(ctx["work"], secrets, 0, ctx["logdir"] / f"{r.name}.server.log")
    try:
        g, rep = boot_and_report(r, ctx, srv.port, "template-stage2", prompt_answer=TEST_PASSWORD, with_stage2=True)
        if rep:
            text, files, dirs, props, clock = rep
            check_units(r, ctx, "template-stage2", rep)
            for unit in FETCH_UNITS + [TEMPLATE_UNIT]:
                pr = props.get(unit, {})
                r.check(pr.get("Result") == "success", f"stage-2 {unit} Result={pr.get('Result')}"
                        + (f" (status {pr.get('ExecMainStatus')}; 31 is SIGSYS)" if pr.get("Result") == "signal" else ""))
            want = rendered(secrets)
            f = files.get(RENDERED)
            if r.check(f is not None, f"{RENDERED} missing after the stage-2 render"):
                r.check(f["content"] == want, f"{RENDERED}: content differs ({len(f['content'])} bytes, want {len(want)})")
                r.check(f["mode"] == "0440" and f["uid"] == 65534 and f["gid"] == 65534,
                        f"{RENDERED}: mode {f['mode']} owner {f['uid']}:{f['gid']}, want 0440 65534:65534")
            r.check(dirs.get(f"{STAGE1_DIR}/rendered/") == [TEMPLATE_NAME],
                    f"{STAGE1_DIR}/rendered/ holds {dirs.get(STAGE1_DIR + '/rendered/')}, want only {TEMPLATE_NAME}")
            m = files.get(MARKER_FILE)
            runs = m["content"].count(b"run") if m else 0
            r.check(runs == 2, f"{MARKER_UNIT} ran {runs} time(s), want 2 (started, then try-restarted by the render)")
            if not r.failures:
                r.notes.append(f"the stage-2 {TEMPLATE_UNIT} (sandbox as rendered) wrote {RENDERED} 0440 65534:65534 and "
                               f"try-restarted {MARKER_UNIT} through systemctl")
    finally:
        srv.close()
    return r


def scenario_credentials(ctx):
    """Secrets for stage-1 services, under the initrd's real systemd: a consumer unit gets its secrets as credentials
    from the netsecrets socket (and after the fetch unit of the one it also needs as a file); a
    unit not listed for a secret gets nothing and does not start; the consumers of secrets that
    cannot be fetched (as a credential, as a file) do not start."""
    r = Result("7-credentials")
    secrets = {"alpha": os.urandom(24) + b"\n", "beta": b"beta as file and credential"}
    srv = Server(ctx["work"], secrets, 0, ctx["logdir"] / f"{r.name}.server.log")
    try:
        g, rep = boot_and_report(r, ctx, srv.port, "credentials")
        if rep:
            text, files, dirs, props, clock = rep
            ev = ctx["evals"]["credentials"]
            r.check(sorted(ev.get("consumers") or {}) == sorted(CONSUMERS), f"consumers rendered: {sorted(ev.get('consumers') or {})}")
            check_units(r, ctx, "credentials", rep,
                        failing={"netsecrets-secret-missing-file.service", "netsecrets-client.service"})
            r.check("netsecrets-secret-alpha.service" not in ev["units"], "writeFile = false still renders a fetch unit")
            c = "nsbt-consumer.service"
            pr = props.get(c, {})
            r.check(pr.get("Result") == "success" and pr.get("ActiveState") == "active",
                    f"{c}: ActiveState={pr.get('ActiveState')} Result={pr.get('Result')}")
            r.check(f"/run/nsbt-ran-{c}" in files, f"{c} did not run with its credentials")
            for name, value in secrets.items():
                f = files.get(f"/run/credentials/{c}/{name}")
                if r.check(f is not None, f"/run/credentials/{c}/{name} missing"):
                    r.check(f["content"] == value, f"/run/credentials/{c}/{name}: content differs")
            r.check(sorted(dirs.get(f"/run/credentials/{c}/") or []) == sorted(secrets),
                    f"/run/credentials/{c}/ holds {dirs.get(f'/run/credentials/{c}/')}")
            # beta also as a file (ordering: the consumer Requires= its fetch unit); alpha never.
            r.check(files.get(f"{STAGE1_DIR}/beta", {}).get("content") == secrets["beta"], f"{STAGE1_DIR}/beta")
            r.check(f"{STAGE1_DIR}/alpha" not in files, f"{STAGE1_DIR}/alpha written though writeFile = false")
            for u in ("nsbt-unlisted.service", "nsbt-blocked.service", "nsbt-blocked-file.service"):
                pr = props.get(u, {})
                # Failed to start (credentials refused: Result=exit-code, ActiveState=failed) or
                # never started (dependency failed: inactive, Result stays "success").
                # Its command never ran: the marker below.
                r.check(pr.get("ActiveState") in ("failed", "inactive")
                        and (pr.get("ActiveState") == "inactive" or pr.get("Result") != "success"),
                        f"{u} started: ActiveState={pr.get('ActiveState')} Result={pr.get('Result')}")
                r.check(f"/run/nsbt-ran-{u}" not in files, f"{u} ran")
                got = dirs.get(f"/run/credentials/{u}/")
                r.check(not got, f"/run/credentials/{u}/ holds {got}")
                r.notes.append(f"{u}: ActiveState={pr.get('ActiveState')} Result={pr.get('Result')}")
            r.check("refused alpha for nsbt-unlisted.service: not allowed" in text,
                    "no refusal line for nsbt-unlisted.service on the console")
            r.check("refused" in text and "missing for nsbt-blocked.service could not be fetched" in text,
                    "no 'could not be fetched' line for nsbt-blocked.service")
            r.check(secrets["beta"].decode() not in text, "a secret value appears on the console")
            if not r.failures:
                r.notes.append("nsbt-consumer.service got alpha and beta in /run/credentials from the netsecrets "
                               "socket; nsbt-unlisted, nsbt-blocked, nsbt-blocked-file did not start")
    finally:
        srv.close()
    return r


def scenario_initrd_only(ctx):
    """secrets.alpha.initrdOnly: fetched in stage 1 to its own directory, there when its consumer
    runs (nsbt-luks leaves a marker only then); when its fetch unit stops (as at the isolate to
    initrd-switch-root.target, which it Conflicts= with) systemd removes the directory with the
    key, after stopping the consumer; beta, which stage 2 may use, stays on the ramfs."""
    r = Result("11-initrd-only")
    secrets = {"alpha": b"luks key " + os.urandom(16).hex().encode(), "beta": b"kept for stage 2"}
    srv = Server(ctx["work"], secrets, 0, ctx["logdir"] / f"{r.name}.server.log")
    try:
        g, rep = boot_and_report(r, ctx, srv.port, "initrd-only")
        if rep:
            text, files, dirs, props, clock = rep
            ev = ctx["evals"]["initrd-only"]
            r.check("initrd-switch-root.target" in ev["units"]["netsecrets-secret-alpha.service"],
                    "the rendered alpha unit names no initrd-switch-root.target")
            r.check("run-netsecrets.mount" in ev["units"], "no run-netsecrets.mount rendered")
            r.check(props.get("run-netsecrets.mount", {}).get("ActiveState") == "active",
                    f"run-netsecrets.mount: {props.get('run-netsecrets.mount')}")
            r.check("/run/nsbt-ran-nsbt-luks.service" in files,
                    f"nsbt-luks did not find {INITRD_ONLY_FILE} while it ran")
            r.check(props.get("netsecrets-secret-alpha.service", {}).get("Result") == "success",
                    f"alpha's fetch: {props.get('netsecrets-secret-alpha.service')}")
            r.check(props.get("nsbt-switch.service", {}).get("Result") == "success",
                    f"nsbt-switch: {props.get('nsbt-switch.service')}")
            r.check(props.get("netsecrets-secret-alpha.service", {}).get("ActiveState") == "inactive",
                    "alpha's fetch unit still active")
            r.check(INITRD_ONLY_FILE not in files, f"{INITRD_ONLY_FILE} still there after its unit stopped")
            r.check(not dirs.get(f"{STAGE1_DIR}/initrd-only/"),
                    f"{STAGE1_DIR}/initrd-only/ holds {dirs.get(f'{STAGE1_DIR}/initrd-only/')}")
            r.check(files.get(f"{STAGE1_DIR}/beta", {}).get("content") == secrets["beta"], f"{STAGE1_DIR}/beta")
            r.check(f"{STAGE1_DIR}/alpha" not in files, f"{STAGE1_DIR}/alpha written")
            r.check(secrets["alpha"].decode() not in text, "the key appears on the console")
            if not r.failures:
                r.notes.append(f"{INITRD_ONLY_FILE} was there for nsbt-luks and gone once its unit stopped; "
                               f"{STAGE1_DIR}/beta (ramfs) kept")
    finally:
        srv.close()
    return r


def scenario_actions(ctx):
    """Change actions: the rendered stage-2 fetch unit of a secret with restartUnits (sandbox with
    AF_UNIX for systemctl, as rendered) writes the new value and then `systemctl --no-block
    try-restart`s the unit that uses it: that unit runs a second time."""
    r = Result("8-change-actions")
    secrets = {"alpha": os.urandom(16), "beta": b"no actions here"}
    srv = Server(ctx["work"], secrets, 0, ctx["logdir"] / f"{r.name}.server.log")
    try:
        g, rep = boot_and_report(r, ctx, srv.port, "actions", prompt_answer=TEST_PASSWORD, with_stage2=True)
        if rep:
            text, files, dirs, props, clock = rep
            check_units(r, ctx, "actions", rep)
            for unit in FETCH_UNITS:
                pr = props.get(unit, {})
                r.check(pr.get("Result") == "success", f"stage-2 {unit} Result={pr.get('Result')}"
                        + (f" (status {pr.get('ExecMainStatus')}; 31 is SIGSYS)" if pr.get("Result") == "signal" else ""))
            f = files.get(f"{STAGE2_DIR}/alpha")
            r.check(f is not None and f["content"] == secrets["alpha"], f"{STAGE2_DIR}/alpha missing or wrong")
            runs = files.get("/run/nsbt-restarts")
            n = runs["content"].count(b"started") if runs else 0
            r.check(n == 2, f"nsbt-restarted.service ran {n} time(s), want 2 (started, then restarted by the fetch)")
            # (The stage-2 unit logs to the journal only; systemd's own lines are on the console.)
            r.check(re.search(r"Stopped .*nsbt-restarted\.service", text) is not None,
                    "systemd did not stop nsbt-restarted.service for the restart")
            if not r.failures:
                r.notes.append("the stage-2 fetch of alpha wrote the value and restarted nsbt-restarted.service "
                               "through systemctl inside its sandbox")
    finally:
        srv.close()
    return r


# (number, short name, function, the machine it boots)
SCENARIOS = [("1", "aes", scenario_aes, "file"), ("2", "prompt", scenario_prompt, "prompt"),
             ("3", "late", scenario_late, "file"), ("4", "typo", scenario_wrong, "prompt-short"),
             ("5", "stage2", scenario_stage2, "prompt-stage2"),
             ("6", "stage2-units", scenario_stage2_units, "prompt-stage2"),
             ("7", "credentials", scenario_credentials, "credentials"),
             ("8", "actions", scenario_actions, "actions"),
             ("9", "template", scenario_template, "template"),
             ("10", "template-stage2", scenario_template_stage2, "template-stage2"),
             ("11", "initrd-only", scenario_initrd_only, "initrd-only")]

