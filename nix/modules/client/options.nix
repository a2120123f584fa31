# The options of netsecrets.client that are not about one secret or one
# template: the server and how to reach it, the password and the key, stage 1,
# refresh, the offline cache, overrides. The per-secret options are in
# ./secrets.nix, the storage options in ./storage.nix, the templates in
# ../templates.nix. `password_file` (the spelling configurations already
# use) is the same option as `passwordFile`, without any warning.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  derived = import ./args.nix { inherit config lib pkgs utils; };
  inherit (derived) common;
in
{
  imports = [
    (lib.mkAliasOptionModule
      [
        "netsecrets"
        "client"
        "password_file"
      ]
      [
        "netsecrets"
        "client"
        "passwordFile"
      ]
    )
  ];

  options.netsecrets.client = {
    enable = lib.mkEnableOption "fetching secrets from a netsecrets server at boot";

    package = lib.mkPackageOption pkgs "netsecrets" { };

    server = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "10.0.0.1";
      description = "Address or host name of the netsecrets server (use an address for stage 1).";
    };

    port = lib.mkOption {
      type = common.port;
      default = common.defaultPort;
      example = 8081;
      description = ''Server port; `8081` and `"8081"` are both accepted.'';
    };

    fallbacks = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "10.0.0.2" ];
      description = "Servers tried in order, on the same port, when the primary does not answer.";
    };

    password = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = ''
        The shared password, literally. It is copied into the world-readable
        Nix store (a warning says so); prefer {option}`netsecrets.client.passwordFile`
        or {option}`netsecrets.client.enableInitrdPassword`.
      '';
    };

    passwordFile = lib.mkOption {
      type = lib.types.nullOr common.pathNotInStoreOrEmpty;
      default = null;
      example = "/run/agenix/netsecrets-password";
      description = ''
        A root-only file holding the shared password; takes priority over
        {option}`netsecrets.client.password`. With `enableInitrd` it is also
        appended to the initrd (boot.initrd.secrets), which needs a boot loader
        that supports initrd secrets (grub, systemd-boot). `""` means unset.
        `password_file` is the same option.
      '';
    };

    encryptionKey = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = ''
        AES-256-GCM key material, literally (must match the server's). It is
        copied into the world-readable Nix store (a warning says so); prefer
        {option}`netsecrets.client.encryptionKeyFile`.
      '';
    };

    encryptionKeyFile = lib.mkOption {
      type = lib.types.nullOr common.pathNotInStoreOrEmpty;
      default = null;
      example = "/run/secrets/enc-key";
      description = ''
        A root-only file holding the key material; takes priority over
        {option}`netsecrets.client.encryptionKey` (setting both warns). With
        `enableInitrd` it is also appended to the initrd (boot.initrd.secrets),
        which needs a boot loader that supports initrd secrets (grub,
        systemd-boot). `""` means unset.
      '';
    };

    insecure = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Talk to the server in plaintext even if a key is set.";
    };

    verbose = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Log progress (never values, passwords or keys).";
    };

    protocol = lib.mkOption {
      type = lib.types.nullOr (lib.types.enum [ 1 2 ]);
      default = null;
      description = ''
        Wire protocol (`--protocol`). 2 binds every answer to its request and
        secret name, so that someone on the path without the key cannot send
        back the request or an older answer; it needs a key. null: 2 when a
        key is set, else 1. Set 1 only for a server that knows nothing else.
      '';
    };

    timeout = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.positive;
      default = null;
      example = 120;
      description = ''
        Seconds each fetch keeps retrying (with backoff, over the server and
        its fallbacks) before it fails; null keeps the binary's default (30).
      '';
    };

    refreshInterval = lib.mkOption {
      type = lib.types.nullOr (lib.types.strMatching "[0-9]+ ?(us|ms|s|sec|m|min|h|hr|d|w)?");
      default = null;
      example = "15min";
      description = ''
        Fetch the secrets again this long after boot and after each refresh
        (a systemd time span; netsecrets-refresh.timer). A value that did not
        change leaves its file (and timestamps) alone; a changed one is written
        atomically and its restartUnits / reloadUnits are restarted /
        reloaded (and templates using it rendered again). null: every
        ${derived.defaultRefreshInterval} plus a random delay of up to ${derived.defaultRefreshDelay} when any secret or
        template has restartUnits or reloadUnits (they act only on a
        refresh), else only at boot.
      '';
    };

    refreshStartsUnits = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Each successful refresh also runs `systemctl start` on the
        {option}`netsecrets.client.secrets.<name>.requiredBy` units of the secret, so one that
        could not start at boot (secret missing) starts once the secret
        arrives. It also starts a unit an administrator stopped on purpose
        (e.g. a database stopped for an upgrade), hence off by default;
        without it, `systemctl start <unit>` fetches the secret again and
        starts the unit.
      '';
    };

    enableInitrd = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Also fetch the secrets in systemd stage 1, after the initrd network is
        online and before cryptsetup-pre.target, to /run/netsecrets/<name>
        (e.g. for a LUKS key file). Needs boot.initrd.systemd.enable and
        initrd networking. The key (and the password file, unless
        enableInitrdPassword) are appended to the initrd.
      '';
    };

    enableInitrdPassword = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Ask for the server password on /dev/console in stage 1. It is written
        to {option}`netsecrets.client.consolePasswordFile`
        (/run/netsecrets-password, root, 0400), where it stays after
        switch-root; both the stage-1 and the stage-2 fetches use it, and
        {option}`netsecrets.client.password` / `passwordFile` are ignored
        (a warning says so).
      '';
    };

    consolePasswordFile = lib.mkOption {
      type = lib.types.str;
      readOnly = true;
      # Defined by this module (below), so a definition elsewhere is an error.
      defaultText = lib.literalExpression ''"${common.consolePasswordFile}"'';
      description = ''
        Where the password typed at boot (enableInitrdPassword) is, for the
        rest of the boot: root-only, in /run (kept across switch-root, gone at
        shutdown). Services that need it can use this path, e.g. with
        LoadCredential=. It is not under /run/secrets: sops-nix replaces that
        path (a symlink) at every activation.
      '';
    };

    offlineCache = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = ''
          Keep a sealed copy of every fetched secret in
          /var/lib/netsecrets-cache (0700 root; it must be on persistent
          storage), encrypted with `systemd-creds --with-key=auto`: bound to
          this machine's TPM2 and host key, or to the host key alone when there
          is no TPM2. When no server can be reached at boot for
          {option}`netsecrets.client.offlineCache.after` seconds, each stage-2
          secret is written from its copy (a journal line gives its age) and
          the boot goes on. A server that answers but refuses this client
          never lets the cache be used; `Not found` deletes the copy.
          Off by default: it trades "no server, no secrets" for "a stolen
          machine that boots offline still has its secrets for up to maxAge"
          (docs/nixos.md, "When the server is down"). Stage 2 only: the
          stage-1 (initrd) fetch does not use the cache, because the host key
          and the cache live on the root file system, which is not mounted yet.
          Set {option}`netsecrets.client.refreshInterval` too, so that cached
          values are replaced once a server answers.
        '';
      };
      after = lib.mkOption {
        type = lib.types.ints.between 1 86400;
        default = 10;
        description = ''
          Seconds without reaching any server (refused, no route, no answer)
          before the cached copies are used. Must be below the fetch
          {option}`netsecrets.client.timeout` (30 s when null).
        '';
      };
      maxAge = lib.mkOption {
        type = lib.types.ints.between 60 316224000;
        default = 604800;
        description = ''
          Seconds a cached copy stays usable after it was sealed (a week by
          default); an older one is deleted, never used. An unchanged value is
          sealed again once its copy is older than a quarter of this, so after
          the last contact with a server the copies last 3/4 to all of maxAge.
        '';
      };
    };

    systemdOverrides = lib.mkOption {
      type = lib.types.attrsOf lib.types.anything;
      default = { };
      description = ''
        Extra keys for the serviceConfig of every stage-2 netsecrets-secret-<name>.service
        and of netsecrets-refresh.service (which runs the same fetches again); a key given
        here replaces the module's value for that key.
      '';
    };

    systemdInitrdOverrides = lib.mkOption {
      type = lib.types.attrsOf lib.types.anything;
      default = { };
      description = ''
        Extra keys for the serviceConfig of every stage-1 netsecrets-secret-<name>.service;
        a key given here replaces the module's value for that key.
      '';
    };
  };

  config.netsecrets.client.consolePasswordFile = common.consolePasswordFile;
}
