# Stage 2 of netsecrets.client: one oneshot netsecrets-secret-<name>.service
# per secret (`netsecrets send ... --file-output /var/lib/netsecrets/<name>`),
# netsecrets-client.service over all of them, the gates consumers Require
# (netsecrets-ready-<name>.service), what the requiredBy units get, the
# refresh timer and the offline cache's setup. The credentials socket is in
# ./credentials.nix, stage 1 in ./initrd.nix, the RAM file systems in
# ./storage.nix.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  derived = import ./args.nix { inherit config lib pkgs utils; };
  inherit (derived)
    cfg
    common
    secretOf
    hardening
    credentials
    stage2Send
    stage2Names
    stage2FetchUnits
    changeArgs
    withUnixSockets
    systemctl
    allFetchedOrTrue
    consumers
    refreshInterval
    defaultRefreshDelay
    offline
    offlineCacheDir
    ;

  stage2Unit = name: {
    description = "netsecrets: fetch secret ${name}";
    after = [ "network-online.target" ];
    wants = [ "network-online.target" ];
    before = [ "netsecrets-client.service" ];
    serviceConfig =
      hardening
      // {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = stage2Send name false;
        LoadCredential = credentials;
      }
      // lib.optionalAttrs (changeArgs config.systemd.package name false != [ ]) {
        RestrictAddressFamilies = hardening.RestrictAddressFamilies ++ [ "AF_UNIX" ];
      }
      // cfg.systemdOverrides;
  };

  # netsecrets-ready-<name>.service: the gate consumers Require (see
  # consumerConfig). It Wants= and is After= the fetch unit and succeeds only
  # when that unit is active; restarting the fetch unit does not touch it
  # (Wants= propagates no restart), so neither are the consumers. Not named
  # netsecrets-secret-*: a glob over the fetch units must not match it.
  readyUnit = name: {
    description = "netsecrets: secret ${name} was fetched in this boot";
    wants = [ (common.fetchUnit name) ];
    after = [ (common.fetchUnit name) ];
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      ExecStart = common.execLine utils [
        (systemctl config.systemd.package)
        "is-active"
        "--quiet"
        (common.fetchUnit name)
      ];
    };
  };

  # netsecrets-refresh.service (refreshInterval): every file secret fetched
  # again; an unchanged value leaves its file alone, a changed one is written
  # and its restartUnits / reloadUnits are restarted / reloaded. Its
  # requiredBy units are started only with refreshStartsUnits (never by
  # default: a unit an administrator stopped stays stopped). One failing
  # secret does not stop the others ("-").
  refreshUnit = {
    description = "netsecrets: fetch the secrets again, act on changes";
    after = [
      "network-online.target"
      "netsecrets-client.service"
    ];
    wants = [ "network-online.target" ];
    serviceConfig =
      withUnixSockets hardening
      // {
        Type = "oneshot";
        ExecStart = map (
          name:
          "-"
          + stage2Send name true
        ) stage2Names;
        LoadCredential = credentials;
      }
      // cfg.systemdOverrides;
  };

in
{
  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        # The directory is root's; each file gets its owner/group/mode from
        # `netsecrets send` when written (atomically). A `z` rule per secret
        # re-applies them to a copy from an earlier boot; it creates nothing,
        # so no empty file ever looks like a delivered secret.
        systemd.tmpfiles.rules = [
          "d ${common.stateDir} 0751 root root -"
        ]
        ++ map (
          name:
          let
            s = secretOf name;
          in
          "z ${s.file} ${s.mode} ${s.owner} ${s.group} -"
        ) stage2Names;

        systemd.services = lib.listToAttrs (map (name: lib.nameValuePair (common.fetchUnitBase name) (stage2Unit name)) stage2Names) // {
          netsecrets-client = {
            description = "netsecrets: fetch all requested secrets";
            wantedBy = [ "multi-user.target" ];
            after = [ "network-online.target" ] ++ stage2FetchUnits;
            wants = [ "network-online.target" ] ++ stage2FetchUnits;
            serviceConfig = {
              Type = "oneshot";
              RemainAfterExit = true;
              ExecStart = allFetchedOrTrue config.systemd.package stage2FetchUnits;
            };
          };
        };
      }

      { systemd.services = consumers "requiredBy" "stage2"; }

      (lib.mkIf (refreshInterval != null && stage2Names != [ ]) {
        systemd.services.netsecrets-refresh = refreshUnit;
        systemd.timers.netsecrets-refresh = {
          description = "netsecrets: fetch the secrets again every ${refreshInterval}";
          wantedBy = [ "timers.target" ];
          timerConfig = {
            OnBootSec = refreshInterval;
            OnUnitActiveSec = refreshInterval;
          }
          // lib.optionalAttrs (cfg.refreshInterval == null) { RandomizedDelaySec = defaultRefreshDelay; };
        };
      })

      # The gates (readyUnit) of the file secrets a unit or a template
      # (templates.nix) may require; started only as such a requirement.
      {
        systemd.services = lib.listToAttrs (
          map (name: lib.nameValuePair (common.readyUnitBase name) (readyUnit name)) (
            lib.filter (n: (secretOf n).requiredBy != [ ] || (cfg.templates or { }) != { }) stage2Names
          )
        );
      }

      (lib.mkIf offline.enable {
        systemd.tmpfiles.rules = [ "d ${offlineCacheDir} 0700 root root -" ];
        # systemd-creds creates the host key on first use, but the fetch units
        # see /var/lib/systemd read-only: make it once, before them.
        systemd.services = {
          netsecrets-cache-setup = {
            description = "netsecrets: systemd's credential host key for the offline cache";
            unitConfig.ConditionPathExists = "!/var/lib/systemd/credential.secret";
            after = [ "local-fs.target" ];
            serviceConfig = {
              Type = "oneshot";
              RemainAfterExit = true;
              ExecStart = "${config.systemd.package}/bin/systemd-creds setup";
            };
          };
        }
        // lib.genAttrs (map common.fetchUnitBase stage2Names ++ lib.optional (refreshInterval != null && stage2Names != [ ]) "netsecrets-refresh") (_: {
          wants = [ "netsecrets-cache-setup.service" ];
          after = [ "netsecrets-cache-setup.service" ];
        });
      })
    ]
  );
}
