"""Option descriptions that promise something checkable.

The scenarios are in docs.nix."""

from lib import R, expect

# Evaluation groups (one nix-instantiate each) of the scenarios in docs.nix.
GROUPS = {"docs": ["docs"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = []
# Secret values written in docs.nix: none may appear in any rendered unit.
LITERALS = []


def checks(ctx):
    f = ctx.f

    def overrides_doc():
        d = f("docs")["clientSystemdOverrides"]
        expect("netsecrets-refresh.service" in d and "netsecrets-secret-<name>.service" in d, d)
    R.check("NixOS: netsecrets.client.systemdOverrides says it changes the fetch units and netsecrets-refresh.service",
            overrides_doc)
