"""Stage 1 (enableInitrd): the stage-1 fetch units, boot.initrd.secrets with each boot loader, the
module's assertion where no boot loader can append a file.

The scenarios are in initrd.nix."""

import re

from lib import R, exe_re, exec_start, expect, has, unit_lines, words

# Evaluation groups (one nix-instantiate each) of the scenarios in initrd.nix.
GROUPS = {"initrd": ["initrd-grub", "initrd-systemd-boot", "initrd-none-literals"],
    "options": ["initrd-none-files", "original-client-initrd-none"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = ["initrd-grub", "initrd-systemd-boot", "initrd-none-literals"]
# Secret values written in initrd.nix: none may appear in any rendered unit.
LITERALS = ["literal-initrd-password", "literal-initrd-key"]
# What nixpkgs says when a boot loader cannot append a file: the module must say more first.
NIXPKGS_INITRD_MSG = "boot.loader.initrd.secrets values must be unquoted paths"


def checks(ctx):
    f, iunits, warns, failed, asserts = ctx.f, ctx.iunits, ctx.warns, ctx.failed, ctx.asserts

    def initrd_files(name, loader):
        def c():
            x = f(name)
            expect(x["supportsInitrdSecrets"] is True, f"{loader} should support initrd secrets")
            expect(x["initrdSecrets"] == {
                "/etc/netsecrets/initrd-key": {"kind": "string", "value": f"{ctx.canary_dir}/key"},
                "/etc/netsecrets/initrd-password": {"kind": "string", "value": f"{ctx.canary_dir}/pw"},
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
        asserts("original-client-initrd-none", "netsecrets.client.encryptionKeyFile cannot reach stage 1")
        expect(not any("passwordFile cannot reach" in m or NIXPKGS_INITRD_MSG in m
                       for m in failed("original-client-initrd-none")), failed("original-client-initrd-none"))
        fa = failed("prompt-none-key-file")
        expect(len(fa) == 1 and "netsecrets.client.encryptionKeyFile cannot reach stage 1" in fa[0], fa)
    R.check("NixOS: a file for stage 1 on a machine whose boot loader cannot append initrd secrets: the "
            "module's assertion names the option and what to do instead (not nixpkgs' message)", initrd_refused)

    R.check("NixOS: enableInitrd with grub: the password and key files' contents are in no derivation "
            "(appended at install time, never copied into the store)",
            ctx.closure_check("initrd-grub", [ctx.canaries["pw"], ctx.canaries["key"]]))
