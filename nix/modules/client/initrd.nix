# Stage 1 of netsecrets.client (enableInitrd, enableInitrdPassword), in
# boot.initrd.systemd, ordered prompt -> fetch:
#   netsecrets-ask-password.service   `netsecrets ask-password` on /dev/console,
#                                     to /run/netsecrets-password
#   netsecrets-secret-<name>.service  `netsecrets send` to /run/netsecrets/<name>
#   netsecrets-client.service         fails unless all of those fetches succeeded
# plus what the initrdRequiredBy units get, the key and password handed over
# through boot.initrd.secrets, and the store paths the initrd needs. The
# stage-1 credentials socket is in ./credentials.nix, the RAM file system in
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
    names
    secretOf
    exe
    fileNames
    fetchUnits
    keyFile
    initrdPassword
    initrdSecrets
    serverArgs
    protocolArgs
    sendLine
    systemctl
    allFetchedOrTrue
    consumers
    initrdBase
    initrdPromptUnits
    verifyPassword
    ;

  askPasswordArgs = [
    exe
    "ask-password"
    "--tty"
    "/dev/console"
    "--output"
    common.consolePasswordFile
  ]
  ++ lib.optionals verifyPassword (
    [
      "--verify-secret"
      (lib.head names)
    ]
    ++ serverArgs
    ++ (
      if keyFile != null then
        [
          "--encryption-key-file"
          common.initrdKeyFile
        ]
      else
        [ "--insecure" ]
    )
    ++ [
      # Per typed password: long enough for a late initrd network.
      "--timeout"
      (toString (lib.max 60 (if cfg.timeout == null then 30 else cfg.timeout)))
      "--tries"
      "3"
    ]
    ++ protocolArgs
  );

  initrdUnit =
    name:
    lib.recursiveUpdate initrdBase {
      description = "netsecrets: fetch secret ${name} in stage 1";
      after = [
        "network-online.target"
        "initrd-nixos-copy-secrets.service"
      ]
      ++ initrdPromptUnits;
      wants = [
        "network-online.target"
        "cryptsetup-pre.target"
      ]
      ++ lib.optional (initrdSecrets != { }) "initrd-nixos-copy-secrets.service";
      before = [
        "netsecrets-client.service"
        "cryptsetup-pre.target"
        "initrd.target"
        "shutdown.target"
      ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = sendLine {
          inherit name;
          output = (secretOf name).initrdFile;
          password = initrdPassword;
          key = if keyFile != null then common.initrdKeyFile else null;
          # Only root exists in the initrd.
          mode = "0400";
        };
        # /run/netsecrets, kept when the unit stops at switch-root; an
        # initrdOnly secret has a directory of its own below it, which
        # systemd removes with the file when the unit stops (./storage.nix).
        # Only that one: systemd empties every RuntimeDirectory= of a unit
        # that does not preserve them (the boot test's scenario 11 lost the
        # other stage-1 secrets that way).
        RuntimeDirectory = if (secretOf name).initrdOnly then common.initrdOnlyDir name else "netsecrets";
        RuntimeDirectoryMode = if (secretOf name).initrdOnly then "0700" else "0751";
        RuntimeDirectoryPreserve = !(secretOf name).initrdOnly;
        UMask = "0077";
        StandardOutput = "journal+console";
        StandardError = "journal+console";
      }
      // cfg.systemdInitrdOverrides;
    };

in
{
  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      (lib.mkIf (cfg.enableInitrd || cfg.enableInitrdPassword) {
        boot.initrd.systemd.storePaths = [ exe ] ++ lib.optional cfg.enableInitrd (systemctl config.boot.initrd.systemd.package);
      })

      (lib.mkIf cfg.enableInitrdPassword {
        boot.initrd.systemd.services = {
          netsecrets-ask-password = lib.recursiveUpdate initrdBase {
            description = "netsecrets: ask for the server password on the console";
            wantedBy = [ "initrd.target" ];
            after = [
              "systemd-vconsole-setup.service"
            ]
            ++ lib.optionals verifyPassword [
              "network-online.target"
              "initrd-nixos-copy-secrets.service"
            ];
            wants = lib.optionals verifyPassword (
              [ "network-online.target" ]
              ++ lib.optional (initrdSecrets != { }) "initrd-nixos-copy-secrets.service"
            );
            before = [
              "netsecrets-client.service"
              "cryptsetup-pre.target"
              "initrd.target"
              "shutdown.target"
            ]
            ++ lib.optionals cfg.enableInitrd fetchUnits;
            serviceConfig = {
              Type = "oneshot";
              RemainAfterExit = true;
              ExecStart = common.execLine utils askPasswordArgs;
              # Own the console while the prompt is up.
              StandardInput = "tty-force";
              StandardOutput = "tty";
              StandardError = "tty";
              TTYPath = "/dev/console";
              TTYReset = true;
              TTYVHangup = false;
              # A person is typing.
              TimeoutStartSec = "infinity";
              UMask = "0077";
            };
          };
        };
      })

      (lib.mkIf (cfg.enableInitrd || verifyPassword) {
        boot.initrd.secrets = initrdSecrets;
      })

      (lib.mkIf cfg.enableInitrd {

        boot.initrd.systemd.services =
          lib.listToAttrs (map (name: lib.nameValuePair (common.fetchUnitBase name) (initrdUnit name)) fileNames)
          // {
            netsecrets-client = lib.recursiveUpdate initrdBase {
              description = "netsecrets: fetch all requested secrets in stage 1";
              wantedBy = [ "initrd.target" ];
              after = [ "network-online.target" ] ++ initrdPromptUnits ++ fetchUnits;
              wants = [
                "network-online.target"
                "cryptsetup-pre.target"
              ]
              ++ fetchUnits;
              before = [
                "cryptsetup-pre.target"
                "initrd.target"
                "shutdown.target"
              ];
              serviceConfig = {
                Type = "oneshot";
                RemainAfterExit = true;
                ExecStart = allFetchedOrTrue config.boot.initrd.systemd.package fetchUnits;
                StandardOutput = "journal+console";
                StandardError = "journal+console";
              };
            };
          };
      })

      (lib.mkIf cfg.enableInitrd { boot.initrd.systemd.services = consumers "initrdRequiredBy" "initrd"; })
    ]
  );
}
