# The one home of what more than one netsecrets module uses: the paths and
# port that the Rust binary and the initrd units also know, the option types
# that keep secrets out of the Nix store, unit names (escaping, "foo" ->
# foo.service), the sandbox of every unit and its chown variant, the warnings
# about literal and ignored secrets, and ExecStart quoting.
#
# This file is a plain function of lib (not a module), imported by
# ./server.nix, ./templates.nix and the files of ./client/.
{ lib }:
let
  # Secret names as the wire protocol allows them: 1-255 bytes of
  # [A-Za-z0-9._@+-], not "." or "..". They become file names, credential
  # names and unit names, so the type refuses anything else at evaluation.
  # Keep in sync with src/wire/protocol.rs (secret name validation).
  secretName = lib.types.addCheck (lib.types.strMatching "[A-Za-z0-9._@+-]{1,255}") (
    s: s != "." && s != ".."
  )
  // {
    name = "netsecretsSecretName";
    description = ''secret name (1-255 characters of [A-Za-z0-9._@+-], not "." or "..")'';
  };

  # An absolute path to a file outside the Nix store, given as a string.
  # Nix path values (./key) are refused too: using one copies the file into
  # the world-readable store. Like sops-nix's pathNotInStore.
  isStoreString = s: lib.hasPrefix "${builtins.storeDir}/" s || s == builtins.storeDir;
  pathNotInStore = lib.mkOptionType {
    name = "netsecretsPathNotInStore";
    description = "absolute path outside the Nix store (a string, not a Nix path value)";
    descriptionClass = "noun";
    check =
      x:
      builtins.isString x
      && lib.hasPrefix "/" x
      && !isStoreString x
      # It ends up on a unit file line: no line breaks.
      && !lib.hasInfix "\n" x
      && !lib.hasInfix "\r" x;
    merge = lib.mergeEqualOption;
  };

  # Configurations written for the first releases say `password_file = "";`
  # for "not set": accept "" as well.
  pathNotInStoreOrEmpty = lib.types.either (lib.types.enum [ "" ]) pathNotInStore;

  # "" means "not set" (as in those configurations); null is the default.
  nonEmpty = v: v != null && v != "";

  # A read-only system, no devices, kernel knobs or namespaces, IP sockets
  # only, the @system-service syscalls minus privileged and resource-control
  # ones. Each module adds its user, capabilities and writable paths.
  sandbox = {
    NoNewPrivileges = true;
    UMask = "0077";
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    PrivateMounts = true;
    PrivateIPC = true;
    ProtectClock = true;
    ProtectControlGroups = true;
    ProtectHostname = true;
    ProtectKernelLogs = true;
    ProtectKernelModules = true;
    ProtectKernelTunables = true;
    ProtectProc = "invisible";
    ProcSubset = "pid";
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
    ];
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
      "~@resources"
    ];
  };

  escapeUnit = lib.replaceStrings [ "@" "+" ] [ "\\x40" "\\x2b" ];
in
{
  inherit nonEmpty;

  # The file behind a file option and its literal twin (password_file/password,
  # encryptionKeyFile/encryptionKey): the file wins; a literal value is written
  # to the world-readable store under `storeName` (the modules warn about it);
  # neither gives null.
  #
  # The store file is returned as a store-path STRING, not the derivation:
  # boot.initrd.secrets accepts a store-path string (or a Nix path) on a
  # machine whose boot loader cannot append initrd secrets, and refuses a
  # derivation (nixpkgs' nixos/modules/system/boot/stage-1.nix, checked in
  # tests/nix against NixOS 24.05).
  fileOrLiteral =
    pkgs: storeName: file: literal:
    if nonEmpty file then
      file
    else if nonEmpty literal then
      "${pkgs.writeText storeName literal}"
    else
      null;

  # True when fileOrLiteral would pick the file (not a store copy).
  isFile = file: nonEmpty file;

  inherit secretName pathNotInStore pathNotInStoreOrEmpty;

  # Default TCP port. Keep in sync with src/cli/args.rs (DEFAULT_PORT) and README.md.
  defaultPort = 8080;
  # Stage-2 secrets: <stateDir>/<name>. Keep in sync with src/ and README.md.
  stateDir = "/var/lib/netsecrets";
  # Stage-1 (initrd) secrets: <initrdDir>/<name>; /run survives switch-root.
  initrdDir = "/run/netsecrets";
  # The RuntimeDirectory= (relative to /run) of an initrdOnly secret's stage-1
  # unit: systemd removes it, with the secret, when the unit stops.
  initrdOnlyDir = name: "netsecrets/initrd-only/${name}";
  # Written by `netsecrets ask-password` in stage 1 (root, 0400) and read from
  # there by stage 2 too: /run survives switch-root. Not /run/secrets: sops-nix
  # owns that path as a symlink it replaces at every activation (see
  # docs/nixos.md). Keep in sync with src/cli/args.rs (DEFAULT_PASSWORD_PATH).
  consolePasswordFile = "/run/netsecrets-password";
  # Where boot.initrd.secrets puts the client's key and password inside the
  # initrd (the boot test places them there the same way).
  initrdKeyFile = "/etc/netsecrets/initrd-key";
  initrdPasswordFile = "/etc/netsecrets/initrd-password";

  # systemd credential names for the password and the key. Secrets are loaded
  # under their own name, so these two names are reserved (an assertion says so).
  passwordCredential = "netsecrets.password";
  keyCredential = "netsecrets.encryption-key";

  # A port given as 8081 or "8081" (existing configurations use both); always
  # an int after merging.
  port = lib.types.coercedTo (lib.types.strMatching "[0-9]{1,5}") lib.toInt lib.types.port;

  # The sandbox every netsecrets unit gets (server daemon and client fetches).
  inherit sandbox;

  # owner, group and mode of a file netsecrets writes (a fetched secret, a
  # rendered template); `what` names it in the descriptions. The binary
  # refuses setuid, setgid and sticky bits (and warns on world-writable).
  fileOptions =
    what:
    let
      ownerType = lib.types.strMatching "[A-Za-z0-9_][A-Za-z0-9_.-]*[$]?";
    in
    {
      owner = lib.mkOption {
        type = ownerType;
        default = "root";
        description = "Owner (user name or uid) of ${what}.";
      };
      group = lib.mkOption {
        type = ownerType;
        default = "root";
        description = "Group (name or gid) of ${what}.";
      };
      mode = lib.mkOption {
        type = lib.types.strMatching "0?[0-7]{3}";
        default = "0400";
        description = "Permissions of ${what}, in octal (no setuid, setgid or sticky bit).";
      };
    };

  # The sandbox of the units that write files for other users (the client's
  # fetch units, the template render units): root, but only the capabilities
  # to hand a file to its owner. fchown is in @chown, which ~@privileged
  # removes: without it back such a unit dies of SIGSYS (found by the boot
  # test's scenario 6).
  chownSandbox = sandbox // {
    SystemCallFilter = sandbox.SystemCallFilter ++ [ "@chown" ];
    CapabilityBoundingSet = [
      "CAP_CHOWN"
      "CAP_FOWNER"
      "CAP_DAC_OVERRIDE"
    ];
  };

  # ---- unit names ------------------------------------------------------
  # Unit names allow [A-Za-z0-9:_.-] and "\"; "@" would make a template
  # instance and "+" is invalid, so those two are \x-escaped as
  # systemd-escape does.
  inherit escapeUnit;
  # The stage-2 and stage-1 fetch unit of a secret (without ".service").
  fetchUnitBase = name: "netsecrets-secret-${escapeUnit name}";
  fetchUnit = name: "netsecrets-secret-${escapeUnit name}.service";
  # The gate consumers of a secret Require (client/stage2.nix): active only
  # when the secret was fetched in this boot.
  readyUnitBase = name: "netsecrets-ready-${escapeUnit name}";
  readyUnit = name: "netsecrets-ready-${escapeUnit name}.service";
  # A unit as users may write it in requiredBy, restartUnits, reloadUnits
  # (of a secret or a template): "foo" means foo.service, a name with a dot
  # ("foo.socket", "foo.service") is kept.
  unitName = u: if lib.hasInfix "." u then u else "${u}.service";
  # The systemd.services attribute of such a unit.
  serviceName = u: lib.removeSuffix ".service" u;
  unitType = lib.types.strMatching "[A-Za-z0-9:_.@\\-]+";

  # ---- warnings about literal and ignored secrets ------------------------
  # `option` is the literal option (password, encryptionKey), `what` what it
  # holds, `instead` the advice (its own line breaks).
  literalInStore = option: what: instead: ''
    ${option} is set: the ${what} is copied into the world-readable
    Nix store. ${instead}
  '';
  # The literal option next to the file option that wins over it; lines of
  # at most 88 characters.
  fileWins =
    literal: file:
    let
      first = "${literal} is ignored because ${file} is set";
    in
    if lib.stringLength first <= 88 then
      "${first}\n(the file takes priority); remove one of them.\n"
    else
      "${literal} is ignored because ${file}\nis set (the file takes priority); remove one of them.\n";
  # `side` is netsecrets.server or netsecrets.client.
  noKey = side: ''
    ${side} has no encryption key: secrets and the password travel in
    plaintext. Set ${side}.encryptionKeyFile (or insecure = true to say so).
  '';

  # A LoadCredential= entry "ID:PATH". systemd expands %-specifiers in it,
  # so a % in the path is doubled.
  loadCredential = id: path: "${id}:${lib.replaceStrings [ "%" ] [ "%%" ] "${path}"}";

  # Quote arguments for an Exec*= line (systemd's own syntax, no shell):
  # `args` is a list whose elements are plain strings (escaped with
  # utils.escapeSystemdExecArgs, which also turns % into %% and $ into $$) or
  # { specifier = "..."; } (passed through). The latter is used only for
  # arguments that must keep systemd's %d (the credentials directory), e.g.
  # "%d/netsecrets.password" or "db-password=%d/db-password"; the names in them
  # are constants or secretName values, whose characters need no quoting.
  execLine =
    utils: args:
    lib.concatMapStringsSep " " (
      a: if builtins.isAttrs a then a.specifier else utils.escapeSystemdExecArgs [ a ]
    ) args;
}
