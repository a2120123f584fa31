"""Warnings and assertions for settings that would otherwise be silently ignored or wrong; a disabled
module.

The scenarios are in refused.nix."""

from lib import R, expect

# Evaluation groups (one nix-instantiate each) of the scenarios in refused.nix.
GROUPS = {"options": ["client-password-and-file", "client-no-server", "client-no-password",
        "client-stray-secret", "initrd-no-systemd", "initrd-no-network", "server-no-password",
        "server-no-secrets", "server-stray-file", "server-reserved-name", "server-plaintext", "disabled"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = []
# Secret values written in refused.nix: none may appear in any rendered unit.
LITERALS = ["both-set"]


def checks(ctx):
    f, warns, no_warn, failed, asserts = ctx.f, ctx.warns, ctx.no_warn, ctx.failed, ctx.asserts

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
        for n in ("original-server", "original-client", "owned-client"):
            expect(failed(n) == [], f"{n}: {failed(n)}")
        expect(not any(u for u in (f("disabled")["units"] or {})), f("disabled")["units"])
    R.check("NixOS: assertions name the option to set; a disabled module defines no unit", assertions)
