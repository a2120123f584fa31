# netsecrets.client: fetch secrets from a netsecrets server at boot, in
# systemd stage 1 (optional) and in stage 2, and expose their paths as
# config.netsecrets.client.secrets.<name>.file (also config.secrets.<name>.file;
# like sops-nix's config.sops.secrets.<name>.path).
#
# Stage 2: one oneshot unit per secret, netsecrets-secret-<name>.service, runs
# `netsecrets send ... --file-output /var/lib/netsecrets/<name>`;
# netsecrets-client.service Wants= and is After= all of them and then runs
# `systemctl is-active` on them, so one secret that cannot be fetched fails
# netsecrets-client.service (and whatever Requires= it) while the other
# secrets are still fetched. No shell anywhere.
#
# Stage 1 (enableInitrd / enableInitrdPassword), same shape in
# boot.initrd.systemd, ordered prompt -> fetch:
#   netsecrets-ask-password.service   `netsecrets ask-password` on /dev/console,
#                                     to /run/netsecrets-password
#   netsecrets-secret-<name>.service  `netsecrets send` to /run/netsecrets/<name>
#   netsecrets-client.service         fails unless all of those fetches succeeded
# The typed password stays in /run/netsecrets-password (/run survives
# switch-root) and stage 2 loads it from there; nothing is written under
# /run/secrets, which sops-nix owns (a symlink it replaces at every activation).
#
# The key and the password file reach stage 1 through boot.initrd.secrets: a
# boot loader that supports it (grub, systemd-boot) appends them to the initrd
# at install time; without one, only store files can be put in the initrd,
# and an assertion (./checks.nix) says so for the file options.
#
# This file only gathers the parts, one concern each:
#   options.nix      the module-wide options (server, password, key, stage 1,
#                    refresh, offline cache, overrides)
#   secrets.nix      netsecrets.client.secrets.<name> (the per-secret options),
#                    requestSecrets and the spellings that mean the same
#   args.nix         derived values and argument builders (not a module)
#   checks.nix       assertions and warnings
#   stage2.nix       the stage-2 units
#   initrd.nix       the stage-1 units
#   credentials.nix  the credentials sockets (LoadCredential=)
#   storage.nix      the RAM file systems, initrdOnly
# and ../templates.nix (netsecrets.client.templates). The order matters only
# for the order of list entries in the rendered units and of the assertions
# (the parts, then the templates, then storage: as before the split).
{
  imports = [
    ./options.nix
    ./secrets.nix
    ./checks.nix
    ./stage2.nix
    ./initrd.nix
    ./credentials.nix
    ../templates.nix
    ./storage.nix
  ];
}
