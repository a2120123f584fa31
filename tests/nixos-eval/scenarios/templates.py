"""Templates (netsecrets.client.templates): the render units in stage 2 and stage 1, placeholders
(Nix's are the binary's), the Mosquitto module's own config file, the refused ones.

The scenarios are in templates.nix."""

import os
import re
import shutil
import subprocess
import tempfile

from lib import R, expect, has, has_not, netsecrets_binary, placeholder, unit_lines, unit_value, words

# Evaluation groups (one nix-instantiate each) of the scenarios in templates.nix.
GROUPS = {"templates": ["templates-content", "templates-mosquitto", "templates-initrd"],
    "options": ["template-unrequested", "template-cut", "template-both", "template-initrd-off",
        "template-no-client", "template-no-context", "template-credential-only"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = ["templates-content", "templates-mosquitto", "templates-initrd"]
# Secret values written in templates.nix: none may appear in any rendered unit.
LITERALS = []


def checks(ctx):
    f, units, iunits, warns, asserts = ctx.f, ctx.units, ctx.iunits, ctx.warns, ctx.asserts

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
        ram = ["run-netsecrets.mount", "var-lib-netsecrets.mount"]  # the ramfs (nix/modules/client/storage.nix)
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
        found = ctx.evaluator("templates-mosquitto").grep_closure(x["drvPath"], [placeholder("br1passwd"), placeholder("br2passwd")])
        for n, paths in found.items():
            expect(any(p.endswith("-mosquitto.conf.drv") for p in paths), f"{n}: {paths}")
    R.check("NixOS: templates, scalpel's Mosquitto example (extendModules): the config file the "
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
