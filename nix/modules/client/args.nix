# What the files of the client module share: the values derived from
# netsecrets.client (the secret names, the password and key files, where
# stage 1 gets them) and the builders of the argument lists of
# `netsecrets send`, `ask-password` and `credentials`, plus the sandbox of
# the fetch units. A plain function, not a module:
#
#   derived = import ./args.nix { inherit config lib pkgs utils; };
{
  config,
  lib,
  pkgs,
  utils,
}:
let
  cfg = config.netsecrets.client;
  common = import ../common.nix { inherit lib; };

  # The fetched secrets, in order: requestSecrets, then those declared only
  # under netsecrets.client.secrets (./secrets.nix).
  names = cfg.secretNames;
  secretOf = name: config.netsecrets.client.secrets.${name};
  exe = lib.getExe cfg.package;

  # Only secrets written to a file have a fetch unit (writeFile = false:
  # credential only, fetched when a unit loads it).
  fileNames = lib.filter (n: (secretOf n).writeFile) names;
  # initrdOnly secrets are fetched in stage 1 only (./storage.nix).
  stage2Names = lib.filter (n: !(secretOf n).initrdOnly) fileNames;
  credNames = lib.filter (n: (secretOf n).credential) names;

  # Stage-2 password: the one typed in stage 1, else passwordFile, else the
  # literal password written to the store (warned).
  passwordFile =
    if cfg.enableInitrdPassword then
      common.consolePasswordFile
    else
      common.fileOrLiteral pkgs "netsecrets-client-password" cfg.passwordFile cfg.password;

  # Key: encryptionKeyFile wins; a literal key is written to the store
  # (warned); `insecure` drops both.
  keyFile =
    if cfg.insecure then
      null
    else
      common.fileOrLiteral pkgs "netsecrets-client-encryption-key" cfg.encryptionKeyFile cfg.encryptionKey;

  # Stage 1 gets the key and (without the prompt) the password through
  # boot.initrd.secrets, i.e. appended to the initrd, not in the store.
  initrdPassword =
    if cfg.enableInitrdPassword then common.consolePasswordFile else common.initrdPasswordFile;
  #
  # A file outside the store (encryptionKeyFile, passwordFile) can only be
  # appended by a boot loader that supports initrd secrets; without one it is
  # left out here and an assertion (./checks.nix) names the option and what
  # to do instead (nixpkgs' own message would not).
  keyIsFile = keyFile != null && common.isFile cfg.encryptionKeyFile;
  passwordIsFile = !cfg.enableInitrdPassword && common.isFile cfg.passwordFile;
  canAppend = config.boot.loader.supportsInitrdSecrets;
  initrdSecrets =
    lib.optionalAttrs (keyFile != null && (canAppend || !keyIsFile)) {
      ${common.initrdKeyFile} = keyFile;
    }
    // lib.optionalAttrs (!cfg.enableInitrdPassword && passwordFile != null && (canAppend || !passwordIsFile)) {
      ${common.initrdPasswordFile} = passwordFile;
    };

  # Where the server is, for `send` and the console prompt's check.
  serverArgs = [
    "--server"
    # null fails an assertion; "" keeps the unit text evaluable so that the
    # assertion's message, not an escaping error, is shown.
    (if cfg.server == null then "" else cfg.server)
    "--port"
    (toString cfg.port)
  ]
  ++ lib.optionals (cfg.fallbacks != [ ]) [
    "--fallbacks"
    (lib.concatStringsSep "," cfg.fallbacks)
  ];

  # Protocol 2 binds each answer to its request (a path attacker cannot send
  # back the request or an older answer); it needs a key. null: 2 with a key.
  protocolArgs = [
    "--protocol"
    (toString (if cfg.protocol != null then cfg.protocol else if keyFile != null then 2 else 1))
  ];

  # How `send` and `credentials` reach the server and prove who they are.
  # `password` and `key` are a path or { specifier = "%d/..."; } (a credential).
  fetchArgs =
    password: key:
    serverArgs
    ++ [
      "--password-file"
      password
    ]
    ++ lib.optionals (key != null) [
      "--encryption-key-file"
      key
    ]
    ++ lib.optional cfg.insecure "--insecure"
    ++ lib.optionals (cfg.timeout != null) [
      "--timeout"
      (toString cfg.timeout)
    ]
    ++ lib.optional cfg.verbose "--verbose"
    ++ protocolArgs;

  # `netsecrets send` for one secret. `password` and `key` are a path or
  # { specifier = "%d/..."; } (a credential); see common.execLine.
  sendLine =
    {
      name,
      output,
      password,
      key,
      owner ? null,
      group ? null,
      mode,
      extra ? [ ],
    }:
    common.execLine utils (
      [
        exe
        "send"
      ]
      ++ fetchArgs password key
      ++ [
        "--request_secrets"
        name
        "--file-output"
        output
      ]
      ++ lib.optionals (owner != null) [
        "--owner"
        owner
      ]
      ++ lib.optionals (group != null) [
        "--group"
        group
      ]
      ++ [
        "--mode"
        mode
      ]
      ++ extra
    );

  # ---- offline cache (offlineCache) ---------------------------------------
  # Stage 2 only: each fetched value is also sealed with systemd-creds into
  # /var/lib/netsecrets-cache, and used when no server can be reached at boot.
  # Stage 1 gets none of these flags: the host key and the cache are on the
  # root file system, which the initrd has not mounted yet.
  offline = cfg.offlineCache;
  offlineCacheDir = "/var/lib/netsecrets-cache";
  offlineArgs = lib.optionals offline.enable [
    "--offline-cache"
    offlineCacheDir
    "--offline-after"
    (toString offline.after)
    "--offline-max-age"
    (toString offline.maxAge)
    "--systemd-creds"
    "${config.systemd.package}/bin/systemd-creds"
  ];

  # Stage 2 fetch units run as root (they chown each file to its owner) but
  # see a read-only system except /var/lib/netsecrets.
  hardening =
    common.chownSandbox
    // {
      ReadWritePaths = [ common.stateDir ] ++ lib.optional offline.enable offlineCacheDir;
    }
    # systemd-creds (run by `send`) seals with the TPM2 when there is one: the
    # fetch units then see /dev/tpmrm0 and no other device.
    // lib.optionalAttrs offline.enable {
      PrivateDevices = false;
      DevicePolicy = "closed";
      DeviceAllow = [ "/dev/tpmrm0 rw" ];
    };
  # systemctl reaches PID 1 over AF_UNIX: allowed only where it is run.
  withUnixSockets = sc: sc // { RestrictAddressFamilies = sc.RestrictAddressFamilies ++ [ "AF_UNIX" ]; };

  systemctl = systemd: "${systemd}/bin/systemctl";
  # One `systemctl is-active --quiet U` per fetch unit, each its own
  # ExecStart= of the oneshot: with several units in one call, is-active
  # succeeds when ANY of them is active (systemctl(1)), so one failed fetch
  # next to a good one went unnoticed (found by the boot test's scenario 7).
  allFetched =
    systemd: units:
    map (
      u:
      common.execLine utils [
        (systemctl systemd)
        "is-active"
        "--quiet"
        u
      ]
    ) units;
  allFetchedOrTrue = systemd: units: if units == [ ] then [ "${pkgs.coreutils}/bin/true" ] else allFetched systemd units;

  # The password and key as LoadCredential= entries of the stage-2 units.
  credentials =
    lib.optional (passwordFile != null) (common.loadCredential common.passwordCredential passwordFile)
    ++ lib.optional (keyFile != null) (common.loadCredential common.keyCredential keyFile);

  # The change actions of one secret for `netsecrets send` (stage 2).
  changeArgs =
    systemd: name: withStart:
    let
      s = secretOf name;
      flag = f: us: lib.concatMap (u: [ f (common.unitName u) ]) us;
      # --start-unit only with refreshStartsUnits: a refresh must not start a
      # unit an administrator stopped on purpose.
      start = withStart && cfg.refreshStartsUnits;
      any = s.restartUnits != [ ] || s.reloadUnits != [ ] || (start && s.requiredBy != [ ]);
    in
    lib.optionals any (
      flag "--restart-unit" s.restartUnits
      ++ flag "--reload-unit" s.reloadUnits
      ++ lib.optionals start (flag "--start-unit" s.requiredBy)
      ++ [
        "--systemctl"
        (systemctl systemd)
      ]
    );

  # The stage-2 `send` of one secret to its file, with the password and key
  # from the unit's credentials; `withStart` as in changeArgs (the fetch unit
  # and the refresh timer's service differ only there).
  stage2Send =
    name: withStart:
    sendLine {
      inherit name;
      output = (secretOf name).file;
      password = {
        specifier = "%d/${common.passwordCredential}";
      };
      key = if keyFile != null then { specifier = "%d/${common.keyCredential}"; } else null;
      inherit (secretOf name) owner group mode;
      extra = changeArgs config.systemd.package name withStart ++ offlineArgs;
    };

  # The credentials sockets (./credentials.nix). Stage 1 has its own path:
  # /run survives switch-root, and the two sockets are different units with
  # different --allow lists.
  credentialSocket = "/run/netsecrets-credentials.sock";
  initrdCredentialSocket = "/run/netsecrets-credentials-initrd.sock";
  socketOf = stage: if stage == "initrd" then initrdCredentialSocket else credentialSocket;

  # `netsecrets credentials --allow NAME=UNIT,...` for the units of `attr`.
  credentialsLine =
    attr: password: key:
    common.execLine utils (
      [
        exe
        "credentials"
      ]
      ++ fetchArgs password key
      ++ lib.concatMap (
        n:
        lib.optionals ((secretOf n).${attr} != [ ]) [
          "--allow"
          "${n}=${lib.concatMapStringsSep "," common.unitName (secretOf n).${attr}}"
        ]
      ) credNames
    );
  # The units of the credentials socket consumers require.
  credentialsUnits = [ "netsecrets-credentials.socket" ];
  hasCredConsumers = attr: lib.any (n: (secretOf n).${attr} != [ ]) credNames;

  # Change actions (restartUnits / reloadUnits of a secret or a template)
  # act only when a value changes, i.e. when a refresh fetched a new one:
  # with any of them set and no refreshInterval, the refresh runs every
  # defaultRefreshInterval with a random delay, so that the clients of one
  # server do not all ask at once.
  defaultRefreshInterval = "1h";
  defaultRefreshDelay = "10min";
  hasChangeActions =
    lib.any (n: (secretOf n).restartUnits != [ ] || (secretOf n).reloadUnits != [ ]) fileNames
    || lib.any (t: t.restartUnits != [ ] || t.reloadUnits != [ ]) (lib.attrValues (cfg.templates or { }));
  refreshInterval =
    if cfg.refreshInterval != null then
      cfg.refreshInterval
    else if hasChangeActions then
      defaultRefreshInterval
    else
      null;

  # The typed password is checked against the server (by fetching the first
  # requested secret) when stage 1 has a network: each typed password is sent
  # once, a rejected one is asked for again at once, so a typo costs one
  # failure on the server, never a lockout (--tries stays below the server's
  # default --max-failures of 5). Without an initrd network it cannot be
  # checked there, and the prompt only stores it.
  initrdNetwork = config.boot.initrd.network.enable || config.boot.initrd.systemd.network.enable;
  verifyPassword = cfg.enableInitrdPassword && initrdNetwork && names != [ ];
  # What a unit in `requiredBy` (stage 2) or `initrdRequiredBy` gets.
  #
  # Stage 2: Wants= and After= the fetch unit, Requires= and After= its gate
  # netsecrets-ready-<name>.service (./stage2.nix), never Requires= on the fetch
  # unit itself. systemd.unit(5): a unit with Requires= (and likewise
  # Requisite=, BindsTo=, PartOf=) on X is stopped or restarted whenever X is
  # explicitly stopped or restarted, so `systemctl restart
  # 'netsecrets-secret-*'` restarted every consumer, changed value or not.
  # Wants= propagates neither, and the gate keeps the other half of the
  # contract: it runs after the fetch and fails unless the fetch unit is
  # active, so a consumer still never starts when its secret was not fetched
  # in this boot (an older copy in /var/lib/netsecrets does not count, which
  # a ConditionPathExists= on the file could not tell). A change of value
  # reaches a consumer only through restartUnits / reloadUnits.
  # Stage 1 keeps Requires=: nothing restarts units by hand in the initrd.
  consumerConfig =
    stage: name:
    let
      fetch = lib.optional (secretOf name).writeFile (common.fetchUnit name);
      ready = lib.optional (secretOf name).writeFile (common.readyUnit name);
      creds = lib.optionals (secretOf name).credential credentialsUnits;
      stage2 = stage == "stage2";
    in
    {
      requires = (if stage2 then ready else fetch) ++ creds;
      wants = lib.optionals stage2 fetch;
      after = fetch ++ lib.optionals stage2 ready ++ creds;
      serviceConfig = lib.optionalAttrs (secretOf name).credential {
        LoadCredential = [ "${name}:${socketOf stage}" ];
      };
    };
  consumers =
    attr: stage:
    lib.mkMerge (
      map (
        name: lib.genAttrs (map common.serviceName (secretOf name).${attr}) (_: consumerConfig stage name)
      ) names
    );

  # Ordering shared by every stage-1 unit (no default dependencies: they run
  # before sysinit/cryptsetup; they stop for shutdown).
  initrdBase = {
    unitConfig.DefaultDependencies = false;
    conflicts = [ "shutdown.target" ];
  };

  initrdPromptUnits = lib.optional cfg.enableInitrdPassword "netsecrets-ask-password.service";


in
{
  inherit
    cfg
    common
    names
    secretOf
    exe
    fileNames
    stage2Names
    credNames
    passwordFile
    keyFile
    initrdPassword
    keyIsFile
    passwordIsFile
    canAppend
    initrdSecrets
    serverArgs
    protocolArgs
    sendLine
    offline
    offlineCacheDir
    hardening
    withUnixSockets
    systemctl
    allFetchedOrTrue
    credentials
    changeArgs
    stage2Send
    socketOf
    credentialsLine
    hasCredConsumers
    defaultRefreshInterval
    defaultRefreshDelay
    refreshInterval
    initrdNetwork
    verifyPassword
    credentialsUnits
    consumers
    initrdBase
    initrdPromptUnits
    ;
  fetchUnits = map common.fetchUnit fileNames;
  stage2FetchUnits = map common.fetchUnit stage2Names;
}
