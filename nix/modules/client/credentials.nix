# The credentials sockets of netsecrets.client: secrets with
# `credential = true` are handed to their requiredBy (initrdRequiredBy)
# units as systemd credentials (LoadCredential=<name>:<socket>) by
# `netsecrets credentials`, socket-activated, in stage 2 and in stage 1.
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
    keyFile
    initrdPassword
    initrdSecrets
    credentials
    credentialsLine
    hasCredConsumers
    socketOf
    withUnixSockets
    initrdBase
    initrdPromptUnits
    ;

  credentialsSocketUnit = stage: {
    description = "netsecrets: credentials socket for LoadCredential=";
    wantedBy = [ "sockets.target" ];
    socketConfig = {
      ListenStream = socketOf stage;
      SocketMode = "0600";
      SocketUser = "root";
      SocketGroup = "root";
      RemoveOnStop = true;
    };
  };

in
{
  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      (lib.mkIf (hasCredConsumers "requiredBy") {
        systemd.sockets.netsecrets-credentials = credentialsSocketUnit "stage2";
        systemd.services.netsecrets-credentials = {
          description = "netsecrets: secrets as credentials for LoadCredential=";
          requires = [ "netsecrets-credentials.socket" ];
          after = [
            "netsecrets-credentials.socket"
            "network-online.target"
          ];
          wants = [ "network-online.target" ];
          serviceConfig =
            withUnixSockets common.sandbox
            // {
              Type = "notify";
              NotifyAccess = "main";
              ExecStart = credentialsLine "requiredBy" {
                specifier = "%d/${common.passwordCredential}";
              } (if keyFile != null then { specifier = "%d/${common.keyCredential}"; } else null);
              LoadCredential = credentials;
              CapabilityBoundingSet = [ "" ];
              # It reads /proc/<pid>/cgroup of the process systemd forked to
              # load a unit's credentials (to check it is in that unit's
              # group); ProtectProc=invisible hides that process (full
              # capabilities) from this capability-less one.
              ProtectProc = "default";
            };
        };
      })

      (lib.mkIf (cfg.enableInitrd && hasCredConsumers "initrdRequiredBy") {
        # No default dependencies: stage-1 consumers may run before sysinit.target.
        boot.initrd.systemd.sockets.netsecrets-credentials = lib.recursiveUpdate (credentialsSocketUnit "initrd") {
          unitConfig.DefaultDependencies = false;
          before = [ "sockets.target" ];
          conflicts = [ "shutdown.target" ];
        };
        boot.initrd.systemd.services.netsecrets-credentials = lib.recursiveUpdate initrdBase {
          description = "netsecrets: secrets as credentials for LoadCredential= in stage 1";
          requires = [ "netsecrets-credentials.socket" ];
          after = [
            "netsecrets-credentials.socket"
            "network-online.target"
            "initrd-nixos-copy-secrets.service"
          ]
          ++ initrdPromptUnits;
          wants = [ "network-online.target" ] ++ lib.optional (initrdSecrets != { }) "initrd-nixos-copy-secrets.service";
          before = [ "shutdown.target" ];
          serviceConfig = {
            Type = "notify";
            NotifyAccess = "main";
            ExecStart = credentialsLine "initrdRequiredBy" initrdPassword (
              if keyFile != null then common.initrdKeyFile else null
            );
            UMask = "0077";
            StandardOutput = "journal+console";
            StandardError = "journal+console";
          };
        };
      })
    ]
  );
}
