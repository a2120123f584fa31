"""Option types: which values each option accepts or refuses.

The scenarios are in types.nix."""

from lib import R, expect

# Evaluation groups (one nix-instantiate each) of the scenarios in types.nix.
GROUPS = {"types": ["types"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = []
# Secret values written in types.nix: none may appear in any rendered unit.
LITERALS = []


def checks(ctx):
    f = ctx.f

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
