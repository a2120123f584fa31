# Where netsecrets.client keeps the secrets it writes, and for how long.
#
# - Stage 2: /var/lib/netsecrets is a ramfs mount (var-lib-netsecrets.mount,
#   mode 0751, root), like sops-nix's /run/secrets.d: the values never reach
#   the disk (no backup, snapshot or stolen disk holds them) and ramfs pages
#   are never swapped out. Every stage-2 fetch, render, refresh and
#   credentials unit Requires= and is After= the mount, so nothing is written
#   to the disk below it. netsecrets.client.keepOnDisk = true keeps the old
#   behaviour (files on the root file system).
# - /run/netsecrets (stage-1 copies, rendered templates) is a ramfs mount in
#   stage 2 as well (run-netsecrets.mount).
# - Stage 1 (enableInitrd): /run/netsecrets is a ramfs mount as well
#   (run-netsecrets.mount in the initrd). IgnoreOnIsolate= keeps it mounted
#   when the initrd isolates initrd-switch-root.target, and systemd moves
#   /run with everything mounted below it into the new root, so a stage-1
#   secret that stage 2 uses is still there, still on ramfs.
# - netsecrets.client.secrets.<name>.initrdOnly: fetched in stage 1 only (no stage-2 unit, no
#   tmpfiles rule), into a RuntimeDirectory= of its own fetch unit
#   (/run/netsecrets/initrd-only/<name>/), which systemd removes with the
#   file when the unit stops. The unit Conflicts= with and is ordered
#   against initrd-switch-root.target, so it is stopped (and the secret
#   removed) before the switch to the real root is made; its stage-1
#   consumers are ordered after it and so stop first.
#
# Why ramfs and not tmpfs with noswap: noswap needs Linux 6.4 (a 6.1 LTS
# kernel refuses the mount, and the secrets with it); ramfs has no size
# limit, but the server bounds every value (16 MiB) and only the listed
# secrets are written, by root.
{
  config,
  lib,
  ...
}:
let
  cfg = config.netsecrets.client;
  common = import ../common.nix { inherit lib; };
  secretOf = name: cfg.secrets.${name};
  names = cfg.secretNames;
  unitOf = common.fetchUnit;
  fileNames = lib.filter (n: (secretOf n).writeFile) names;
  initrdOnlyNames = lib.filter (n: (secretOf n).initrdOnly) names;
  stage2Names = lib.filter (n: !(secretOf n).initrdOnly) fileNames;

  stateMount = "var-lib-netsecrets.mount";
  initrdMount = "run-netsecrets.mount";
  ramfs = where: {
    what = "ramfs";
    inherit where;
    type = "ramfs";
    options = "mode=0751,nosuid,nodev,noexec";
  };
  needsMount = m: {
    requires = [ m ];
    after = [ m ];
  };

  # Every stage-2 unit that writes or reads /var/lib/netsecrets (the render
  # units of ../templates.nix add the same themselves).
  stage2Units =
    map unitOf stage2Names
    ++ [ "netsecrets-client.service" ]
    ++ lib.optional (cfg.refreshInterval != null && stage2Names != [ ]) "netsecrets-refresh.service"
    ++ lib.optional (lib.any (
      n: (secretOf n).credential && (secretOf n).requiredBy != [ ]
    ) names) "netsecrets-credentials.service";
  initrdUnits = map unitOf fileNames ++ [ "netsecrets-client.service" ];
  inherit (common) serviceName;
in
{
  options.netsecrets.client.keepOnDisk = lib.mkOption {
    type = lib.types.bool;
    default = false;
    description = ''
      Keep the fetched secrets on the root file system (/var/lib/netsecrets
      as a plain directory) instead of a RAM file system mounted there. They
      then survive a reboot, but also end up in backups and snapshots of
      that file system, on a disk that is stolen or thrown away, and in
      free blocks after they are replaced. The default (false) mounts ramfs
      at /var/lib/netsecrets, as sops-nix does for /run/secrets.d: the
      secrets are fetched again at every boot and never reach the disk or
      swap.
    '';
  };

  options.netsecrets.client.secrets = lib.mkOption {
    type = lib.types.attrsOf (
      lib.types.submodule {
        options.initrdOnly = lib.mkOption {
          type = lib.types.bool;
          default = false;
          description = ''
            Fetch this secret in systemd stage 1 only (e.g. a LUKS key): it is
            written to {option}`initrdFile` for the initrd's services, never
            fetched or written in stage 2 (no stage-2 unit, no tmpfiles rule),
            and removed from the initrd's RAM when its stage-1 unit stops,
            which happens before switch-root. Needs
            {option}`netsecrets.client.enableInitrd`; a secret that stage 2
            needs (requiredBy, restartUnits, reloadUnits, a stage-2 template)
            cannot be initrdOnly.
          '';
        };
      }
    );
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = lib.concatMap (name: [
          {
            assertion = (secretOf name).initrdOnly -> cfg.enableInitrd;
            message = "secrets.${name}.initrdOnly needs netsecrets.client.enableInitrd = true (the secret is fetched in stage 1 only).";
          }
          {
            assertion =
              (secretOf name).initrdOnly
              -> ((secretOf name).requiredBy == [ ] && (secretOf name).restartUnits == [ ] && (secretOf name).reloadUnits == [ ]);
            message = "secrets.${name}.initrdOnly: the secret is never fetched in stage 2, so it cannot have requiredBy, restartUnits or reloadUnits; remove those or initrdOnly.";
          }
          {
            assertion = (secretOf name).initrdOnly -> (secretOf name).writeFile;
            message = "secrets.${name}.initrdOnly needs writeFile = true (the stage-1 file is what it keeps from stage 2).";
          }
        ]) initrdOnlyNames;
      }

      {
        # Stage 2's /run/netsecrets (rendered templates; the stage-1 copies):
        # ramfs too. After an initrd that mounted it, this unit is simply
        # active (the mount came along with /run).
        systemd.mounts = [
          (
            ramfs common.initrdDir
            // {
              description = "netsecrets: secrets in RAM under /run (ramfs, never swapped)";
              wantedBy = [ "local-fs.target" ];
            }
          )
        ];
      }

      (lib.mkIf (!cfg.keepOnDisk) {
        systemd.mounts = [
          (
            ramfs common.stateDir
            // {
              description = "netsecrets: secrets in RAM (ramfs, never swapped or on disk)";
              wantedBy = [ "local-fs.target" ];
            }
          )
        ];
        systemd.services = lib.genAttrs (map serviceName stage2Units) (_: needsMount stateMount);
      })

      (lib.mkIf cfg.enableInitrd {
        boot.initrd.systemd.mounts = [
          (
            ramfs common.initrdDir
            // {
              description = "netsecrets: stage-1 secrets in RAM (ramfs, kept across switch-root)";
              wantedBy = [ "initrd.target" ];
              before = [
                "initrd.target"
                "shutdown.target"
              ];
              conflicts = [ "shutdown.target" ];
              unitConfig = {
                DefaultDependencies = false;
                # Stays mounted through the isolate to initrd-switch-root.target:
                # /run moves into the new root with it.
                IgnoreOnIsolate = true;
              };
            }
          )
        ];
        boot.initrd.systemd.services = lib.mkMerge [
          (lib.genAttrs (map serviceName initrdUnits) (_: needsMount initrdMount))
          (lib.genAttrs (map (n: serviceName (unitOf n)) initrdOnlyNames) (_: {
            # Stopped (its directory and the secret removed) before the
            # switch to the real root.
            conflicts = [ "initrd-switch-root.target" ];
            before = [ "initrd-switch-root.target" ];
          }))
        ];
      })
    ]
  );
}
