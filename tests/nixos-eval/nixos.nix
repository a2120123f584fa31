# The modules inside the real NixOS module system: every scenario is a whole
# NixOS configuration built with nixos/lib/eval-config.nix of a nixpkgs tree
# (tests/nixos-eval/check.py finds it; NixOS 24.05 from ../shared/nixpkgs by default),
# so option names, unit rendering, boot.initrd.secrets and nixpkgs' own
# assertions are those of that release.
#
#   nix-instantiate --eval --strict --json tests/nixos-eval/nixos.nix --arg nixpkgs <tree> \
#     --arg only '[ "seed-server" ]' [--arg canaryDir '"<dir>"']
#
# gives { <scenario> = facts; } for the scenarios in `only` (all when null).
# The facts are plain data (drvPath of config.system.build.toplevel or null,
# failed assertions, warnings, rendered unit texts, ...); check.py holds the
# expectations. Nothing here builds anything.
{
  nixpkgs,
  only ? null,
  # A directory with files named pw, key (contents known only to check.py):
  # the scenario initrd-grub uses them as passwordFile/encryptionKeyFile, and
  # check.py greps every derivation of that system for their contents.
  canaryDir ? "/run/agenix",
  system ? "x86_64-linux",
}:
let
  lib = import (nixpkgs + "/lib");
  repo = ../..;

  # The package the modules default to (mkPackageOption pkgs "netsecrets"),
  # as flake.nix's overlay builds it.
  netsecretsOverlay = final: _prev: { netsecrets = final.pkgsStatic.callPackage (repo + "/nix/package.nix") { }; };
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

  # scalpel's way (the seed): a system derived from `modules` with
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
      # Units that use a secret (issue 14): their rendered texts.
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
      # Where the secrets are kept (nix/modules/client-storage.nix): the RAM
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

  # ---- the seed's examples, verbatim ------------------------------------

  seedServer = {
    netsecrets.server = {
      enable = true;
      ip = "10.0.0.1";
      port = "8081";
      password = "hunter2"; # or use password_file
      password_file = ""; # path to file containing password
      secrets = [
        "db-password"
        "api-key"
      ];
      authorized_ips = [ "10.0.0.0/24" ];
      encryptionKey = "my-aes-key"; # optional; or use encryptionKeyFile
      encryptionKeyFile = ""; # path to file; takes priority over encryptionKey
      insecure = false;
      verbose = false;
      # merge extra systemd serviceConfig keys
      systemdOverrides = { };
    };
  };

  seedClient = {
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
  # The seed's consumer example.
  seedConsumer =
    { config, ... }:
    {
      environment.etc."myapp/db.conf".source = config.secrets.db-password.file;
      systemd.services.myapp.serviceConfig.EnvironmentFile = "/var/lib/netsecrets/db-password";
    };

  # ---- the documented file-based setups (README.md, docs/nixos.md) ------

  docServer = {
    netsecrets.server = {
      enable = true;
      ip = "10.0.0.1";
      port = "8081";
      password_file = "/run/agenix/netsecrets-password";
      secrets = [
        "db-password"
        "api-key"
      ];
      authorized_ips = [ "10.0.0.0/24" ];
      encryptionKeyFile = "/run/agenix/netsecrets-key";
      insecure = false;
      verbose = false;
      openFirewall = true;
      systemdOverrides = { };
    };
  };

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

  # Everything at once on the server side: secretFiles, overrides, a literal
  # key that the key file makes ignored (it must reach nothing).
  overridesServer = {
    netsecrets.server = {
      enable = true;
      port = 8081;
      passwordFile = "/run/agenix/netsecrets-password"; # the client's spelling
      secrets = [
        "db-password"
        "api-key"
      ];
      secretFiles.db-password = "/run/agenix/db";
      secretsDir = "/run/agenix";
      authorized_ips = [
        "10.0.0.0/24"
        "fd00::/64"
      ];
      encryptionKey = "ignored-literal-key";
      encryptionKeyFile = "/run/agenix/netsecrets-key";
      verbose = true;
      openFirewall = true;
      systemdOverrides = {
        RestartSec = "30s";
        ProtectSystem = "full";
      };
    };
  };

  lowPortServer = {
    netsecrets.server = {
      enable = true;
      port = 443;
      password_file = "/run/keys/pw";
      secrets = [ "x" ];
      insecure = true;
      encryptionKeyFile = "/run/keys/key";
    };
  };

  # Owners, odd names, % and $ in arguments, overrides.
  ownedClient = {
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      password_file = "/run/agenix/pw"; # the server's spelling
      insecure = true;
      request_secrets = [
        "db-password"
        "a@b+c"
      ];
      fallbacks = [
        "10.0.0.2"
        "odd%host$name"
      ];
      systemdOverrides.TimeoutStartSec = "5min";
    };
    secrets.db-password = {
      owner = "postgres";
      group = "postgres";
      mode = "0440";
    };
    users.users.postgres = {
      isSystemUser = true;
      group = "postgres";
    };
    users.groups.postgres = { };
  };

  # ---- stage 1 -----------------------------------------------------------

  # Files for the password and the key (documented), appended by the boot loader.
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

  # Literal password and key: store files, accepted in the initrd without a
  # boot loader (the VM tests' setup).
  initrdLiterals = {
    imports = [ initrdNetwork ];
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      password = "literal-initrd-password";
      encryptionKey = "literal-initrd-key";
      request_secrets = [ "luks-key" ];
      enableInitrd = true;
    };
  };

  # The console prompt with a key file (documented).
  promptKeyFile = {
    imports = [ initrdNetwork ];
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [ "luks-key" ];
      enableInitrd = true;
      enableInitrdPassword = true;
    };
  };

  # The console prompt with a literal key: works without a boot loader.
  promptLiteralKey = {
    imports = [ initrdNetwork ];
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      encryptionKey = "literal-prompt-key";
      request_secrets = [ "luks-key" ];
      enableInitrd = true;
      enableInitrdPassword = true;
    };
  };

  # The prompt alone (stage-2 fetch only): nothing needs appending.
  promptOnly = {
    boot.initrd.systemd.enable = true;
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [ "db-password" ];
      enableInitrdPassword = true;
    };
  };

  # ---- templates (nix/modules/templates.nix) ------------------------------

  # A config file written as text: two secrets, one used twice; owner, mode,
  # change actions; and a file built by a derivation (not readable at
  # evaluation), which gets every requested secret.
  templatesContent =
    { config, pkgs, ... }:
    {
      imports = [ docClient ];
      netsecrets.client.templates = {
        "app.conf" = {
          content = ''
            [db]
            password = ${config.netsecrets.placeholder.db-password}
            again = ${config.netsecrets.placeholder.db-password}
            [api]
            key = ${config.netsecrets.placeholder.api-key}
          '';
          owner = "myapp";
          group = "myapp";
          mode = "0440";
          restartUnits = [ "myapp.service" ];
          reloadUnits = [ "nginx.service" ];
          requiredBy = [ "myapp.service" ];
        };
        "built.conf".file = "${pkgs.writeText "built.conf" "k=${config.netsecrets.placeholder.api-key}\n"}";
      };
      systemd.services.myapp = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = "/run/current-system/sw/bin/true";
      };
    };

  # The seed (scalpel's Mosquitto example), the netsecrets way: the bridge
  # passwords are placeholders in the Mosquitto module's own options, and the
  # derived system renders the config file the module generated.
  mosquittoBase =
    { config, ... }:
    {
      netsecrets.client = {
        enable = true;
        server = "10.0.0.1";
        passwordFile = "/run/agenix/netsecrets-password";
        encryptionKeyFile = "/run/agenix/netsecrets-key";
        request_secrets = [
          "br1passwd"
          "br2passwd"
        ];
      };
      services.mosquitto = {
        enable = true;
        listeners = [ { address = "127.0.0.1"; } ];
        bridges.br1 = {
          addresses = [ { address = "127.0.0.2"; } ];
          topics = [ "# in" ];
          settings.remote_password = config.netsecrets.placeholder.br1passwd;
        };
        bridges.br2 = {
          addresses = [ { address = "127.0.0.3"; } ];
          topics = [ "# in" ];
          settings.remote_password = config.netsecrets.placeholder.br2passwd;
        };
      };
    };
  mosquittoSecrets =
    {
      config,
      lib,
      prev,
      ...
    }:
    let
      start = prev.config.systemd.services.mosquitto.serviceConfig.ExecStart;
      # lib.splitString keeps the string's context (builtins.match would drop
      # it, and with it the file from the system's closure).
      mosquittoConf = lib.last (lib.splitString " " start);
      rendered = config.netsecrets.client.templates."mosquitto.conf".path;
    in
    {
      netsecrets.client.templates."mosquitto.conf" = {
        file = mosquittoConf;
        owner = "mosquitto";
        group = "mosquitto";
        mode = "0440";
        restartUnits = [ "mosquitto.service" ];
        requiredBy = [ "mosquitto.service" ];
      };
      systemd.services.mosquitto.serviceConfig.ExecStart = lib.mkForce (
        builtins.replaceStrings [ mosquittoConf ] [ rendered ] start
      );
    };

  # Rendered in stage 1 too.
  templatesInitrd =
    { config, ... }:
    {
      imports = [ initrdFiles ];
      netsecrets.client.templates."unlock.conf" = {
        content = "key=${config.netsecrets.placeholder.luks-key}\n";
        initrd = true;
        initrdRequiredBy = [ "cryptsetup-pre.target" ];
      };
    };

  # Refused: a placeholder of a secret that is not requested (copied from
  # another machine's configuration), a cut one, both content and file,
  # stage 1 without enableInitrd or outside /run.
  templateWith = extra: {
    imports = [ (clientWith { request_secrets = [ "db-password" ]; }) ];
    netsecrets.client.templates.t = extra;
  };

  # ---- services that use secrets (issue 14) -----------------------------
  consumerNames = [
    "myapp.service"
    "nginx.service"
    "other.service"
    "unlock.service"
  ];
  consumersClient = {
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      passwordFile = "/run/agenix/pw";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [
        "db-password"
        "api-token"
      ];
      refreshInterval = "15min";
    };
    secrets.db-password = {
      owner = "root";
      requiredBy = [ "myapp.service" ];
      restartUnits = [ "myapp" ];
      reloadUnits = [ "nginx.service" ];
    };
    secrets.api-token = {
      requiredBy = [ "myapp.service" ];
      credential = true;
      writeFile = false;
    };
    systemd.services.myapp = {
      wantedBy = [ "multi-user.target" ];
      serviceConfig.ExecStart = "/bin/sh -c true";
    };
    systemd.services.other = {
      wantedBy = [ "multi-user.target" ];
      serviceConfig.ExecStart = "/bin/sh -c true";
    };
  };
  consumersInitrd = {
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      passwordFile = "/run/agenix/pw";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [ "luks-key" ];
      enableInitrd = true;
    };
    secrets.luks-key = {
      initrdRequiredBy = [ "unlock.service" ];
      credential = true;
    };
    boot.initrd.systemd.services.unlock = {
      wantedBy = [ "initrd.target" ];
      unitConfig.DefaultDependencies = false;
      serviceConfig.ExecStart = "/bin/sh -c true";
    };
  };

  # Change actions without refreshInterval: the refresh gets a default
  # interval with jitter; config.secrets.<name>.path in use (no warning).
  actionsNoInterval =
    { config, ... }:
    {
      imports = [ consumersClient ];
      netsecrets.client.refreshInterval = lib.mkForce null;
      environment.etc."myapp/db.conf".source = config.secrets.db-password.path;
    };

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

  # Two named clients (README, docs/nixos.md), each its own password and
  # key, beside the shared password; file contents come from canaryDir so
  # check.py can grep every derivation for them.
  twoClientServer = {
    netsecrets.server = {
      enable = true;
      ip = "10.0.0.1";
      port = 8081;
      password_file = "/run/agenix/netsecrets-password";
      encryptionKeyFile = "/run/agenix/netsecrets-key";
      secrets = [
        "wifi"
        "db-password"
      ];
      authorized_ips = [ "10.0.0.0/24" ];
      clients = {
        laptop = {
          passwordFile = "${canaryDir}/pw";
          encryptionKeyFile = "${canaryDir}/key";
          authorizedIps = [ "10.0.5.7" ];
          secrets = [ "wifi" ];
        };
        builder = {
          passwordFile = "/run/agenix/netsecrets-builder-password";
          authorizedIps = [
            "10.0.1.0/24"
            "fd00::/64"
          ];
          secrets = [ "*" ];
        };
      };
    };
  };

  # Only named clients, all limited to their networks: IPAddressAllow= is
  # exactly their networks; no shared password, no server key needed.
  clientsOnlyServer = {
    netsecrets.server = {
      enable = true;
      secrets = [ "wifi" ];
      clients.laptop = {
        passwordFile = "/run/agenix/laptop-pw";
        encryptionKeyFile = "/run/agenix/laptop-key";
        authorizedIps = [ "10.0.5.7" ];
        secrets = [ "wifi" ];
      };
    };
  };

  # Overlap rotation (lists of password and key files) and the admission limits.
  rotationServer = {
    netsecrets.server = {
      enable = true;
      secrets = [ "wifi" ];
      passwordFile = [
        "/run/agenix/pw-old"
        "/run/agenix/pw-new"
      ];
      encryptionKeyFile = [
        "/run/agenix/key-old"
        "/run/agenix/key-new"
      ];
      maxFailures = 10;
      maxPerIp = 16;
      maxConnections = 512;
      timeout = 9;
      clients.nas = {
        passwordFile = [
          "/run/agenix/nas-pw-old"
          "/run/agenix/nas-pw-new"
        ];
        encryptionKeyFile = [
          "/run/agenix/nas-key-old"
          "/run/agenix/nas-key-new"
        ];
        authorizedIps = [ "10.0.5.8" ];
        secrets = [ "wifi" ];
      };
    };
  };

  # Where the secrets are kept (client-storage.nix): the LUKS example of
  # docs/nixos.md (an initrdOnly key) beside a stage-2 secret used by a
  # service, a credential and a template; and keepOnDisk.
  storageClient =
    { config, ... }:
    {
      netsecrets.client = {
        enable = true;
        server = "10.0.0.1";
        passwordFile = "/run/agenix/pw";
        encryptionKeyFile = "/run/agenix/key";
        request_secrets = [
          "luks-root"
          "db-password"
          "api-token"
        ];
        enableInitrd = true;
        refreshInterval = "15min";
        templates.app = {
          content = "pw=${config.netsecrets.placeholder.db-password}";
          path = "/etc/app.conf";
        };
      };
      secrets.luks-root.initrdOnly = true;
      secrets.db-password.requiredBy = [ "myapp.service" ];
      secrets.api-token = {
        requiredBy = [ "myapp.service" ];
        credential = true;
        writeFile = false;
      };
      boot.initrd.luks.devices.root = {
        device = "/dev/vda2";
        keyFile = config.secrets.luks-root.initrdFile;
      };
      systemd.services.myapp = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = "/bin/sh -c true";
      };
    };

  scenarios = {
    rotation-server.modules = [
      loaders.none
      rotationServer
    ];
    storage-luks.modules = [
      loaders.systemd-boot
      initrdNetwork
      storageClient
    ];
    storage-disk.modules = [
      loaders.systemd-boot
      initrdNetwork
      storageClient
      { netsecrets.client.keepOnDisk = true; }
    ];
    storage-refused = {
      toplevel = false;
      modules = [
        loaders.none
        (clientWith { request_secrets = [ "luks-root" ]; })
        {
          secrets.luks-root = {
            initrdOnly = true;
            requiredBy = [ "myapp.service" ];
          };
        }
      ];
    };
    two-client-server.modules = [
      loaders.none
      twoClientServer
    ];
    clients-only-server.modules = [
      loaders.none
      clientsOnlyServer
    ];
    server-client-bad = {
      toplevel = false;
      modules = [
        loaders.none
        {
          netsecrets.server = {
            enable = true;
            secrets = [ "wifi" ];
            clients."default" = {
              passwordFile = "/run/agenix/pw";
              secrets = [ "disk" ];
            };
          };
        }
      ];
    };
    # Whole systems: toplevel.drvPath must evaluate.
    seed-server.modules = [
      loaders.grub
      seedServer
    ];
    seed-client.modules = [
      loaders.grub
      seedClient
      seedConsumer
    ];
    doc-server.modules = [
      loaders.grub
      docServer
    ];
    doc-client.modules = [
      loaders.grub
      docClient
    ];
    overrides-server.modules = [
      loaders.none
      overridesServer
    ];
    lowport-server.modules = [
      loaders.none
      lowPortServer
    ];
    owned-client.modules = [
      loaders.none
      ownedClient
    ];
    initrd-grub.modules = [
      loaders.grub
      initrdFiles
    ];
    initrd-systemd-boot.modules = [
      loaders.systemd-boot
      initrdFiles
    ];
    initrd-none-literals.modules = [
      loaders.none
      initrdLiterals
    ];
    prompt-grub.modules = [
      loaders.grub
      promptKeyFile
    ];
    prompt-systemd-boot.modules = [
      loaders.systemd-boot
      promptKeyFile
    ];
    prompt-none-literal-key.modules = [
      loaders.none
      promptLiteralKey
    ];
    prompt-only-none.modules = [
      loaders.none
      promptOnly
    ];

    templates-content.modules = [
      loaders.grub
      templatesContent
    ];
    templates-mosquitto = {
      modules = [
        loaders.grub
        mosquittoBase
      ];
      extend = [ mosquittoSecrets ];
    };
    templates-initrd.modules = [
      loaders.grub
      templatesInitrd
    ];

    consumers.modules = [
      loaders.none
      consumersClient
    ];
    consumers-initrd.modules = [
      loaders.grub
      initrdNetwork
      consumersInitrd
    ];

    # The offline cache: stage 2 units get the flags and systemd's
    # systemd-creds, the stage-1 fetch none of them.
    offline-cache.modules = [
      loaders.grub
      initrdNetwork
      (clientWith {
        enableInitrd = true;
        refreshInterval = "15min";
        offlineCache = {
          enable = true;
          after = 12;
          maxAge = 86400;
        };
      })
    ];
    offline-cache-refused = {
      modules = [
        loaders.none
        (clientWith {
          timeout = 10;
          offlineCache = {
            enable = true;
            after = 10;
          };
        })
      ];
      toplevel = false;
    };
    consumers-no-interval = {
      modules = [
        loaders.none
        actionsNoInterval
      ];
      toplevel = false;
    };
    consumers-start-units = {
      modules = [
        loaders.none
        consumersClient
        { netsecrets.client.refreshStartsUnits = true; }
      ];
      toplevel = false;
    };
    # No change action anywhere, no refreshInterval: no refresh at all.
    no-actions = {
      modules = [
        loaders.none
        (clientWith { })
        { secrets.db-password.requiredBy = [ "other.service" ]; }
      ];
      toplevel = false;
    };

    # Refused configurations and warnings: options and assertions only.
    consumer-refused = {
      modules = [
        loaders.none
        (clientWith { request_secrets = [ "a" "b" "c" ]; })
        {
          secrets.a.writeFile = false;
          secrets.b.credential = true;
          secrets.c.initrdRequiredBy = [ "unlock.service" ];
        }
      ];
      toplevel = false;
    };
    initrd-none-files = {
      modules = [
        loaders.none
        initrdFiles
      ];
      toplevel = false;
    };
    # The seed's client with enableInitrd = true on a machine without a
    # boot loader: its encryptionKeyFile cannot reach stage 1.
    seed-client-initrd-none = {
      modules = [
        loaders.none
        initrdNetwork
        seedClient
        { netsecrets.client.enableInitrd = lib.mkForce true; }
      ];
      toplevel = false;
    };
    prompt-none-key-file = {
      modules = [
        loaders.none
        promptKeyFile
      ];
      toplevel = false;
    };
    prompt-with-password = {
      modules = [
        loaders.none
        promptOnly
        {
          netsecrets.client.password = "typed-anyway";
          netsecrets.client.passwordFile = "/run/agenix/pw";
        }
      ];
      toplevel = false;
    };
    client-password-and-file = {
      modules = [ (clientWith { password = "both-set"; }) ];
      toplevel = false;
    };
    client-no-server = {
      modules = [ (clientWith { server = null; }) ];
      toplevel = false;
    };
    client-no-password = {
      modules = [ (clientWith { passwordFile = null; }) ];
      toplevel = false;
    };
    client-stray-secret = {
      modules = [
        (clientWith { })
        { secrets.b.owner = "root"; }
      ];
      toplevel = false;
    };
    initrd-no-systemd = {
      modules = [
        (clientWith { enableInitrd = true; })
        { boot.initrd.systemd.enable = false; }
      ];
      toplevel = false;
    };
    initrd-no-network = {
      modules = [
        loaders.grub
        (clientWith { enableInitrd = true; })
        { boot.initrd.systemd.enable = true; }
      ];
      toplevel = false;
    };
    template-unrequested = {
      modules = [ (templateWith { content = "a=${import (repo + "/nix/modules/placeholder.nix") "other"}"; }) ];
      toplevel = false;
    };
    template-cut = {
      modules = [ (templateWith { content = "a=<netsecrets:db-password:0123>"; }) ];
      toplevel = false;
    };
    template-both = {
      modules = [
        (templateWith {
          content = "x";
          file = "/etc/x.tpl";
        })
      ];
      toplevel = false;
    };
    template-initrd-off = {
      modules = [
        (templateWith {
          content = "x";
          initrd = true;
          path = "/etc/x.conf";
        })
      ];
      toplevel = false;
    };
    template-no-context = {
      modules = [
        (
          { pkgs, ... }:
          {
            imports = [ (templateWith { file = builtins.unsafeDiscardStringContext "${pkgs.writeText "t" "x"}"; }) ];
          }
        )
      ];
      toplevel = false;
    };
    template-credential-only = {
      modules = [
        (templateWith { content = "x=${import (repo + "/nix/modules/placeholder.nix") "db-password"}"; })
        {
          secrets.db-password = {
            writeFile = false;
            credential = true;
          };
        }
      ];
      toplevel = false;
    };
    template-no-client = {
      modules = [
        {
          netsecrets.client.templates.t.content = "x";
        }
      ];
      toplevel = false;
    };
    server-no-password = {
      modules = [ (serverWith { password_file = null; }) ];
      toplevel = false;
    };
    server-no-secrets = {
      modules = [ (serverWith { secrets = [ ]; }) ];
      toplevel = false;
    };
    server-stray-file = {
      modules = [ (serverWith { secretFiles.other = "/run/x"; }) ];
      toplevel = false;
    };
    server-reserved-name = {
      modules = [ (serverWith { secrets = [ "netsecrets.password" ]; }) ];
      toplevel = false;
    };
    server-plaintext = {
      modules = [ (serverWith { }) ];
      toplevel = false;
    };
    # Protocol pinned both ways: a client for a server that knows only
    # protocol 1, a server that refuses protocol 1.
    protocol-pinned = {
      modules = [
        loaders.none
        (serverWith { minProtocol = 2; })
        (clientWith { protocol = 1; })
      ];
      toplevel = false;
    };
    client-protocol-2-plaintext = {
      modules = [
        (clientWith {
          insecure = true;
          protocol = 2;
        })
      ];
      toplevel = false;
    };
    disabled = {
      modules = [
        {
          netsecrets.server.enable = false;
          netsecrets.client.enable = false;
        }
      ];
      toplevel = false;
    };
  };

  # Option types: each entry evaluates one option value of a small
  # configuration; check.py knows which must be refused.
  types = {
    server-port-string = value [ (serverWith { port = "8081"; }) ] (c: c.netsecrets.server.port);
    server-port-int = value [ (serverWith { port = 8081; }) ] (c: c.netsecrets.server.port);
    server-port-default = value [ (serverWith { }) ] (c: c.netsecrets.server.port);
    client-port-string = value [ (clientWith { port = "8081"; }) ] (c: c.netsecrets.client.port);
    server-port-name = value [ (serverWith { port = "http"; }) ] (c: c.netsecrets.server.port);
    server-port-70000 = value [ (serverWith { port = 70000; }) ] (c: c.netsecrets.server.port);
    server-password-file-store = value [ (serverWith { password_file = "${builtins.storeDir}/abc-pw"; }) ] (
      c: c.netsecrets.server.password_file
    );
    server-key-file-store = value [ (serverWith { encryptionKeyFile = "${builtins.storeDir}/abc-key"; }) ] (
      c: c.netsecrets.server.encryptionKeyFile
    );
    server-secret-file-store = value [ (serverWith { secretFiles.db-password = "${builtins.storeDir}/abc-db"; }) ] (
      c: c.netsecrets.server.secretFiles
    );
    server-key-file-nix-path = value [ (serverWith { encryptionKeyFile = ./nixos.nix; }) ] (
      c: c.netsecrets.server.encryptionKeyFile
    );
    server-password-file-relative = value [ (serverWith { password_file = "relative/pw"; }) ] (
      c: c.netsecrets.server.password_file
    );
    client-key-file-store = value [ (clientWith { encryptionKeyFile = "${builtins.storeDir}/abc-key"; }) ] (
      c: c.netsecrets.client.encryptionKeyFile
    );
    client-password-file-store = value [ (clientWith { passwordFile = "${builtins.storeDir}/abc-pw"; }) ] (
      c: c.netsecrets.client.passwordFile
    );
    server-name-traversal = value [ (serverWith { secrets = [ "../etc/shadow" ]; }) ] (c: c.netsecrets.server.secrets);
    server-name-dotdot = value [ (serverWith { secrets = [ ".." ]; }) ] (c: c.netsecrets.server.secrets);
    client-name-space = value [ (clientWith { request_secrets = [ "a b" ]; }) ] (
      c: c.netsecrets.client.request_secrets
    );
    client-console-password-file-readonly = value [ { netsecrets.client.consolePasswordFile = "/run/secrets/x"; } ] (
      c: c.netsecrets.client.consolePasswordFile
    );
    client-mode-setuid = value [ (clientWith { request_secrets = [ "db-password" ]; }) { secrets.db-password.mode = "4755"; } ] (
      c: c.secrets.db-password.mode
    );
    client-mode-0440 = value [ (clientWith { request_secrets = [ "db-password" ]; }) { secrets.db-password.mode = "0440"; } ] (
      c: c.secrets.db-password.mode
    );
    template-path-store = value [ (templateWith { content = "x"; path = "${builtins.storeDir}/abc-t"; }) ] (
      c: c.netsecrets.client.templates.t.path
    );
    template-placeholder-readonly = value [ (clientWith { }) { netsecrets.placeholder.db-password = "x"; } ] (
      c: c.netsecrets.placeholder
    );
    # Only requested secrets have a placeholder (a missing attribute is no catchable error).
    template-placeholder-unrequested = value [ (clientWith { }) ] (c: c.netsecrets.placeholder ? other);
    template-path-default = value [ (templateWith { content = "x"; }) ] (c: c.netsecrets.client.templates.t.path);
    # Both spellings, both modules, to the same option.
    server-alias-passwordFile = value [
      {
        netsecrets.server = {
          enable = true;
          passwordFile = "/run/a/pw";
          secrets = [ "db-password" ];
        };
      }
    ] (c: c.netsecrets.server.password_file);
    client-alias-password_file = value [
      {
        netsecrets.client = {
          enable = true;
          server = "10.0.0.1";
          password_file = "/run/a/pw";
          insecure = true;
          request_secrets = [ "db-password" ];
        };
      }
    ] (c: c.netsecrets.client.passwordFile);
  };

  pick = attrs: if only == null then attrs else lib.filterAttrs (n: _: lib.elem n only) attrs;
  # Option descriptions that promise something checkable.
  docs =
    let
      o = (evalFull [ (clientWith { }) ]).options;
    in
    {
      clientSystemdOverrides = o.netsecrets.client.systemdOverrides.description;
    };
in
lib.mapAttrs (_: facts) (pick scenarios)
// lib.optionalAttrs (only == null || lib.elem "types" only) { inherit types; }
// lib.optionalAttrs (only == null || lib.elem "docs" only) { inherit docs; }
