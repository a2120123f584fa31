"""The console password prompt in stage 1 (enableInitrdPassword).

The scenarios are in prompt.nix."""

import re

from lib import R, exec_start, expect, has, has_not, unit_lines, words

# Evaluation groups (one nix-instantiate each) of the scenarios in prompt.nix.
GROUPS = {"prompt": ["prompt-grub", "prompt-systemd-boot", "prompt-none-literal-key"],
    "clients": ["prompt-only-none"],
    "options": ["prompt-none-key-file", "prompt-with-password"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = ["prompt-grub", "prompt-systemd-boot", "prompt-none-literal-key", "prompt-only-none"]
# Secret values written in prompt.nix: none may appear in any rendered unit.
LITERALS = ["literal-prompt-key", "typed-anyway"]


def checks(ctx):
    f, units, iunits = ctx.f, ctx.units, ctx.iunits

    def prompt(name, loader, key_file):
        def c():
            x = f(name)
            iu = iunits(name)
            expect(sorted(iu) == ["netsecrets-ask-password.service", "netsecrets-client.service",
                                  "netsecrets-secret-luks-key.service"], sorted(iu))
            ask = iu["netsecrets-ask-password.service"]
            # Each typed password checked once against the server (a typo costs one failure, not one per fetch).
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
