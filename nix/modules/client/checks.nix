# The assertions and warnings of netsecrets.client (those of the storage
# options are in ./storage.nix, the templates' in ../templates.nix): what is
# missing, what cannot work on this machine, which option is ignored, and
# which secret ends up in the world-readable Nix store.
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
    ;
  inherit (common) nonEmpty;

  noAppend = "its boot loader cannot append secrets to the initrd (boot.loader.supportsInitrdSecrets is false: no boot loader, or one without initrd secrets)";
  initrdFileAssertions = lib.optionals (cfg.enableInitrd || derived.verifyPassword) [
    {
      assertion = derived.canAppend || !derived.keyIsFile;
      message = ''
        netsecrets.client.encryptionKeyFile cannot reach stage 1 (netsecrets.client.enableInitrd, or
        enableInitrdPassword checking the typed password against the server) on
        this machine: ${noAppend}. Use a boot loader that appends initrd secrets (boot.loader.grub
        or boot.loader.systemd-boot), or set netsecrets.client.encryptionKey instead (it is then
        copied into the world-readable Nix store and the initrd), or set netsecrets.client.enableInitrd = false.
      '';
    }
    {
      assertion = derived.canAppend || !derived.passwordIsFile;
      message = ''
        netsecrets.client.passwordFile cannot reach stage 1 (netsecrets.client.enableInitrd) on
        this machine: ${noAppend}. Set netsecrets.client.enableInitrdPassword = true to type the
        password on the console at boot instead, or use a boot loader that appends initrd secrets
        (boot.loader.grub or boot.loader.systemd-boot).
      '';
    }
  ];

in
{
  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = cfg.server != null;
            message = "netsecrets.client: set netsecrets.client.server to the server's address.";
          }
          {
            assertion = derived.passwordFile != null;
            message = "netsecrets.client: set netsecrets.client.passwordFile (or password, or enableInitrdPassword = true).";
          }
          {
            assertion = names != [ ];
            message = "netsecrets.client: netsecrets.client.request_secrets is empty; list the secrets to fetch.";
          }
          {
            assertion = (cfg.enableInitrd || cfg.enableInitrdPassword) -> config.boot.initrd.systemd.enable;
            message = "netsecrets.client.enableInitrd and enableInitrdPassword need systemd in stage 1: set boot.initrd.systemd.enable = true.";
          }
        ]
        ++ [
          {
            assertion = cfg.protocol != 2 || derived.keyFile != null;
            message = "netsecrets.client.protocol = 2 needs an encryption key (netsecrets.client.encryptionKeyFile, not insecure); in plaintext only protocol 1 exists.";
          }
        ]
        ++ initrdFileAssertions
        ++ map (name: {
          assertion = lib.elem name names;
          message = "secrets.${name} is configured but \"${name}\" is not in netsecrets.client.request_secrets; add it there.";
        }) (lib.attrNames cfg.secrets)
        ++ lib.concatMap (name: [
          {
            assertion = (secretOf name).writeFile || (secretOf name).credential;
            message = "secrets.${name}: writeFile = false needs credential = true (else the secret goes nowhere).";
          }
          {
            assertion = (secretOf name).credential -> ((secretOf name).requiredBy != [ ] || (secretOf name).initrdRequiredBy != [ ]);
            message = "secrets.${name}.credential = true: list the services that get it in secrets.${name}.requiredBy (or initrdRequiredBy).";
          }
          {
            assertion = (secretOf name).initrdRequiredBy != [ ] -> cfg.enableInitrd;
            message = "secrets.${name}.initrdRequiredBy needs netsecrets.client.enableInitrd = true (the secret is fetched in stage 1 only then).";
          }
        ]) names
        ++ map (name: {
          assertion = lib.stringLength (common.fetchUnit name) <= 255;
          message = "netsecrets.client.request_secrets: the name \"${name}\" is too long for a unit name; shorten it.";
        }) names;

        warnings =
          lib.optional (nonEmpty cfg.password && !cfg.enableInitrdPassword && !(nonEmpty cfg.passwordFile)) (
            common.literalInStore "netsecrets.client.password" "password" ''
              Use netsecrets.client.passwordFile with a root-only file, or
              enableInitrdPassword, instead.''
          )
          ++ lib.optional (nonEmpty cfg.password && !cfg.enableInitrdPassword && nonEmpty cfg.passwordFile) (
            common.fileWins "netsecrets.client.password" "netsecrets.client.passwordFile"
          )
          ++ lib.optional (nonEmpty cfg.password && cfg.enableInitrdPassword) ''
            netsecrets.client.password is ignored because netsecrets.client.enableInitrdPassword
            is set (the password typed at boot is used); remove netsecrets.client.password.
          ''
          ++ lib.optional (nonEmpty cfg.passwordFile && cfg.enableInitrdPassword) ''
            netsecrets.client.passwordFile is ignored because netsecrets.client.enableInitrdPassword
            is set (the password typed at boot is used); remove netsecrets.client.passwordFile.
          ''
          ++ lib.optional (!cfg.insecure && nonEmpty cfg.encryptionKey && nonEmpty cfg.encryptionKeyFile) (
            common.fileWins "netsecrets.client.encryptionKey" "netsecrets.client.encryptionKeyFile"
          )
          ++ lib.optional (!cfg.insecure && nonEmpty cfg.encryptionKey && !(nonEmpty cfg.encryptionKeyFile)) (
            common.literalInStore "netsecrets.client.encryptionKey" "key"
              "Use netsecrets.client.encryptionKeyFile with a root-only file instead."
          )
          ++ lib.optional (derived.keyFile == null && !cfg.insecure) (common.noKey "netsecrets.client")
          ++ lib.optional (
            cfg.enableInitrd && !derived.initrdNetwork
          ) ''
            netsecrets.client.enableInitrd is set but the initrd has no network: set
            boot.initrd.network.enable = true (and configure boot.initrd.systemd.network),
            or the stage-1 fetch cannot reach the server.
          '';
      }

      (lib.mkIf derived.offline.enable {
        assertions = [
          {
            assertion = derived.offline.after < (if cfg.timeout == null then 30 else cfg.timeout);
            message = "netsecrets.client.offlineCache.after (${toString derived.offline.after} s) must be below netsecrets.client.timeout (${toString (if cfg.timeout == null then 30 else cfg.timeout)} s): the fetch gives up at the timeout, before the cache would be used.";
          }
        ];
        warnings = lib.optional (cfg.refreshInterval == null) ''
          netsecrets.client.offlineCache is enabled without netsecrets.client.refreshInterval:
          a value taken from the cache at boot is only replaced by the server's at the next
          boot (and a revoked secret stays until then). Set refreshInterval, e.g. "15min".
        '';
      })
    ]
  );
}
