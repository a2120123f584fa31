# netsecrets.client: fetch secrets from a netsecrets server at boot, in
# systemd stage 1 (optional) and in stage 2, and expose their paths as
# config.secrets.<name>.file (like sops-nix's config.sops.secrets.<name>.path).
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
# and an assertion below says so for the file options.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  cfg = config.netsecrets.client;
  common = import ./common.nix { inherit lib; };
  inherit (common) nonEmpty;

  names = cfg.request_secrets;
  exe = lib.getExe cfg.package;

  # Unit names allow [A-Za-z0-9:_.-] and "\"; "@" would make a template
  # instance and "+" is invalid, so those two are \x-escaped as systemd-escape does.
  unitBase = name: "netsecrets-secret-${lib.replaceStrings [ "@" "+" ] [ "\\x40" "\\x2b" ] name}";
  unitOf = name: "${unitBase name}.service";
  # The gate consumers Require (readyUnit below); the same escaping.
  readyBase = name: "netsecrets-ready-${lib.replaceStrings [ "@" "+" ] [ "\\x40" "\\x2b" ] name}";
  readyOf = name: "${readyBase name}.service";
  # Only secrets written to a file have a fetch unit (writeFile = false:
  # credential only, fetched when a unit loads it).
  fetchUnits = map unitOf fileNames;

  # Stage-2 password: the one typed in stage 1, else passwordFile, else the
  # literal password written to the store (warned).
  passwordFile =
    if cfg.enableInitrdPassword then
      common.consolePasswordFile
    else
      common.fileOrLiteral pkgs "netsecrets-client-password" cfg.passwordFile cfg.password;

  # Key: encryptionKeyFile wins (SPEC §2); a literal key is written to the
  # store (warned); `insecure` drops both.
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
  # left out here and the assertion `initrdFileAssertions` names the option
  # and what to do instead (nixpkgs' own message would not).
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

  noAppend = "its boot loader cannot append secrets to the initrd (boot.loader.supportsInitrdSecrets is false: no boot loader, or one without initrd secrets)";
  initrdFileAssertions = lib.optionals (cfg.enableInitrd || verifyPassword) [
    {
      assertion = canAppend || !keyIsFile;
      message = ''
        netsecrets.client.encryptionKeyFile cannot reach stage 1 (netsecrets.client.enableInitrd, or
        enableInitrdPassword checking the typed password against the server) on
        this machine: ${noAppend}. Use a boot loader that appends initrd secrets (boot.loader.grub
        or boot.loader.systemd-boot), or set netsecrets.client.encryptionKey instead (it is then
        copied into the world-readable Nix store and the initrd), or set netsecrets.client.enableInitrd = false.
      '';
    }
    {
      assertion = canAppend || !passwordIsFile;
      message = ''
        netsecrets.client.passwordFile cannot reach stage 1 (netsecrets.client.enableInitrd) on
        this machine: ${noAppend}. Set netsecrets.client.enableInitrdPassword = true to type the
        password on the console at boot instead, or use a boot loader that appends initrd secrets
        (boot.loader.grub or boot.loader.systemd-boot).
      '';
    }
  ];

  # Where the server is, for `send` and the console prompt's check.
  serverArgs = [
    "--server"
    # null fails an assertion (below); "" keeps the unit text evaluable
    # so that the assertion's message, not an escaping error, is shown.
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

  # Stage 2 fetch units run as root (they chown each file to its owner) but
  # see a read-only system except /var/lib/netsecrets. fchown is in @chown,
  # which ~@privileged removes: without it back the unit dies of SIGSYS
  # (found by the boot test's scenario 6).
  hardening = common.sandbox // {
    SystemCallFilter = common.sandbox.SystemCallFilter ++ [ "@chown" ];
    CapabilityBoundingSet = [
      "CAP_CHOWN"
      "CAP_FOWNER"
      "CAP_DAC_OVERRIDE"
    ];
    ReadWritePaths = [ common.stateDir ] ++ lib.optional offline.enable offlineCacheDir;
  }
  # systemd-creds (run by `send`) seals with the TPM2 when there is one: the
  # fetch units then see /dev/tpmrm0 and no other device.
  // lib.optionalAttrs offline.enable {
    PrivateDevices = false;
    DevicePolicy = "closed";
    DeviceAllow = [ "/dev/tpmrm0 rw" ];
  };

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


  # netsecrets-client.service wants every fetch unit and runs after them,
  # then fails unless each of them is active, i.e. every secret arrived. A
  # fetch that fails leaves the others alone (Wants=, not Requires=), and
  # `systemctl start netsecrets-client` retries just the failed ones.
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

  credentials =
    lib.optional (passwordFile != null) (common.loadCredential common.passwordCredential passwordFile)
    ++ lib.optional (keyFile != null) (common.loadCredential common.keyCredential keyFile);

  # ---- services that use a secret (issue 14) ------------------------------
  # secrets.<name>.requiredBy: those units wait for the secret's fetch unit
  # and are never started without it (not at all when it fails); see
  # consumerConfig for the exact dependencies; with credential = true also LoadCredential=<name>:<credentialSocket>,
  # served by `netsecrets credentials` to the listed units only. The same in
  # stage 1 with initrdRequiredBy. restartUnits / reloadUnits: `send` runs
  # systemctl --no-block try-restart / try-reload-or-restart when the value
  # was written (created or changed; an unchanged value is not rewritten).
  S = name: config.secrets.${name};
  serviceName = u: lib.removeSuffix ".service" u;
  unitName = u: if lib.hasInfix "." u then u else "${u}.service";
  fileNames = lib.filter (n: (S n).writeFile) names;
  # initrdOnly secrets are fetched in stage 1 only (client-storage.nix).
  stage2Names = lib.filter (n: !(S n).initrdOnly) fileNames;
  stage2FetchUnits = map unitOf stage2Names;
  credNames = lib.filter (n: (S n).credential) names;
  # Stage 1 has its own path: /run survives switch-root, and the two sockets
  # are different units with different --allow lists.
  credentialSocket = "/run/netsecrets-credentials.sock";
  initrdCredentialSocket = "/run/netsecrets-credentials-initrd.sock";
  socketOf = stage: if stage == "initrd" then initrdCredentialSocket else credentialSocket;
  credentialsUnits = [
    "netsecrets-credentials.socket"
  ];

  # The change actions of one secret for `netsecrets send` (stage 2).
  changeArgs =
    systemd: name: withStart:
    let
      s = S name;
      flag = f: us: lib.concatMap (u: [ f (unitName u) ]) us;
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
  # systemctl reaches PID 1 over AF_UNIX: allowed only where it is run.
  withUnixSockets = sc: sc // { RestrictAddressFamilies = sc.RestrictAddressFamilies ++ [ "AF_UNIX" ]; };

  # What a unit in `requiredBy` (stage 2) or `initrdRequiredBy` gets.
  #
  # Stage 2: Wants= and After= the fetch unit, Requires= and After= its gate
  # netsecrets-ready-<name>.service (below), never Requires= on the fetch
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
      fetch = lib.optional (S name).writeFile (unitOf name);
      ready = lib.optional (S name).writeFile (readyOf name);
      creds = lib.optionals (S name).credential credentialsUnits;
      stage2 = stage == "stage2";
    in
    {
      requires = (if stage2 then ready else fetch) ++ creds;
      wants = lib.optionals stage2 fetch;
      after = fetch ++ lib.optionals stage2 ready ++ creds;
      serviceConfig = lib.optionalAttrs (S name).credential {
        LoadCredential = [ "${name}:${socketOf stage}" ];
      };
    };
  consumers =
    attr: stage:
    lib.mkMerge (
      map (
        name: lib.genAttrs (map serviceName (S name).${attr}) (_: consumerConfig stage name)
      ) names
    );

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
        lib.optionals ((S n).${attr} != [ ]) [
          "--allow"
          "${n}=${lib.concatMapStringsSep "," unitName (S n).${attr}}"
        ]
      ) credNames
    );
  hasCredConsumers = attr: lib.any (n: (S n).${attr} != [ ]) credNames;

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

  # The stage-2 `send` of one secret to its file, with the password and key
  # from the unit's credentials; `withStart` as in changeArgs (the fetch unit
  # and the refresh timer's service differ only there).
  stage2Send =
    name: withStart:
    sendLine {
      inherit name;
      output = config.secrets.${name}.file;
      password = {
        specifier = "%d/${common.passwordCredential}";
      };
      key = if keyFile != null then { specifier = "%d/${common.keyCredential}"; } else null;
      inherit (config.secrets.${name}) owner group mode;
      extra = changeArgs config.systemd.package name withStart ++ offlineArgs;
    };

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
    wants = [ (unitOf name) ];
    after = [ (unitOf name) ];
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      ExecStart = common.execLine utils [
        (systemctl config.systemd.package)
        "is-active"
        "--quiet"
        (unitOf name)
      ];
    };
  };

  # Change actions (restartUnits / reloadUnits of a secret or a template)
  # act only when a value changes, i.e. when a refresh fetched a new one:
  # with any of them set and no refreshInterval, the refresh runs every
  # defaultRefreshInterval with a random delay, so that the clients of one
  # server do not all ask at once.
  defaultRefreshInterval = "1h";
  defaultRefreshDelay = "10min";
  hasChangeActions =
    lib.any (n: (S n).restartUnits != [ ] || (S n).reloadUnits != [ ]) fileNames
    || lib.any (t: t.restartUnits != [ ] || t.reloadUnits != [ ]) (lib.attrValues (cfg.templates or { }));
  refreshInterval =
    if cfg.refreshInterval != null then
      cfg.refreshInterval
    else if hasChangeActions then
      defaultRefreshInterval
    else
      null;

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

  # Ordering shared by every stage-1 unit (no default dependencies: they run
  # before sysinit/cryptsetup; they stop for shutdown).
  initrdBase = {
    unitConfig.DefaultDependencies = false;
    conflicts = [ "shutdown.target" ];
  };

  initrdPromptUnits = lib.optional cfg.enableInitrdPassword "netsecrets-ask-password.service";

  # The typed password is checked against the server (by fetching the first
  # requested secret) when stage 1 has a network: each typed password is sent
  # once, a rejected one is asked for again at once, so a typo costs one
  # failure on the server, never a lockout (--tries stays below the server's
  # default --max-failures of 5). Without an initrd network it cannot be
  # checked there, and the prompt only stores it.
  initrdNetwork = config.boot.initrd.network.enable || config.boot.initrd.systemd.network.enable;
  verifyPassword = cfg.enableInitrdPassword && initrdNetwork && names != [ ];
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
          output = (S name).initrdFile;
          password = initrdPassword;
          key = if keyFile != null then common.initrdKeyFile else null;
          # Only root exists in the initrd.
          mode = "0400";
        };
        # /run/netsecrets, kept when the unit stops at switch-root; an
        # initrdOnly secret has a directory of its own below it, which
        # systemd removes with the file when the unit stops (client-storage.nix).
        # Only that one: systemd empties every RuntimeDirectory= of a unit
        # that does not preserve them (the boot test's scenario 11 lost the
        # other stage-1 secrets that way).
        RuntimeDirectory = if (S name).initrdOnly then common.initrdOnlyDir name else "netsecrets";
        RuntimeDirectoryMode = if (S name).initrdOnly then "0700" else "0751";
        RuntimeDirectoryPreserve = !(S name).initrdOnly;
        UMask = "0077";
        StandardOutput = "journal+console";
        StandardError = "journal+console";
      }
      // cfg.systemdInitrdOverrides;
    };

  # A unit name as `netsecrets send --restart-unit` and `credentials --allow`
  # take it: "foo" means foo.service.
  unitType = lib.types.strMatching "[A-Za-z0-9:_.@\\-]+";

  secretSubmodule =
    { name, config, ... }:
    {
      options = {
        file = lib.mkOption {
          type = lib.types.str;
          readOnly = true;
          default = "${common.stateDir}/${name}";
          defaultText = lib.literalExpression ''"${common.stateDir}/''${name}"'';
          description = "Where netsecrets-client.service writes this secret (stage 2); {option}`path` is the same.";
        };
        # sops-nix and agenix users write config.sops.secrets.<n>.path /
        # config.age.secrets.<n>.path: the same value under that name.
        path = lib.mkOption {
          type = lib.types.str;
          readOnly = true;
          default = "${common.stateDir}/${name}";
          defaultText = lib.literalExpression ''"${common.stateDir}/''${name}"'';
          description = ''
            The same as {option}`file` (the spelling sops-nix and agenix use);
            read-only like it: the fetch always writes under /var/lib/netsecrets
            (for a file elsewhere, use a template with its own `path`).
          '';
        };
        initrdFile = lib.mkOption {
          type = lib.types.str;
          readOnly = true;
          default =
            if config.initrdOnly then
              "/run/${common.initrdOnlyDir name}/${name}"
            else
              "${common.initrdDir}/${name}";
          defaultText = lib.literalExpression ''"${common.initrdDir}/''${name}" (initrdOnly: "${common.initrdDir}/initrd-only/''${name}/''${name}")'';
          description = ''
            Where the stage-1 fetch writes this secret when
            {option}`netsecrets.client.enableInitrd` is set (root, 0400), on
            the RAM file system mounted at /run/netsecrets. With
            {option}`initrdOnly`, in a directory of its own that is removed
            before switch-root.
          '';
        };
      }
      // common.fileOptions "the stage-2 file"
      // {
        requiredBy = lib.mkOption {
          type = lib.types.listOf unitType;
          default = [ ];
          example = [ "postgresql.service" ];
          description = ''
            Services that need this secret (stage 2). Each gets `Wants=` and
            `After=` on netsecrets-secret-<name>.service and `Requires=` on
            netsecrets-ready-<name>.service, which succeeds only when the
            fetch unit is active: it never starts before the secret is in
            place and does not start at all when it cannot be fetched, and
            restarting the fetch unit restarts none of them (a new value
            reaches them through {option}`restartUnits` / {option}`reloadUnits`).
            With {option}`credential` it also gets the secret as a credential.
            A refresh does not start them unless
            {option}`netsecrets.client.refreshStartsUnits` is set.
          '';
        };
        initrdRequiredBy = lib.mkOption {
          type = lib.types.listOf unitType;
          default = [ ];
          example = [ "unlock-data.service" ];
          description = ''
            Stage-1 services (boot.initrd.systemd.services) that need this
            secret: the same as {option}`requiredBy`, in the initrd (needs
            {option}`netsecrets.client.enableInitrd`).
          '';
        };
        credential = lib.mkOption {
          type = lib.types.bool;
          default = false;
          description = ''
            Hand the secret to the {option}`requiredBy` (and
            {option}`initrdRequiredBy`) services as a systemd credential:
            `LoadCredential=<name>:/run/netsecrets-credentials.sock` (in
            stage 1 `/run/netsecrets-credentials-initrd.sock`). The
            value is fetched from the server when the unit starts, by
            `netsecrets credentials` (socket-activated), for the listed units
            only, and exists only in `/run/credentials/<unit>/` (read it as
            `$CREDENTIALS_DIRECTORY/<name>` or `%d/<name>`). A unit not listed
            gets nothing and does not start.
          '';
        };
        writeFile = lib.mkOption {
          type = lib.types.bool;
          default = true;
          description = ''
            Also write the secret to {option}`file` (and to
            {option}`initrdFile` in stage 1). Set to false with
            `credential = true` so that the value is never written under
            /var/lib/netsecrets: there is then no fetch unit for it.
          '';
        };
        restartUnits = lib.mkOption {
          type = lib.types.listOf unitType;
          default = [ ];
          example = [ "myapp.service" ];
          description = ''
            Units to restart when the value changes: after the file was
            created or changed (never when a fetch returns the same bytes),
            `systemctl --no-block try-restart` (a stopped unit stays stopped).
          '';
        };
        reloadUnits = lib.mkOption {
          type = lib.types.listOf unitType;
          default = [ ];
          example = [ "nginx.service" ];
          description = ''
            Units to reload when the value changes: as {option}`restartUnits`,
            with `systemctl --no-block try-reload-or-restart`.
          '';
        };
      };
    };
in
{
  options.secrets = lib.mkOption {
    type = lib.types.attrsOf (lib.types.submodule secretSubmodule);
    default = { };
    example = lib.literalExpression ''
      {
        db-password.owner = "postgres";
      }
    '';
    description = ''
      One entry per secret in {option}`netsecrets.client.request_secrets`
      (created by the module): `config.secrets.<name>.file` is its path, e.g.
      `environment.etc."myapp/db.conf".source = config.secrets.db-password.file;`.
      Set owner, group and mode here.
    '';
  };

  # The server's spelling of the password file option works here too.
  imports = [
    # Where the secrets are kept: RAM file systems, initrdOnly.
    ./client-storage.nix
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
        `password_file` (the server's spelling) is an alias.
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

    request_secrets = lib.mkOption {
      type = lib.types.listOf common.secretName;
      default = [ ];
      example = [
        "db-password"
        "api-key"
      ];
      description = "Names of the secrets to fetch, each to /var/lib/netsecrets/<name>.";
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
        ${defaultRefreshInterval} plus a random delay of up to ${defaultRefreshDelay} when any secret or
        template has restartUnits or reloadUnits (they act only on a
        refresh), else only at boot.
      '';
    };

    refreshStartsUnits = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Each successful refresh also runs `systemctl start` on the
        {option}`secrets.<name>.requiredBy` units of the secret, so one that
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

  config = lib.mkMerge [
    { netsecrets.client.consolePasswordFile = common.consolePasswordFile; }
    (lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = cfg.server != null;
            message = "netsecrets.client: set netsecrets.client.server to the server's address.";
          }
          {
            assertion = passwordFile != null;
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
            assertion = cfg.protocol != 2 || keyFile != null;
            message = "netsecrets.client.protocol = 2 needs an encryption key (netsecrets.client.encryptionKeyFile, not insecure); in plaintext only protocol 1 exists.";
          }
        ]
        ++ initrdFileAssertions
        ++ map (name: {
          assertion = lib.elem name names;
          message = "secrets.${name} is configured but \"${name}\" is not in netsecrets.client.request_secrets; add it there.";
        }) (lib.attrNames config.secrets)
        ++ lib.concatMap (name: [
          {
            assertion = (S name).writeFile || (S name).credential;
            message = "secrets.${name}: writeFile = false needs credential = true (else the secret goes nowhere).";
          }
          {
            assertion = (S name).credential -> ((S name).requiredBy != [ ] || (S name).initrdRequiredBy != [ ]);
            message = "secrets.${name}.credential = true: list the services that get it in secrets.${name}.requiredBy (or initrdRequiredBy).";
          }
          {
            assertion = (S name).initrdRequiredBy != [ ] -> cfg.enableInitrd;
            message = "secrets.${name}.initrdRequiredBy needs netsecrets.client.enableInitrd = true (the secret is fetched in stage 1 only then).";
          }
        ]) names
        ++ map (name: {
          assertion = lib.stringLength (unitOf name) <= 255;
          message = "netsecrets.client.request_secrets: the name \"${name}\" is too long for a unit name; shorten it.";
        }) names;

        warnings =
          lib.optional (nonEmpty cfg.password && !cfg.enableInitrdPassword && !(nonEmpty cfg.passwordFile)) ''
            netsecrets.client.password is set: the password is copied into the world-readable
            Nix store. Use netsecrets.client.passwordFile with a root-only file, or
            enableInitrdPassword, instead.
          ''
          ++ lib.optional (nonEmpty cfg.password && !cfg.enableInitrdPassword && nonEmpty cfg.passwordFile) ''
            netsecrets.client.password is ignored because netsecrets.client.passwordFile is set
            (the file takes priority); remove one of them.
          ''
          ++ lib.optional (nonEmpty cfg.password && cfg.enableInitrdPassword) ''
            netsecrets.client.password is ignored because netsecrets.client.enableInitrdPassword
            is set (the password typed at boot is used); remove netsecrets.client.password.
          ''
          ++ lib.optional (nonEmpty cfg.passwordFile && cfg.enableInitrdPassword) ''
            netsecrets.client.passwordFile is ignored because netsecrets.client.enableInitrdPassword
            is set (the password typed at boot is used); remove netsecrets.client.passwordFile.
          ''
          ++ lib.optional (!cfg.insecure && nonEmpty cfg.encryptionKey && nonEmpty cfg.encryptionKeyFile) ''
            netsecrets.client.encryptionKey is ignored because netsecrets.client.encryptionKeyFile
            is set (the file takes priority); remove one of them.
          ''
          ++ lib.optional (!cfg.insecure && nonEmpty cfg.encryptionKey && !(nonEmpty cfg.encryptionKeyFile)) ''
            netsecrets.client.encryptionKey is set: the key is copied into the world-readable
            Nix store. Use netsecrets.client.encryptionKeyFile with a root-only file instead.
          ''
          ++ lib.optional (keyFile == null && !cfg.insecure) ''
            netsecrets.client has no encryption key: secrets and the password travel in
            plaintext. Set netsecrets.client.encryptionKeyFile (or insecure = true to say so).
          ''
          ++ lib.optional (
            cfg.enableInitrd && !initrdNetwork
          ) ''
            netsecrets.client.enableInitrd is set but the initrd has no network: set
            boot.initrd.network.enable = true (and configure boot.initrd.systemd.network),
            or the stage-1 fetch cannot reach the server.
          '';

        secrets = lib.genAttrs names (_: { });

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
            s = config.secrets.${name};
          in
          "z ${s.file} ${s.mode} ${s.owner} ${s.group} -"
        ) stage2Names;

        systemd.services = lib.listToAttrs (map (name: lib.nameValuePair (unitBase name) (stage2Unit name)) stage2Names) // {
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
          lib.listToAttrs (map (name: lib.nameValuePair (unitBase name) (initrdUnit name)) fileNames)
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

      # ---- consumers, credentials, refresh (issue 14) ----
      { systemd.services = consumers "requiredBy" "stage2"; }

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
          map (name: lib.nameValuePair (readyBase name) (readyUnit name)) (
            lib.filter (n: (S n).requiredBy != [ ] || (cfg.templates or { }) != { }) stage2Names
          )
        );
      }

      (lib.mkIf cfg.enableInitrd { boot.initrd.systemd.services = consumers "initrdRequiredBy" "initrd"; })

      # ---- offline cache ----
      (lib.mkIf offline.enable {
        assertions = [
          {
            assertion = offline.after < (if cfg.timeout == null then 30 else cfg.timeout);
            message = "netsecrets.client.offlineCache.after (${toString offline.after} s) must be below netsecrets.client.timeout (${toString (if cfg.timeout == null then 30 else cfg.timeout)} s): the fetch gives up at the timeout, before the cache would be used.";
          }
        ];
        warnings = lib.optional (cfg.refreshInterval == null) ''
          netsecrets.client.offlineCache is enabled without netsecrets.client.refreshInterval:
          a value taken from the cache at boot is only replaced by the server's at the next
          boot (and a revoked secret stays until then). Set refreshInterval, e.g. "15min".
        '';
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
        // lib.genAttrs (map unitBase stage2Names ++ lib.optional (refreshInterval != null && stage2Names != [ ]) "netsecrets-refresh") (_: {
          wants = [ "netsecrets-cache-setup.service" ];
          after = [ "netsecrets-cache-setup.service" ];
        });
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
  ))
  ];
}
