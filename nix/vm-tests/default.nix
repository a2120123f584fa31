# The NixOS VM tests, one file per scenario; flake.nix exposes them as
# checks.<system>.<name>. Run one with e.g.
#   nix build .#checks.x86_64-linux.server-client -L
{ pkgs, self }:
let
  run = file: pkgs.testers.runNixOSTest (import file { inherit self; });
in
{
  server-client = run ./server-client.nix;
  unauthorized-client = run ./unauthorized-client.nix;
  key-mismatch = run ./key-mismatch.nix;
  initrd-fetch = run ./initrd-fetch.nix;
  initrd-password-prompt = run ./initrd-password-prompt.nix;
  offline-cache = run ./offline-cache.nix;
  named-clients = run ./named-clients.nix;
  templates = run ./templates.nix;
  credentials = run ./credentials.nix;
  refresh-restart = run ./refresh-restart.nix;
}
