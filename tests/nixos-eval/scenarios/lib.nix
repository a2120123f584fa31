# What every scenario file shares: the evaluation machinery (a whole NixOS
# configuration built with nixos/lib/eval-config.nix of a nixpkgs tree, and
# the facts check.py reads from it), the building blocks of configurations
# (boot loaders, stage-1 network, clientWith/serverWith/templateWith), and
# the few named configurations that scenarios of more than one topic use.
# ../nixos.nix imports this once and hands the result to every topic file.
{
  nixpkgs,
  # A directory with files named pw, key (contents known only to check.py);
  # scenarios use them as password and key files, and check.py greps every
  # derivation of those systems for their contents.
  canaryDir,
  system,
}:
let
  lib = import (nixpkgs + "/lib");
  repo = ../../..;

  # The package the modules default to (mkPackageOption pkgs "netsecrets"),
  # as flake.nix's overlay builds it, except for how its source reaches the
  # store: package.nix selects files with lib.fileset, whose filter function
  # Nix evaluates while it copies the tree into the store. check.py evaluates
  # in read-write mode (to read the .drv files), where Debian's Nix 2.8 does
  # that copy inside a coroutine, and its garbage collector (Boehm GC without
  # Nix's coroutine patch) crashes with SIGSEGV if it collects there. The same
  # three entries copied whole take no filter. package.nix itself, fileset and
  # all, is evaluated by the flake group, which check.py runs read-only.
  netsecretsOverlay = final: _prev: {
    netsecrets = (final.pkgsStatic.callPackage (repo + "/nix/package.nix") { }).overrideAttrs (_: {
      src = final.runCommandLocal "source" { } ''
        mkdir $out
        cp ${repo + "/Cargo.toml"} $out/Cargo.toml
        cp ${repo + "/Cargo.lock"} $out/Cargo.lock
        cp -r ${repo + "/src"} $out/src
      '';
    });
  };
  # A trimmed nixpkgs tree (../shared/nixpkgs: no hackage-packages.nix) cannot
  # evaluate Haskell packages; writeShellApplication wants shellcheck. Mark it
  # unavailable there (same as ../shared/nixpkgs/no-haskell-overlay.nix);
  # a complete tree is used as it is.
  trimmed = !builtins.pathExists (nixpkgs + "/pkgs/development/haskell-modules/hackage-packages.nix");
  noHaskellOverlay = _final: prev: {
    shellcheck-minimal = prev.emptyDirectory // {
      compiler = {
        meta.platforms = [ ];
      };
    };
  };

  base = {
    imports = [ (repo + "/nix/modules") ];
    nixpkgs.overlays = [ netsecretsOverlay ] ++ lib.optional trimmed noHaskellOverlay;
    fileSystems."/" = {
      device = "/dev/disk/by-label/nixos";
      fsType = "ext4";
    };
    system.stateVersion = "24.05";
    # The NixOS manual copies nixpkgs' lib/ and nixos/ through a source filter
    # (builtins.filterSource), thousands of filter calls inside the coroutine
    # described at netsecretsOverlay: Nix 2.8 crashed there on these scenarios.
    # These modules' options are not in that manual (documentation.nixos.
    # includeAllModules is off by default), so nothing about them is lost.
    documentation.nixos.enable = false;
  };

  loaders = {
    grub = {
      boot.loader.grub.enable = true;
      boot.loader.grub.device = "/dev/vda";
    };
    systemd-boot = {
      boot.loader.grub.enable = false;
      boot.loader.systemd-boot.enable = true;
      fileSystems."/boot" = {
        device = "/dev/disk/by-label/ESP";
        fsType = "vfat";
      };
    };
    # No boot loader at all (e.g. a container or a VM booted by its kernel):
    # boot.loader.supportsInitrdSecrets is false.
    none = {
      boot.loader.grub.enable = false;
    };
  };

  # Stage-1 networking as docs/nixos.md documents it.
  initrdNetwork = {
    boot.initrd.systemd.enable = true;
    boot.initrd.network.enable = true;
    boot.initrd.systemd.network.networks."10-lan" = {
      matchConfig.Name = "eth0";
      address = [ "10.0.0.5/24" ];
    };
  };

  evalFull =
    modules:
    import (nixpkgs + "/nixos/lib/eval-config.nix") {
      inherit system;
      modules = [ base ] ++ modules;
    };
  evalSystem = modules: (evalFull modules).config;

  # scalpel's way (a configuration derived from another one, as users of
  # scalpel write theirs): a system derived from `modules` with
  # extendModules, whose extra modules see the first one as `prev`.
  evalExtended =
    modules: extend:
    let
      prev = evalFull modules;
    in
    (prev.extendModules {
      modules = extend;
      specialArgs = { inherit prev; };
    }).config;

  tryOr =
    default: v:
    let
      r = builtins.tryEval (builtins.deepSeq v v);
    in
    if r.success then r.value else default;
  try = tryOr null;

  isOurs = n: lib.hasPrefix "netsecrets" n;
  unitTexts = units: lib.mapAttrs (_: u: u.text) (lib.filterAttrs (n: _: isOurs n) units);

  # Everything check.py looks at for one configuration. `toplevel = false`
  # skips config.system.build.toplevel (the expensive part) for scenarios
  # that only look at options, warnings or assertions.
  facts =
    {
      modules,
      toplevel ? true,
      extend ? null,
    }:
    let
      c = if extend == null then evalSystem modules else evalExtended modules extend;
      failed = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
    in
    {
      failedAssertions = tryOr [ "EVALUATING config.assertions FAILED" ] failed;
      warnings = tryOr [ "EVALUATING config.warnings FAILED" ] c.warnings;
      drvPath = if toplevel then try c.system.build.toplevel.drvPath else null;
      supportsInitrdSecrets = c.boot.loader.supportsInitrdSecrets;
      units = try (unitTexts c.systemd.units);
      wantedBy = try (lib.mapAttrs (_: u: u.wantedBy) (lib.filterAttrs (n: _: isOurs n) c.systemd.units));
      initrdWantedBy = try (
        lib.mapAttrs (_: u: u.wantedBy) (lib.filterAttrs (n: _: isOurs n) c.boot.initrd.systemd.units)
      );
      initrdUnits = try (unitTexts c.boot.initrd.systemd.units);
      # Stringified: a derivation here would be refused by nixpkgs on a
      # machine without initrd-secret support; record the kind too.
      initrdSecrets = try (
        lib.mapAttrs (_: v: {
          kind =
            if builtins.isPath v then
              "path"
            else if builtins.isString v then
              "string"
            else if lib.isDerivation v then
              "derivation"
            else
              builtins.typeOf v;
          value = toString v;
        }) c.boot.initrd.secrets
      );
      initrdStorePaths = try (map toString c.boot.initrd.systemd.storePaths);
      tmpfiles = try (lib.filter (lib.hasInfix "netsecrets") c.systemd.tmpfiles.rules);
      configJson = try (c.environment.etc."netsecrets/config.json".text or null);
      clientsFile = try (c.environment.etc."netsecrets/clients".text or null);
      reloadTriggers = try (map toString (c.systemd.services.netsecrets-daemon.reloadTriggers or [ ]));
      etcMyapp = try (c.environment.etc."myapp/db.conf".source or null);
      users = try (lib.mapAttrs (_: u: { inherit (u) isSystemUser group; }) (lib.filterAttrs (n: _: n == "netsecrets") c.users.users));
      groups = try (lib.attrNames (lib.filterAttrs (n: _: n == "netsecrets") c.users.groups));
      firewallTCP = try c.networking.firewall.allowedTCPPorts;
      secrets = try (lib.mapAttrs (_: s: { inherit (s) file initrdFile owner group mode; }) c.secrets);
      # secrets.<name>.path, sops-nix's spelling of `file` (`or null`: a
      # missing attribute is no error tryEval catches).
      secretPaths = try (lib.mapAttrs (_: s: s.path or null) c.secrets);
      server = try (lib.filterAttrs (n: _: n != "package") c.netsecrets.server);
      client = try (lib.filterAttrs (n: _: n != "package") c.netsecrets.client);
      package = try "${c.netsecrets.client.package}";
      systemctl = try "${c.systemd.package}/bin/systemctl";
      # Units that use a secret (named in consumerNames): their rendered texts.
      consumerUnits = try (
        lib.mapAttrs (_: u: u.text) (lib.filterAttrs (n: _: lib.elem n consumerNames) c.systemd.units)
      );
      initrdConsumerUnits = try (
        lib.mapAttrs (_: u: u.text) (lib.filterAttrs (n: _: lib.elem n consumerNames) c.boot.initrd.systemd.units)
      );
      initrdSystemctl = try "${c.boot.initrd.systemd.package}/bin/systemctl";
      # Templates (nix/modules/templates.nix).
      placeholders = try c.netsecrets.placeholder;
      templates = try (lib.mapAttrs (_: t: { inherit (t) content path owner group mode; }) c.netsecrets.client.templates);
      initrdStorePathsAll = try (map toString c.boot.initrd.systemd.storePaths);
      mosquittoExecStart = try (c.systemd.services.mosquitto.serviceConfig.ExecStart or null);
      requiredBy = try (lib.mapAttrs (_: u: u.requiredBy) (lib.filterAttrs (n: _: isOurs n) c.systemd.units));
      initrdRequiredBy = try (
        lib.mapAttrs (_: u: u.requiredBy) (lib.filterAttrs (n: _: isOurs n) c.boot.initrd.systemd.units)
      );
      # Where the secrets are kept (nix/modules/client/storage.nix): the RAM
      # file system mounts, stage 2 and stage 1.
      mountUnits = try (
        lib.mapAttrs (_: u: u.text) (lib.filterAttrs (n: _: lib.hasSuffix "netsecrets.mount" n) c.systemd.units)
      );
      initrdMountUnits = try (
        lib.mapAttrs (_: u: u.text) (
          lib.filterAttrs (n: _: lib.hasSuffix "netsecrets.mount" n) c.boot.initrd.systemd.units
        )
      );
      mountWantedBy = try (
        lib.mapAttrs (_: u: u.wantedBy) (lib.filterAttrs (n: _: lib.hasSuffix "netsecrets.mount" n) c.systemd.units)
      );
      initrdOnly = try (lib.mapAttrs (_: s: s.initrdOnly) c.secrets);
      luksKeyFile = try (c.boot.initrd.luks.devices.root.keyFile or null);
    };

  # Only whether an option value evaluates (type checks), and to what.
  value =
    modules: get:
    let
      c = evalSystem modules;
      r = builtins.tryEval (builtins.deepSeq (get c) (get c));
    in
    {
      ok = r.success;
      value = if r.success then r.value else null;
    };

  # ---- building blocks of scenarios --------------------------------------

  # The client configuration users already have, verbatim (its comments
  # too): the module must keep accepting it as it is.
  originalClient = {
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      port = 8081;
      password = "hunter2";
      encryptionKey = "my-aes-key"; # must match server; or use encryptionKeyFile
      encryptionKeyFile = "/run/secrets/enc-key"; # takes priority over encryptionKey
      request_secrets = [
        "db-password"
        "api-key"
      ];
      fallbacks = [ "10.0.0.2" ];
      insecure = false;
      verbose = false;
      # initrd support (see below)
      enableInitrd = false;
      enableInitrdPassword = false;
      systemdOverrides = { };
      systemdInitrdOverrides = { };
    };
  };

  # The documented file-based client (README.md, docs/nixos.md).
  docClient =
    { config, ... }:
    {
      netsecrets.client = {
        enable = true;
        server = "10.0.0.1";
        port = 8081;
        passwordFile = "/run/agenix/netsecrets-password";
        encryptionKeyFile = "/run/secrets/enc-key";
        request_secrets = [
          "db-password"
          "api-key"
        ];
        fallbacks = [ "10.0.0.2" ];
        insecure = false;
        verbose = false;
        timeout = null;
        enableInitrd = false;
        enableInitrdPassword = false;
        systemdOverrides = { };
        systemdInitrdOverrides = { };
      };
      secrets.api-key = {
        owner = "myapp";
        group = "myapp";
        mode = "0440";
      };
      users.users.myapp = {
        isSystemUser = true;
        group = "myapp";
      };
      users.groups.myapp = { };
      environment.etc."myapp/db.conf".source = config.secrets.db-password.file;
    };

  # Stage 1: files for the password and the key (documented), appended by the boot loader.
  initrdFiles = {
    imports = [ initrdNetwork ];
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      port = "8081";
      passwordFile = "${canaryDir}/pw";
      encryptionKeyFile = "${canaryDir}/key";
      request_secrets = [
        "luks-key"
        "api-key"
      ];
      enableInitrd = true;
      timeout = 120;
      systemdInitrdOverrides.TimeoutStartSec = "10min";
    };
    boot.initrd.luks.devices.data = {
      device = "/dev/vdb";
      keyFile = "/run/netsecrets/luks-key";
    };
  };


  # A client (or server) with the usual settings, `extra` replacing or adding
  # options of netsecrets.client (netsecrets.server).
  clientWith = extra: {
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      passwordFile = "/run/agenix/pw";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [ "db-password" ];
    }
    // extra;
  };
  serverWith = extra: {
    netsecrets.server = {
      enable = true;
      password_file = "/run/keys/pw";
      secrets = [ "db-password" ];
    }
    // extra;
  };

  # A client with one template `t` (and db-password requested).
  templateWith = extra: {
    imports = [ (clientWith { request_secrets = [ "db-password" ]; }) ];
    netsecrets.client.templates.t = extra;
  };

  # Units that use a secret in the scenarios (their texts are facts:
  # consumerUnits, initrdConsumerUnits).
  consumerNames = [
    "myapp.service"
    "nginx.service"
    "other.service"
    "unlock.service"
  ];
in
{
  inherit
    lib
    repo
    canaryDir
    loaders
    initrdNetwork
    evalFull
    facts
    value
    clientWith
    serverWith
    templateWith
    originalClient
    docClient
    initrdFiles
    ;
}
