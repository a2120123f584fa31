# netsecrets.server: the netsecrets server (`netsecrets receive`) as the
# hardened netsecrets-daemon.service.
#
# Secret values, the password and the encryption key reach the daemon only as
# files handed over with systemd's LoadCredential= (the daemon reads them from
# %d, its credentials directory). Neither its command line, its environment
# nor any file this module writes into the Nix store carries them, except the
# literal `password`/`encryptionKey` options (kept because existing
# configurations use them), which are written to the store on purpose and
# warned about. The options are in ./options.nix.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  cfg = config.netsecrets.server;
  common = import ../common.nix { inherit lib; };
  inherit (common) nonEmpty;

  # The file each served secret is loaded from: secretFiles.<name>, else
  # <secretsDir>/<name> (sops-nix's default layout when secretsDir = /run/secrets).
  secretFile = name: cfg.secretFiles.${name} or "${cfg.secretsDir}/${name}";

  # A file option that may also be a list of files (overlap rotation: all are
  # accepted at once); "" and null give no file.
  fileList = v: if builtins.isList v then v else lib.optional (nonEmpty v) v;
  firstOrNull = l: if l == [ ] then null else lib.head l;
  pwFiles = fileList cfg.passwordFile;
  keyFiles = fileList cfg.encryptionKeyFile;
  # Credential ids of the 2nd, 3rd... file of a list: `<id>.1`, `<id>.2`...
  moreCreds =
    id: files:
    lib.imap1 (i: f: {
      id = "${id}.${toString i}";
      file = f;
    }) (lib.drop 1 files);

  # Password: password_file wins; a literal password is written to the store (warned).
  passwordFile = common.fileOrLiteral pkgs "netsecrets-server-password" (firstOrNull pwFiles) cfg.password;
  morePasswords = moreCreds common.passwordCredential pwFiles;

  # Key: encryptionKeyFile wins over encryptionKey; a literal key is
  # written to the store (warned). `insecure` drops both.
  keyFile =
    if cfg.insecure then
      null
    else
      common.fileOrLiteral pkgs "netsecrets-server-encryption-key" (firstOrNull keyFiles) cfg.encryptionKey;
  moreKeys = if cfg.insecure then [ ] else moreCreds common.keyCredential keyFiles;

  privilegedPort = cfg.port < 1024;

  # Named clients (netsecrets.server.clients.<name>): each its own password
  # file and optional key file, handed over with LoadCredential= as
  # netsecrets.client.<name>.password / .key; the clients file names only
  # those credential ids (resolved in $CREDENTIALS_DIRECTORY), so it holds no
  # secret and lives in the store, at the stable path /etc/netsecrets/clients
  # (a reload after a switch reads the new one).
  clientNames = lib.attrNames cfg.clients;
  hasClients = cfg.clients != { };
  clientPwCred = name: "netsecrets.client.${name}.password";
  clientKeyCred = name: "netsecrets.client.${name}.key";
  # Each client's password and key files as lists (one file, or several while
  # rotating), with their credential ids: the first keeps a single file's id.
  clientCreds =
    name:
    let
      c = cfg.clients.${name};
      withIds =
        id: files:
        lib.imap0 (i: f: {
          id = if i == 0 then id else "${id}.${toString i}";
          file = f;
        }) files;
    in
    {
      passwords = withIds (clientPwCred name) (lib.toList c.passwordFile);
      keys = withIds (clientKeyCred name) (
        if c.encryptionKeyFile == null then [ ] else lib.toList c.encryptionKeyFile
      );
    };
  clientsText = lib.concatMapStrings (
    name:
    let
      c = cfg.clients.${name};
    in
    lib.concatStringsSep " " (
      [ name ]
      ++ map (x: "password=${x.id}") (clientCreds name).passwords
      ++ map (x: "key=${x.id}") (clientCreds name).keys
      ++ lib.optional (c.authorizedIps != [ ]) "from=${lib.concatStringsSep "," c.authorizedIps}"
      ++ [ "secrets=${if lib.elem "*" c.secrets then "*" else lib.concatStringsSep "," c.secrets}" ]
    )
    + "\n"
  ) clientNames;
  clientsPath = "/etc/netsecrets/clients";

  # Networks the kernel (IPAddressAllow=) and the daemon (--authorized-ips)
  # let connect: authorized_ips plus every client's networks; with no
  # authorized_ips, no shared password and every client limited to its
  # networks, just the clients' networks; otherwise any address.
  clientNets = lib.concatMap (n: cfg.clients.${n}.authorizedIps) clientNames;
  allClientsLimited = lib.all (n: cfg.clients.${n}.authorizedIps != [ ]) clientNames;
  allowedNets =
    if cfg.authorizedIps != [ ] then
      lib.unique (cfg.authorizedIps ++ clientNets)
    else if hasClients && passwordFile == null && allClientsLimited then
      lib.unique clientNets
    else
      [ ];

  # The files the daemon is configured from that live outside the store (a
  # literal password or key is a store file and never changes).
  watchedFiles =
    map secretFile cfg.secrets
    ++ pwFiles
    ++ lib.optionals (!cfg.insecure) keyFiles
    ++ lib.concatMap (
      name: map (x: x.file) ((clientCreds name).passwords ++ (clientCreds name).keys)
    ) clientNames;

  execStart = common.execLine utils (
    [
      (lib.getExe cfg.package)
      "receive"
      "--server"
      cfg.ip
      "--port"
      (toString cfg.port)
    ]
    ++ lib.optionals (passwordFile != null) [
      "--password-file"
      { specifier = "%d/${common.passwordCredential}"; }
    ]
    ++ lib.concatMap (x: [
      "--password-file"
      { specifier = "%d/${x.id}"; }
    ]) morePasswords
    ++ lib.optionals hasClients [
      "--clients-file"
      clientsPath
    ]
    ++ lib.concatMap (name: [
      "--secret-file"
      { specifier = "${name}=%d/${name}"; }
    ]) cfg.secrets
    ++ lib.optionals (allowedNets != [ ]) [
      "--authorized-ips"
      (lib.concatStringsSep "," allowedNets)
    ]
    ++ lib.optionals (keyFile != null) [
      "--encryption-key-file"
      { specifier = "%d/${common.keyCredential}"; }
    ]
    ++ lib.concatMap (x: [
      "--encryption-key-file"
      { specifier = "%d/${x.id}"; }
    ]) moreKeys
    ++ lib.optionals (cfg.maxFailures != null) [
      "--max-failures"
      (toString cfg.maxFailures)
    ]
    ++ lib.optionals (cfg.maxPerIp != null) [
      "--max-per-ip"
      (toString cfg.maxPerIp)
    ]
    ++ lib.optionals (cfg.maxConnections != null) [
      "--max-connections"
      (toString cfg.maxConnections)
    ]
    ++ lib.optionals (cfg.timeout != null) [
      "--timeout"
      (toString cfg.timeout)
    ]
    ++ lib.optional cfg.insecure "--insecure"
    ++ lib.optional cfg.verbose "--verbose"
    ++ [
      "--min-protocol"
      (toString cfg.minProtocol)
    ]
  );

  # What systemd-analyze security rewards, as far as a TCP server that only
  # reads its credentials allows. See docs/nixos.md for the measured score.
  hardening =
    common.sandbox
    // {
      User = "netsecrets";
      Group = "netsecrets";
      # Bind below 1024 needs exactly one capability; nothing else needs any.
      CapabilityBoundingSet = if privilegedPort then [ "CAP_NET_BIND_SERVICE" ] else [ "" ];
      AmbientCapabilities = if privilegedPort then [ "CAP_NET_BIND_SERVICE" ] else [ "" ];
      DevicePolicy = "closed";
      PrivateUsers = !privilegedPort;
      RemoveIPC = true;
      SystemCallErrorNumber = "EPERM";
      KeyringMode = "private";
      # READY=1 comes from the daemon itself once it listens (Type=notify).
      NotifyAccess = "main";
      # ... as a datagram on the AF_UNIX $NOTIFY_SOCKET: without AF_UNIX the
      # socket() call fails (EAFNOSUPPORT), systemd never hears READY=1 and
      # kills the daemon when the start times out (found by the stage-2 boot
      # test, initrd/boot-test/stage2.py scenario 6).
      RestrictAddressFamilies = common.sandbox.RestrictAddressFamilies ++ [ "AF_UNIX" ];
    }
  # Only the authorized networks may talk to the daemon at all (kernel-side,
  # before the daemon's own check). With no list every address is allowed,
  # as the daemon itself does.
  // lib.optionalAttrs (allowedNets != [ ]) {
    IPAddressDeny = "any";
    IPAddressAllow = allowedNets;
  };
in
{
  imports = [ ./options.nix ];

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = passwordFile != null || hasClients;
        message = "netsecrets.server: set netsecrets.server.password_file (or netsecrets.server.password, or netsecrets.server.clients).";
      }
      {
        assertion = cfg.secrets != [ ];
        message = "netsecrets.server: netsecrets.server.secrets is empty; list the names of the secrets to serve.";
      }
      {
        assertion =
          !(lib.elem common.passwordCredential cfg.secrets)
          && !(lib.elem common.keyCredential cfg.secrets)
          && !(lib.any (lib.hasPrefix "netsecrets.client.") cfg.secrets);
        message = "netsecrets.server.secrets: the names ${common.passwordCredential}, ${common.keyCredential} and netsecrets.client.* are reserved; rename that secret.";
      }
    ]
    ++ map (name: {
      assertion = lib.elem name cfg.secrets;
      message = "netsecrets.server.secretFiles.${name} is set, but \"${name}\" is not in netsecrets.server.secrets; add it there.";
    }) (lib.attrNames cfg.secretFiles)
    ++ lib.concatMap (
      name:
      let
        c = cfg.clients.${name};
      in
      [
        {
          assertion = builtins.match "[A-Za-z0-9._-]{1,64}" name != null && name != "default";
          message = "netsecrets.server.clients.\"${name}\": use 1 to 64 letters, digits, '.', '_' or '-' (and not \"default\", the shared password's client).";
        }
        {
          assertion = c.secrets != [ ];
          message = "netsecrets.server.clients.${name}.secrets is empty; list the secrets it may read (or [ \"*\" ]).";
        }
      ]
      ++ map (s: {
        assertion = s == "*" || lib.elem s cfg.secrets;
        message = "netsecrets.server.clients.${name}.secrets names \"${s}\", which is not in netsecrets.server.secrets; add it there or remove it.";
      }) c.secrets
    ) clientNames;

    warnings =
      lib.optional (nonEmpty cfg.password && pwFiles == [ ]) (
        common.literalInStore "netsecrets.server.password" "password"
          "Use netsecrets.server.password_file with a root-only file instead."
      )
      ++ lib.optional (nonEmpty cfg.password && (pwFiles != [ ])) (
        common.fileWins "netsecrets.server.password" "netsecrets.server.password_file"
      )
      ++ lib.optional (!cfg.insecure && nonEmpty cfg.encryptionKey && (keyFiles != [ ])) (
        common.fileWins "netsecrets.server.encryptionKey" "netsecrets.server.encryptionKeyFile"
      )
      ++ lib.optional (!cfg.insecure && nonEmpty cfg.encryptionKey && keyFiles == [ ]) (
        common.literalInStore "netsecrets.server.encryptionKey" "key"
          "Use netsecrets.server.encryptionKeyFile with a root-only file instead."
      )
      ++ lib.optional (
        keyFile == null
        && !cfg.insecure
        && (passwordFile != null || lib.any (n: cfg.clients.${n}.encryptionKeyFile == null) clientNames)
      ) (common.noKey "netsecrets.server");

    users.users.netsecrets = {
      isSystemUser = true;
      group = "netsecrets";
      description = "netsecrets server";
    };
    users.groups.netsecrets = { };

    # Non-secret settings only, for operators and tools; the daemon itself is
    # configured by its command line.
    environment.etc."netsecrets/config.json".text = builtins.toJSON {
      inherit (cfg)
        ip
        port
        secrets
        insecure
        verbose
        ;
      authorized_ips = cfg.authorizedIps;
      # Encrypted for everyone who can log in: the shared password (when
      # set) with the server's key, each named client with its own key or
      # the server's. Per client below.
      encryption =
        (passwordFile != null || hasClients)
        && (passwordFile == null || keyFile != null)
        && lib.all (n: cfg.clients.${n}.encryptionKeyFile != null || keyFile != null) clientNames;
      clients = lib.genAttrs clientNames (n: {
        encryption = cfg.clients.${n}.encryptionKeyFile != null || keyFile != null;
        authorized_ips = cfg.clients.${n}.authorizedIps;
        inherit (cfg.clients.${n}) secrets;
      });
      password_file = if pwFiles != [ ] then cfg.passwordFile else null;
      encryption_key_file = if keyFiles != [ ] then cfg.encryptionKeyFile else null;
      secret_files = lib.genAttrs cfg.secrets secretFile;
    };

    # Names credential ids only (no secret): safe in the store.
    environment.etc."netsecrets/clients" = lib.mkIf hasClients { text = clientsText; };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ cfg.port ];

    systemd.services.netsecrets-daemon = {
      description = "netsecrets server";
      wantedBy = [ "multi-user.target" ];
      # A switch that changes only the clients file (networks, secrets) reloads.
      reloadTriggers = lib.optional hasClients config.environment.etc."netsecrets/clients".source;
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      serviceConfig =
        hardening
        // {
          # READY=1 once listening (src/sys/notify.rs): units ordered after
          # netsecrets-daemon find it accepting connections.
          Type = "notify";
          ExecStart = execStart;
          # SIGHUP: the daemon re-reads every file (password, key, secrets,
          # clients); a bad one keeps the previous set and logs why.
          ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
          Restart = "on-failure";
          RestartSec = "5s";
          # Read by systemd as root, handed over as %d/<name> readable by the
          # service only: the user needs no access to the source files.
          LoadCredential =
            lib.optional (passwordFile != null) (common.loadCredential common.passwordCredential passwordFile)
            ++ map (x: common.loadCredential x.id x.file) (morePasswords ++ moreKeys)
            ++ map (name: common.loadCredential name (secretFile name)) cfg.secrets
            ++ lib.optional (keyFile != null) (common.loadCredential common.keyCredential keyFile)
            ++ lib.concatMap (
              name:
              map (x: common.loadCredential x.id x.file) (
                (clientCreds name).passwords ++ (clientCreds name).keys
              )
            ) clientNames;
        }
        // cfg.systemdOverrides;
    };

    # Rotation: when a source file changes (sops-nix or agenix switching
    # generations, an edited file), netsecrets-daemon is restarted so that it
    # serves the new values. A restart, not a reload: the daemon reads its
    # files through LoadCredential=, whose copies systemd 255 makes only when
    # the service starts (systemd PR #25160 tried refreshing them on reload and
    # was reverted; a later release adds it, PR #40093). Clients retry with
    # backoff, so a connection cut by the restart costs them one retry.
    systemd.paths.netsecrets-daemon-sources = {
      description = "netsecrets: watch the server's secret, password and key files";
      wantedBy = [ "multi-user.target" ];
      pathConfig = {
        PathChanged = watchedFiles;
        Unit = "netsecrets-daemon-sources.service";
      };
    };
    systemd.services.netsecrets-daemon-sources = {
      description = "netsecrets: serve the changed secret files (restart netsecrets-daemon)";
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${config.systemd.package}/bin/systemctl try-restart netsecrets-daemon.service";
      };
    };
  };
}
