# What the boot test boots: the systemd units that the netsecrets client module
# (nix/modules) renders inside a REAL NixOS evaluation (nixos/lib/eval-config.nix
# of the nixpkgs tree that <nixpkgs> names; initrd/boot-test/run unpacks
# ../shared/nixpkgs/nixpkgs-24.05-*.tar.xz for that, so what this proves is the
# option names and unit rendering of NixOS 24.05).
#
# Called by initrd/boot-test/run and tests/sops/run (through
# initrd/boot-test/nixeval.py) as
#   nix-instantiate --eval --strict --json initrd/boot-test/units.nix \
#     --argstr configsJson '{"<config>": {"enableInitrd": true, ...}, ...}'
# Every <config> is one machine: a NixOS configuration with systemd in stage 1,
# a boot loader that appends boot.initrd.secrets (systemd-boot) and the
# netsecrets.client settings given for it. For each it returns
#   units        { "<unit>" = text; } of every boot.initrd.systemd.units entry
#                whose name starts with "netsecrets" or is
#                initrd-nixos-copy-secrets.service (boot.initrd.secrets) or
#                run-netsecrets.mount (the ramfs the secrets go to);
#   wantedBy     { "<unit>" = [ targets ]; } for the same units (NixOS makes
#                the .wants symlinks from these; systemd does not read
#                [Install] at boot);
#   copySecretsScript  the script of initrd-nixos-copy-secrets.service;
#   initrdSecrets  boot.initrd.secrets: { "<path in the initrd>" = "<source>"; };
#   exe          lib.getExe netsecrets.client.package (the store path the
#                units name; the harness puts the static binary there);
#   systemctl    the systemctl of boot.initrd.systemd.package;
#   stage2       { "<unit>" = text; } of the stage-2 netsecrets units
#                (systemd.units), to read where stage 2 takes the password;
#   tmpfiles     the module's systemd.tmpfiles.rules that name netsecrets
#                paths (stage 2);
#   consumers    { "<unit>" = text; } of the stage-1 services given as
#                `initrdServices` in the settings, with what the
#                module added for secrets.<name>.initrdRequiredBy / credential
#                (`secrets` in the settings); consumersWantedBy likewise;
#   stage2WantedBy  { "<unit>" = [ targets ]; } for the units of stage2;
#   stage2Consumers { "<unit>" = text; } of the stage-2 services given as
#                `services` in the settings, with what the module added for
#                secrets.<name>.requiredBy / credential; stage2ConsumersWantedBy;
#   mounts       { "<unit>" = text; } of every systemd.units *.mount whose
#                name mentions netsecrets, and fileSystems: the fileSystems
#                entries under /var/lib/netsecrets (for /etc/fstab);
#   etc          { "<path>" = text; } of environment.etc entries under
#                netsecrets/ (the server's clients file);
#   (`serverModule` in the settings is netsecrets.server; `enable = false` turns
#   the client off; initrd/boot-test/stage2.py uses these three.)
#   assertions / warnings  failed assertion messages and warnings (the
#                harness fails a machine with either: its settings are the
#                documented ones).
#
# Nothing is built: only unit texts and store paths are evaluated.
{
  configsJson,
  system ? "x86_64-linux",
}:
let
  nixpkgs = <nixpkgs>;
  lib = import (nixpkgs + "/lib");
  configs = builtins.fromJSON configsJson;

  # Everything but netsecrets.client, which comes from the harness. The
  # password and key options name files on the NixOS host (strings, never
  # read here); the harness knows what it puts at those paths.
  site = {
    # A boot loader that appends boot.initrd.secrets to the initrd (NixOS
    # 24.05 refuses string sources with one that cannot).
    boot.loader.systemd-boot.enable = true;
    boot.loader.efi.canTouchEfiVariables = false;
    boot.initrd.systemd.enable = true;
    boot.initrd.systemd.network.enable = true;
    fileSystems."/" = {
      device = "/dev/vda";
      fsType = "ext4";
    };
    system.stateVersion = "24.05";
  };

  # One package set for every machine (evaluated once, shared), with the
  # package as the flake builds it (flake.nix: pkgsStatic.callPackage
  # nix/package.nix), so the units name the store path a user's machine
  # would have. Evaluated, never built: the harness puts the static binary
  # under test at that path.
  pkgs = import nixpkgs {
    inherit system;
    overlays = [ (final: _: { netsecrets = final.pkgsStatic.callPackage ../../nix/package.nix { }; }) ];
  };

  evalOne =
    settings:
    let
      sys = import (nixpkgs + "/nixos/lib/eval-config.nix") {
        inherit system pkgs;
        modules = [
          ../../nix/modules
          site
          {
            netsecrets.client = {
              enable = true;
            }
            // removeAttrs settings [
              "secrets"
              "initrdServices"
              "services"
              "serverModule"
            ];
            netsecrets.server = settings.serverModule or { };
            systemd.services = settings.services or { };
            # secrets.<name> (initrdRequiredBy, credential,
            # writeFile) and the stage-1 services that use them.
            secrets = settings.secrets or { };
            boot.initrd.systemd.services = settings.initrdServices or { };
          }
        ];
      };
      cfg = sys.config;
      initrdUnits = cfg.boot.initrd.systemd.units;
      ours = lib.filterAttrs (
        name: _:
        lib.hasPrefix "netsecrets" name
        || name == "initrd-nixos-copy-secrets.service"
        # The RAM file system the stage-1 secrets are written to.
        || name == "run-netsecrets.mount"
      ) initrdUnits;
      # With the RAM file systems stage 2 writes to (var-lib-netsecrets.mount,
      # run-netsecrets.mount).
      stage2 = lib.filterAttrs (
        name: _:
        lib.hasPrefix "netsecrets" name
        || name == "var-lib-netsecrets.mount"
        || name == "run-netsecrets.mount"
      ) cfg.systemd.units;
      consumerNames = map (n: "${n}.service") (lib.attrNames (settings.initrdServices or { }));
      stage2ConsumerNames = map (n: "${n}.service") (lib.attrNames (settings.services or { }));
      stage2Consumers = lib.filterAttrs (n: _: lib.elem n stage2ConsumerNames) cfg.systemd.units;
      mountUnits = lib.filterAttrs (n: _: lib.hasSuffix ".mount" n && lib.hasInfix "netsecrets" n) cfg.systemd.units;
      copy = cfg.boot.initrd.systemd.services.initrd-nixos-copy-secrets or null;
    in
    {
      units = lib.mapAttrs (_: u: u.text) ours;
      # The stage-1 services of `initrdServices`, as rendered (with the
      # Requires=/After=/LoadCredential= the module added).
      consumers = lib.mapAttrs (_: u: u.text) (lib.filterAttrs (n: _: lib.elem n consumerNames) initrdUnits);
      consumersWantedBy = lib.mapAttrs (_: u: u.wantedBy) (
        lib.filterAttrs (n: _: lib.elem n consumerNames) initrdUnits
      );
      wantedBy = lib.mapAttrs (_: u: u.wantedBy) ours;
      copySecretsScript = if copy == null then null else copy.script;
      initrdSecrets = lib.mapAttrs (_: s: toString s) cfg.boot.initrd.secrets;
      exe = lib.getExe cfg.netsecrets.client.package;
      systemctl = "${cfg.boot.initrd.systemd.package}/bin/systemctl";
      stage2 = lib.mapAttrs (_: u: u.text) stage2;
      stage2WantedBy = lib.mapAttrs (_: u: u.wantedBy) stage2;
      stage2Consumers = lib.mapAttrs (_: u: u.text) stage2Consumers;
      stage2ConsumersWantedBy = lib.mapAttrs (_: u: u.wantedBy) stage2Consumers;
      mounts = lib.mapAttrs (_: u: u.text) mountUnits;
      fileSystems = map (fs: { inherit (fs) mountPoint device fsType options; }) (
        lib.filter (fs: lib.hasPrefix "/var/lib/netsecrets" fs.mountPoint) (lib.attrValues cfg.fileSystems)
      );
      etc = lib.mapAttrs (_: e: e.text) (
        lib.filterAttrs (n: e: lib.hasPrefix "netsecrets/" n && e.enable && e.text != null) cfg.environment.etc
      );
      tmpfiles = lib.filter (lib.hasInfix "netsecrets") cfg.systemd.tmpfiles.rules;
      assertions = map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);
      inherit (cfg) warnings;
    };
in
lib.mapAttrs (_: evalOne) configs
