# Evaluation tests of nix/modules/{server,client}.nix without nixpkgs or NixOS.
#
# Only nixpkgs' lib is needed (lib.evalModules). The NixOS options the modules
# set (systemd.services, boot.initrd.systemd.*, environment.etc, users.*, ...)
# are declared here as minimal stubs, `pkgs` is a fake with writeText and a
# fake netsecrets package, and `utils` provides escapeSystemdExecArgs with the
# same rules as nixpkgs' nixos/lib/utils.nix (JSON quoting, % -> %%, $ -> $$).
#
#   nix-instantiate --eval --strict --json tests/nix/eval.nix --arg lib 'import /path/to/nixpkgs/lib'
#
# returns { results = [ { name; ok; detail; } ... ]; units = { "<file name>" = "<unit text>"; }; }.
# tests/nix/check.sh prints the results and feeds `units` to systemd-analyze.
# The unit text mimics NixOS' rendering (lists become repeated keys, booleans
# true/false, After=/Wants=/... space-separated, WantedBy= in [Install]).
{ lib }:
let
  modules = ../../nix/modules;

  fakeStoreHash = s: builtins.substring 0 32 (builtins.hashString "sha256" s);

  # Fake derivations: attribute sets with an outPath, like the real ones as far
  # as string interpolation and lib.getExe go. The store path never contains
  # the text, only a hash of it (the real writeText puts the text in the store,
  # which is why the module warns).
  fakeDrv = name: {
    type = "derivation";
    inherit name;
    outPath = "${builtins.storeDir}/${fakeStoreHash name}-${name}";
    meta.mainProgram = "netsecrets";
  };
  fakeSystemd = fakeDrv "systemd-257";
  pkgs = {
    stdenv.hostPlatform.system = "x86_64-linux";
    # The VM tests cannot run here: return the test module itself.
    testers.runNixOSTest = test: test;
    nixfmt-rfc-style = "nixfmt";
    netsecrets = fakeDrv "netsecrets-0.1.0";
    writeText = name: text: {
      type = "derivation";
      inherit name;
      outPath = "${builtins.storeDir}/${fakeStoreHash (name + text)}-${name}";
    };
  };
  exe = "${pkgs.netsecrets}/bin/netsecrets";
  systemctl = "${fakeSystemd}/bin/systemctl";

  # Same rules as nixpkgs' utils.escapeSystemdExecArg(s).
  utils = rec {
    escapeSystemdExecArg =
      arg:
      lib.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (
        builtins.toJSON (if builtins.isString arg then arg else toString arg)
      );
    escapeSystemdExecArgs = lib.concatMapStringsSep " " escapeSystemdExecArg;
  };

  # Stub declarations of the NixOS options the modules define.
  unitType = lib.types.submodule {
    options = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = true;
      };
      description = lib.mkOption {
        type = lib.types.str;
        default = "";
      };
    }
    // lib.genAttrs [ "wantedBy" "requiredBy" "after" "before" "wants" "requires" "conflicts" "bindsTo" "partOf" ] (
      _:
      lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
      }
    )
    // lib.genAttrs [ "unitConfig" "serviceConfig" "environment" ] (
      _:
      lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = { };
      }
    );
  };
  anyAttrs = lib.mkOption {
    type = lib.types.attrsOf lib.types.anything;
    default = { };
  };
  stubs = {
    options = {
      assertions = lib.mkOption {
        type = lib.types.listOf lib.types.unspecified;
        default = [ ];
      };
      warnings = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
      };
      systemd.package = lib.mkOption {
        type = lib.types.unspecified;
        default = fakeSystemd;
      };
      systemd.services = lib.mkOption {
        type = lib.types.attrsOf unitType;
        default = { };
      };
      systemd.tmpfiles.rules = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
      };
      boot.initrd.network.enable = lib.mkOption {
        type = lib.types.bool;
        default = false;
      };
      boot.initrd.secrets = lib.mkOption {
        type = lib.types.attrsOf (lib.types.nullOr lib.types.unspecified);
        default = { };
      };
      boot.initrd.systemd = {
        enable = lib.mkOption {
          type = lib.types.bool;
          default = false;
        };
        network.enable = lib.mkOption {
          type = lib.types.bool;
          default = false;
        };
        package = lib.mkOption {
          type = lib.types.unspecified;
          default = fakeSystemd;
        };
        services = lib.mkOption {
          type = lib.types.attrsOf unitType;
          default = { };
        };
        storePaths = lib.mkOption {
          type = lib.types.listOf lib.types.unspecified;
          default = [ ];
        };
      };
      environment.etc = lib.mkOption {
        type = lib.types.attrsOf (
          lib.types.submodule {
            options.text = lib.mkOption {
              type = lib.types.nullOr lib.types.str;
              default = null;
            };
            options.source = lib.mkOption {
              type = lib.types.nullOr lib.types.unspecified;
              default = null;
            };
          }
        );
        default = { };
      };
      users.users = lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = { };
      };
      users.groups = anyAttrs;
      networking.firewall.allowedTCPPorts = lib.mkOption {
        type = lib.types.listOf lib.types.port;
        default = [ ];
      };
    };
  };

  eval =
    config:
    (lib.evalModules {
      specialArgs = { inherit pkgs utils; };
      modules = [
        stubs
        (modules + "/default.nix")
        config
      ];
    }).config;

  # Everything a NixOS system would render from the config (units, files,
  # users, initrd), i.e. the config minus the module's own options.
  rendered = c: builtins.toJSON (removeAttrs c [ "netsecrets" "secrets" "_module" ]);

  # The test secrets: none of them may appear in anything rendered.
  secretStrings = [
    "hunter2"
    "my-aes-key"
    "s3cr3t-value"
    "lit-key"
  ];
  leaks = c: lib.filter (s: lib.hasInfix s (rendered c)) secretStrings;

  # Does evaluating `v` (deeply) fail?
  fails = v: !(builtins.tryEval (builtins.deepSeq v v)).success;

  failedAssertions = c: map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  hasWarning = c: sub: lib.any (w: lib.hasInfix sub w) c.warnings;
  hasAssertion = c: sub: lib.any (m: lib.hasInfix sub m) (failedAssertions c);

  svc = c: c.systemd.services;
  isvc = c: c.boot.initrd.systemd.services;
  daemon = c: (svc c).netsecrets-daemon;
  exec = u: u.serviceConfig.ExecStart;

  # flake.nix's outputs with a fake nixpkgs input (lib is real; the package
  # is a fake derivation): its nixosModules are evaluated like the files.
  flakeNetsecrets = fakeDrv "netsecrets-from-flake-0.1.0";
  flake =
    let
      fakeNixpkgs = {
        inherit lib;
        legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (_: pkgs // {
          pkgsStatic.callPackage = _: _: flakeNetsecrets;
        });
      };
      outputs = (import ../../flake.nix).outputs { self = outputs; nixpkgs = fakeNixpkgs; };
    in
    outputs;
  evalFlake =
    modules: config:
    (lib.evalModules {
      specialArgs = { inherit pkgs utils; };
      modules = [ stubs config ] ++ modules;
    }).config;
  flakeBoth = evalFlake [ flake.nixosModules.default flake.nixosModules.server flake.nixosModules.client ] {
    netsecrets.server = {
      enable = true;
      password_file = "/run/keys/pw";
      secrets = [ "db-password" ];
    };
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      passwordFile = "/run/keys/pw";
      insecure = true;
      request_secrets = [ "db-password" ];
    };
  };

  # ---- configurations -----------------------------------------------------

  # The seed's server example, verbatim.
  seedServer = eval {
    netsecrets.server = {
      enable = true;
      ip = "10.0.0.1";
      port = "8081";
      password = "hunter2";
      password_file = "";
      secrets = [
        "db-password"
        "api-key"
      ];
      authorized_ips = [ "10.0.0.0/24" ];
      encryptionKey = "my-aes-key";
      encryptionKeyFile = "";
      insecure = false;
      verbose = false;
      systemdOverrides = { };
    };
  };

  fileServer = eval {
    netsecrets.server = {
      enable = true;
      port = 8081;
      password_file = "/run/agenix/netsecrets-password";
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
      encryptionKey = "lit-key";
      encryptionKeyFile = "/run/agenix/netsecrets-key";
      verbose = true;
      openFirewall = true;
      systemdOverrides = {
        RestartSec = "30s";
        ProtectSystem = "full";
      };
    };
  };

  # A typical production server: files for everything, no overrides. This is
  # the unit check.sh scores with systemd-analyze security.
  analysedServer = eval {
    netsecrets.server = {
      enable = true;
      ip = "10.0.0.1";
      port = 8081;
      password_file = "/run/agenix/netsecrets-password";
      secrets = [
        "db-password"
        "api-key"
      ];
      authorized_ips = [ "10.0.0.0/24" ];
      encryptionKeyFile = "/run/agenix/netsecrets-key";
    };
  };

  lowPortServer = eval {
    netsecrets.server = {
      enable = true;
      port = 443;
      password_file = "/run/keys/pw";
      secrets = [ "x" ];
      insecure = true;
      encryptionKeyFile = "/run/keys/key";
    };
  };

  serverWith = extra: eval {
    netsecrets.server = {
      enable = true;
      password_file = "/run/keys/pw";
      secrets = [ "db-password" ];
    }
    // extra;
  };

  # The seed's client example, verbatim (plus the consumer example).
  seedClient = eval (
    { config, ... }:
    {
      netsecrets.client = {
        enable = true;
        server = "10.0.0.1";
        port = 8081;
        password = "hunter2";
        encryptionKey = "my-aes-key";
        encryptionKeyFile = "/run/secrets/enc-key";
        request_secrets = [
          "db-password"
          "api-key"
        ];
        fallbacks = [ "10.0.0.2" ];
        insecure = false;
        verbose = false;
        enableInitrd = false;
        enableInitrdPassword = false;
        systemdOverrides = { };
        systemdInitrdOverrides = { };
      };
      environment.etc."myapp/db.conf".source = config.secrets.db-password.file;
    }
  );

  clientWith = extra: eval {
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      passwordFile = "/run/agenix/pw";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [
        "db-password"
        "api-key"
      ];
    }
    // extra;
  };

  ownedClient = eval {
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      passwordFile = "/run/agenix/pw";
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
  };

  initrdClient = eval {
    boot.initrd.systemd.enable = true;
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      port = "8081";
      passwordFile = "/run/agenix/pw";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [
        "luks-key"
        "api-key"
      ];
      enableInitrd = true;
      timeout = 120;
      systemdInitrdOverrides.TimeoutStartSec = "10min";
    };
  };

  promptClient = eval {
    boot.initrd.systemd.enable = true;
    boot.initrd.network.enable = true;
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [ "luks-key" ];
      enableInitrd = true;
      enableInitrdPassword = true;
    };
  };

  noSystemdInitrd = eval {
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      passwordFile = "/run/agenix/pw";
      insecure = true;
      request_secrets = [ "x" ];
      enableInitrd = true;
    };
  };

  # ---- tests ----------------------------------------------------------------

  t = name: ok: detail: { inherit name ok detail; };
  check =
    name: thunk:
    let
      r = builtins.tryEval (builtins.deepSeq thunk thunk);
    in
    t name (r.success && r.value == true) (
      if !r.success then "evaluation failed" else if r.value == true then "" else toString r.value
    );
  # eq: pass, or say what differs.
  eq = a: b: if a == b then true else "expected ${builtins.toJSON b}, got ${builtins.toJSON a}";
  all = lib.foldl' (acc: x: if acc != true then acc else x) true;
  has = sub: s: if lib.hasInfix sub s then true else "missing ${builtins.toJSON sub} in ${s}";
  hasNot = sub: s: if !lib.hasInfix sub s then true else "unexpected ${builtins.toJSON sub} in ${s}";
  elem = x: l: if lib.elem x l then true else "missing ${builtins.toJSON x} in ${builtins.toJSON l}";

  serverSeedCfg = seedServer.netsecrets.server;

  tests = [
    # -- the harness itself: a false or failing check must not pass
    (t "harness: a false check fails, a throwing check fails, a true check passes" (
      !(check "x" false).ok && !(check "y" (throw "boom")).ok && (check "z" true).ok
    ) "")

    # -- flake outputs
    (check "flake: nixosModules.{server,client,default}, imported together, default to the flake's package" (
      all [
        (eq (lib.sort lib.lessThan (lib.attrNames flake.nixosModules)) [ "client" "default" "server" ])
        (has "${flakeNetsecrets}/bin/netsecrets" (exec (daemon flakeBoth)))
        (has "${flakeNetsecrets}/bin/netsecrets" (exec (svc flakeBoth).netsecrets-secret-db-password))
        (eq (failedAssertions flakeBoth) [ ])
      ]
    ))
    (check "flake: packages.<system>.{netsecrets,default}, overlays.default, checks, formatter" (
      all [
        (eq flake.packages.x86_64-linux.netsecrets flakeNetsecrets)
        (eq flake.packages.x86_64-linux.default flakeNetsecrets)
        (eq (lib.attrNames flake.packages) [ "aarch64-linux" "x86_64-linux" ])
        (eq (builtins.isFunction flake.overlays.default) true)
        (eq (lib.attrNames flake.checks.x86_64-linux) [
          "initrd-fetch"
          "initrd-password-prompt"
          "key-mismatch"
          "package"
          "server-client"
          "unauthorized-client"
        ])
        # Each VM test is a test module with nodes and a testScript.
        (all (map (n: eq (lib.attrNames (builtins.removeAttrs flake.checks.x86_64-linux.${n} [ "defaults" ])) [ "name" "nodes" "testScript" ]) [
          "initrd-fetch"
          "initrd-password-prompt"
          "key-mismatch"
          "server-client"
          "unauthorized-client"
        ]))
        (eq flake.formatter.x86_64-linux "nixfmt")
      ]
    ))

    # -- options and types
    (check "server: the seed's options exist with the seed's names" (
      eq (lib.sort lib.lessThan (
        lib.filter (n: lib.elem n [
          "enable" "ip" "port" "password" "password_file" "secrets" "authorized_ips"
          "encryptionKey" "encryptionKeyFile" "insecure" "verbose" "systemdOverrides"
          "package" "openFirewall"
        ]) (lib.attrNames serverSeedCfg)
      )) (lib.sort lib.lessThan [
        "enable" "ip" "port" "password" "password_file" "secrets" "authorized_ips"
        "encryptionKey" "encryptionKeyFile" "insecure" "verbose" "systemdOverrides"
        "package" "openFirewall"
      ])
    ))
    (check "client: the seed's options exist with the seed's names" (
      all (map (n: elem n (lib.attrNames seedClient.netsecrets.client)) [
        "enable" "server" "port" "password" "passwordFile" "encryptionKey" "encryptionKeyFile"
        "request_secrets" "fallbacks" "insecure" "verbose" "enableInitrd" "enableInitrdPassword"
        "systemdOverrides" "systemdInitrdOverrides" "package"
      ])
    ))
    (check "server port \"8081\" (string) becomes 8081" (eq serverSeedCfg.port 8081))
    (check "server port 8081 (int) is accepted" (eq fileServer.netsecrets.server.port 8081))
    (check "client port \"8081\" (string) and 8081 (int) are accepted" (
      all [ (eq initrdClient.netsecrets.client.port 8081) (eq seedClient.netsecrets.client.port 8081) ]
    ))
    (check "port \"http\" and 70000 are rejected" (
      all [
        (fails (serverWith { port = "http"; }).netsecrets.server.port)
        (fails (serverWith { port = 70000; }).netsecrets.server.port)
      ]
    ))
    (check "default port is 8080" (eq (serverWith { }).netsecrets.server.port 8080))
    (check "key/password file options reject Nix store paths and Nix path values" (
      all [
        (fails (serverWith { password_file = "${builtins.storeDir}/abc-pw"; }).netsecrets.server.password_file)
        (fails (serverWith { encryptionKeyFile = "${builtins.storeDir}/abc-key"; }).netsecrets.server.encryptionKeyFile)
        (fails (serverWith { secretFiles.db-password = "${builtins.storeDir}/abc-db"; }).netsecrets.server.secretFiles)
        (fails (serverWith { encryptionKeyFile = ./eval.nix; }).netsecrets.server.encryptionKeyFile)
        (fails (serverWith { password_file = "relative/pw"; }).netsecrets.server.password_file)
        (fails (clientWith { encryptionKeyFile = "${builtins.storeDir}/abc-key"; }).netsecrets.client.encryptionKeyFile)
        (fails (clientWith { passwordFile = "${builtins.storeDir}/abc-pw"; }).netsecrets.client.passwordFile)
      ]
    ))
    (check "invalid secret names are rejected" (
      all [
        (fails (serverWith { secrets = [ "../etc/shadow" ]; }).netsecrets.server.secrets)
        (fails (serverWith { secrets = [ ".." ]; }).netsecrets.server.secrets)
        (fails (clientWith { request_secrets = [ "a b" ]; }).netsecrets.client.request_secrets)
      ]
    ))

    # -- server unit
    (check "server: ExecStart passes every secret as a credential path" (
      all [
        (has ''${builtins.toJSON exe} "receive" "--server" "10.0.0.1" "--port" "8081"'' (exec (daemon seedServer)))
        (has ''"--password-file" %d/netsecrets.password'' (exec (daemon seedServer)))
        (has ''"--secret-file" db-password=%d/db-password "--secret-file" api-key=%d/api-key'' (exec (daemon seedServer)))
        (has ''"--authorized-ips" "10.0.0.0/24"'' (exec (daemon seedServer)))
        (has ''"--encryption-key-file" %d/netsecrets.encryption-key'' (exec (daemon seedServer)))
        (hasNot "--verbose" (exec (daemon seedServer)))
        (hasNot "--insecure" (exec (daemon seedServer)))
      ]
    ))
    (check "server: LoadCredential takes secrets from secretFiles, else secretsDir/<name>" (
      eq (daemon fileServer).serviceConfig.LoadCredential [
        "netsecrets.password:/run/agenix/netsecrets-password"
        "db-password:/run/agenix/db"
        "api-key:/run/agenix/api-key"
        "netsecrets.encryption-key:/run/agenix/netsecrets-key"
      ]
    ))
    (check "server: default secretsDir is /run/secrets (sops-nix's layout)" (
      elem "db-password:/run/secrets/db-password" (daemon seedServer).serviceConfig.LoadCredential
    ))
    (check "server: encryptionKeyFile wins over encryptionKey (no store copy of the key)" (
      all [
        (elem "netsecrets.encryption-key:/run/agenix/netsecrets-key" (daemon fileServer).serviceConfig.LoadCredential)
        (eq (hasWarning fileServer "encryptionKey is set") false)
      ]
    ))
    (check "server: literal password/key (seed) are loaded from a store file and warned about" (
      all [
        (eq (lib.length (lib.filter (lib.hasPrefix "netsecrets.password:${builtins.storeDir}/") (daemon seedServer).serviceConfig.LoadCredential)) 1)
        (eq (lib.length (lib.filter (lib.hasPrefix "netsecrets.encryption-key:${builtins.storeDir}/") (daemon seedServer).serviceConfig.LoadCredential)) 1)
        (eq (hasWarning seedServer "netsecrets.server.password is set") true)
        (eq (hasWarning seedServer "netsecrets.server.encryptionKey is set") true)
        (eq (hasWarning seedServer "world-readable") true)
      ]
    ))
    (check "server: no secret, password or key string in any rendered unit, file or environment" (
      all [ (eq (leaks seedServer) [ ]) (eq (leaks fileServer) [ ]) ]
    ))
    (check "server: nothing secret in Environment=, ExecStart only has paths" (
      all [
        (eq ((daemon seedServer).environment or { }) { })
        (eq ((daemon seedServer).serviceConfig.Environment or null) null)
        (hasNot "hunter2" (exec (daemon seedServer)))
      ]
    ))
    (check "server: after+wants network-online.target, wanted by multi-user.target, Restart=on-failure" (
      all [
        (elem "network-online.target" (daemon seedServer).after)
        (elem "network-online.target" (daemon seedServer).wants)
        (elem "multi-user.target" (daemon seedServer).wantedBy)
        (eq (daemon seedServer).serviceConfig.Restart "on-failure")
      ]
    ))
    (check "server: hardening (unprivileged user, strict, no capabilities, address families, syscall filter)" (
      let
        s = (daemon seedServer).serviceConfig;
      in
      all [
        (eq s.User "netsecrets")
        (eq s.ProtectSystem "strict")
        (eq s.CapabilityBoundingSet [ "" ])
        (eq s.AmbientCapabilities [ "" ])
        (eq s.RestrictAddressFamilies [ "AF_INET" "AF_INET6" ])
        (elem "@system-service" s.SystemCallFilter)
        (eq s.NoNewPrivileges true)
        (eq s.PrivateUsers true)
        (eq s.PrivateDevices true)
        (eq s.MemoryDenyWriteExecute true)
      ]
    ))
    (check "server: authorized_ips mirrored into IPAddressAllow with IPAddressDeny=any" (
      all [
        (eq (daemon fileServer).serviceConfig.IPAddressDeny "any")
        (eq (daemon fileServer).serviceConfig.IPAddressAllow [ "10.0.0.0/24" "fd00::/64" ])
        (has ''"--authorized-ips" "10.0.0.0/24,fd00::/64"'' (exec (daemon fileServer)))
        (eq ((daemon (serverWith { })).serviceConfig.IPAddressDeny or null) null)
      ]
    ))
    (check "server: port < 1024 gets CAP_NET_BIND_SERVICE only" (
      let
        s = (daemon lowPortServer).serviceConfig;
      in
      all [
        (eq s.CapabilityBoundingSet [ "CAP_NET_BIND_SERVICE" ])
        (eq s.AmbientCapabilities [ "CAP_NET_BIND_SERVICE" ])
        (eq s.PrivateUsers false)
      ]
    ))
    (check "server: insecure drops the key and passes --insecure" (
      all [
        (has "--insecure" (exec (daemon lowPortServer)))
        (hasNot "--encryption-key" (exec (daemon lowPortServer)))
        (eq (lib.length (daemon lowPortServer).serviceConfig.LoadCredential) 2)
      ]
    ))
    (check "server: systemdOverrides replace keys in serviceConfig; verbose passes --verbose" (
      all [
        (eq (daemon fileServer).serviceConfig.RestartSec "30s")
        (eq (daemon fileServer).serviceConfig.ProtectSystem "full")
        (has "--verbose" (exec (daemon fileServer)))
      ]
    ))
    (check "server: user and group netsecrets" (
      all [
        (eq seedServer.users.users.netsecrets.group "netsecrets")
        (eq seedServer.users.users.netsecrets.isSystemUser true)
        (eq (seedServer.users.groups ? netsecrets) true)
      ]
    ))
    (check "server: /etc/netsecrets/config.json has the non-secret settings only" (
      eq (builtins.fromJSON seedServer.environment.etc."netsecrets/config.json".text) {
        ip = "10.0.0.1";
        port = 8081;
        secrets = [ "db-password" "api-key" ];
        authorized_ips = [ "10.0.0.0/24" ];
        insecure = false;
        verbose = false;
        encryption = true;
        password_file = null;
        encryption_key_file = null;
        secret_files = {
          db-password = "/run/secrets/db-password";
          api-key = "/run/secrets/api-key";
        };
      }
    ))
    (check "server: openFirewall is opt-in" (
      all [
        (eq seedServer.networking.firewall.allowedTCPPorts [ ])
        (eq fileServer.networking.firewall.allowedTCPPorts [ 8081 ])
      ]
    ))
    (check "server: assertions name the option to set" (
      all [
        (eq (failedAssertions seedServer) [ ])
        (eq (hasAssertion (serverWith { password_file = null; }) "netsecrets.server.password_file") true)
        (eq (hasAssertion (serverWith { secretFiles.other = "/run/x"; }) "netsecrets.server.secretFiles.other") true)
        (eq (hasAssertion (serverWith { secrets = [ "netsecrets.password" ]; }) "reserved") true)
      ]
    ))
    (check "server: no encryption warns about plaintext" (
      eq (hasWarning (serverWith { }) "plaintext") true
    ))
    (check "server: disabled module defines nothing" (
      eq (svc (eval { netsecrets.server.enable = false; })) { }
    ))

    # -- client units
    (check "client: one fetch unit per secret; netsecrets-client wants them, runs after them, fails unless all are active" (
      let
        c = (svc seedClient).netsecrets-client;
      in
      all [
        (eq (lib.sort lib.lessThan (lib.attrNames (svc seedClient))) [
          "netsecrets-client"
          "netsecrets-secret-api-key"
          "netsecrets-secret-db-password"
        ])
        (eq c.requires [ ])
        (elem "netsecrets-secret-db-password.service" c.wants)
        (elem "netsecrets-secret-api-key.service" c.wants)
        (elem "netsecrets-secret-db-password.service" c.after)
        (elem "netsecrets-secret-api-key.service" c.after)
        (eq (exec c) ''${builtins.toJSON systemctl} "is-active" "--quiet" "netsecrets-secret-db-password.service" "netsecrets-secret-api-key.service"'')
        (elem "network-online.target" c.after)
        (elem "network-online.target" c.wants)
        (elem "multi-user.target" c.wantedBy)
        (eq c.serviceConfig.Type "oneshot")
        (eq c.serviceConfig.RemainAfterExit true)
      ]
    ))
    (check "client: each fetch runs `netsecrets send` once for its secret into /var/lib/netsecrets/<name>" (
      let
        u = (svc seedClient).netsecrets-secret-db-password;
      in
      all [
        (has ''${builtins.toJSON exe} "send" "--server" "10.0.0.1" "--port" "8081" "--fallbacks" "10.0.0.2"'' (exec u))
        (has ''"--password-file" %d/netsecrets.password "--encryption-key-file" %d/netsecrets.encryption-key'' (exec u))
        (has ''"--request_secrets" "db-password" "--file-output" "/var/lib/netsecrets/db-password" "--owner" "root" "--group" "root" "--mode" "0400"'' (exec u))
        (hasNot "api-key" (exec u))
        (elem "network-online.target" u.after)
        (elem "network-online.target" u.wants)
        (eq u.serviceConfig.Type "oneshot")
      ]
    ))
    (check "client: password/key reach the fetch only via LoadCredential; key file wins over literal key" (
      let
        lc = (svc seedClient).netsecrets-secret-db-password.serviceConfig.LoadCredential;
      in
      all [
        (eq (lib.length lc) 2)
        (eq (lib.hasPrefix "netsecrets.password:${builtins.storeDir}/" (lib.head lc)) true)
        (eq (lib.last lc) "netsecrets.encryption-key:/run/secrets/enc-key")
      ]
    ))
    (check "client: literal password warns; no secret string in anything rendered" (
      all [
        (eq (hasWarning seedClient "netsecrets.client.password is set") true)
        (eq (hasWarning seedClient "netsecrets.client.encryptionKey is set") false)
        (eq (leaks seedClient) [ ])
        (eq (leaks initrdClient) [ ])
        (eq (leaks promptClient) [ ])
      ]
    ))
    (check "client: secrets.<name>.file and the consumer example" (
      all [
        (eq seedClient.secrets.db-password.file "/var/lib/netsecrets/db-password")
        (eq seedClient.secrets.api-key.file "/var/lib/netsecrets/api-key")
        (eq seedClient.environment.etc."myapp/db.conf".source "/var/lib/netsecrets/db-password")
        (eq seedClient.secrets.db-password.initrdFile "/run/netsecrets/db-password")
      ]
    ))
    (check "client: /var/lib/netsecrets owned by root and a tmpfiles rule per secret" (
      eq seedClient.systemd.tmpfiles.rules [
        "d /var/lib/netsecrets 0751 root root -"
        "z /var/lib/netsecrets/db-password 0400 root root -"
        "z /var/lib/netsecrets/api-key 0400 root root -"
      ]
    ))
    (check "client: per-secret owner/group/mode reach tmpfiles and the fetch" (
      let
        u = (svc ownedClient).netsecrets-secret-db-password;
      in
      all [
        (has ''"--owner" "postgres" "--group" "postgres" "--mode" "0440"'' (exec u))
        (elem "z /var/lib/netsecrets/db-password 0440 postgres postgres -" ownedClient.systemd.tmpfiles.rules)
        (eq u.serviceConfig.TimeoutStartSec "5min")
      ]
    ))
    (check "client: arguments are escaped for systemd (% and $), odd names get valid unit names" (
      let
        u = (svc ownedClient)."netsecrets-secret-a\\x40b\\x2bc";
      in
      all [
        (has ''"--fallbacks" "10.0.0.2,odd%%host$$name"'' (exec u))
        (has ''"--request_secrets" "a@b+c" "--file-output" "/var/lib/netsecrets/a@b+c"'' (exec u))
        (elem "netsecrets-secret-a\\x40b\\x2bc.service" (svc ownedClient).netsecrets-client.wants)
        (has "--insecure" (exec u))
        (hasNot "--encryption-key" (exec u))
      ]
    ))
    (check "client: fetch units are sandboxed (read-only system but /var/lib/netsecrets)" (
      let
        s = (svc seedClient).netsecrets-secret-db-password.serviceConfig;
      in
      all [
        (eq s.ProtectSystem "strict")
        (eq s.ReadWritePaths [ "/var/lib/netsecrets" ])
        (eq s.RestrictAddressFamilies [ "AF_INET" "AF_INET6" ])
        (eq s.NoNewPrivileges true)
      ]
    ))
    (check "client: assertions name the option to set" (
      all [
        (eq (failedAssertions seedClient) [ ])
        (eq (hasAssertion (clientWith { server = null; }) "netsecrets.client.server") true)
        (eq (hasAssertion (clientWith { passwordFile = null; }) "netsecrets.client.passwordFile") true)
        (eq (hasAssertion ownedClient "") false)
        (eq (hasAssertion (eval {
          netsecrets.client = {
            enable = true;
            server = "h";
            passwordFile = "/p";
            insecure = true;
            request_secrets = [ "a" ];
          };
          secrets.b.owner = "x";
        }) "secrets.b") true)
      ]
    ))

    # -- initrd
    (check "initrd: no stage-1 units unless enabled" (
      all [
        (eq (isvc seedClient) { })
        (eq seedClient.boot.initrd.systemd.storePaths [ ])
        (eq seedClient.boot.initrd.secrets { })
      ]
    ))
    (check "initrd: enableInitrd without boot.initrd.systemd.enable fails an assertion" (
      eq (hasAssertion noSystemdInitrd "boot.initrd.systemd.enable") true
    ))
    (check "initrd: warning when the initrd has no network, none when it has" (
      all [
        (eq (hasWarning initrdClient "initrd has no network") true)
        (eq (hasWarning promptClient "initrd has no network") false)
      ]
    ))
    (check "initrd: fetch units in stage 1 write /run/netsecrets/<name>, static binary in storePaths" (
      let
        u = (isvc initrdClient).netsecrets-secret-luks-key;
      in
      all [
        (has ''"--request_secrets" "luks-key" "--file-output" "/run/netsecrets/luks-key" "--mode" "0400"'' (exec u))
        (has ''"--password-file" "/etc/netsecrets/initrd-password" "--encryption-key-file" "/etc/netsecrets/initrd-key"'' (exec u))
        (has ''"--timeout" "120"'' (exec u))
        (eq initrdClient.boot.initrd.systemd.storePaths [ exe systemctl ])
        (eq u.serviceConfig.RuntimeDirectory "netsecrets")
        (eq u.serviceConfig.RuntimeDirectoryPreserve true)
        (eq u.serviceConfig.TimeoutStartSec "10min")
      ]
    ))
    (check "initrd: ordering after network-online.target, before cryptsetup-pre.target and initrd.target, no default dependencies" (
      let
        u = (isvc initrdClient).netsecrets-secret-luks-key;
        c = (isvc initrdClient).netsecrets-client;
      in
      all [
        (eq u.unitConfig.DefaultDependencies false)
        (elem "network-online.target" u.after)
        (elem "network-online.target" u.wants)
        (elem "cryptsetup-pre.target" u.before)
        (elem "initrd.target" u.before)
        (elem "shutdown.target" u.conflicts)
        (elem "netsecrets-secret-luks-key.service" c.wants)
        (elem "netsecrets-secret-api-key.service" c.after)
        (eq (exec c) ''${builtins.toJSON systemctl} "is-active" "--quiet" "netsecrets-secret-luks-key.service" "netsecrets-secret-api-key.service"'')
        (elem "initrd.target" c.wantedBy)
        (elem "cryptsetup-pre.target" c.before)
        (eq c.unitConfig.DefaultDependencies false)
      ]
    ))
    (check "initrd: key and password file reach stage 1 via boot.initrd.secrets (not the store)" (
      eq initrdClient.boot.initrd.secrets {
        "/etc/netsecrets/initrd-key" = "/run/agenix/key";
        "/etc/netsecrets/initrd-password" = "/run/agenix/pw";
      }
    ))
    (check "initrd password: prompt -> copy -> fetch, with the binary only" (
      let
        s = isvc promptClient;
        ask = s.netsecrets-ask-password;
        copy = s.netsecrets-copy-password;
        fetch = s.netsecrets-secret-luks-key;
      in
      all [
        (eq (exec ask) ''${builtins.toJSON exe} "ask-password" "--tty" "/dev/console" "--output" "/run/netsecrets-password"'')
        (eq (exec copy) ''${builtins.toJSON exe} "copy-password" "--from" "/run/netsecrets-password" "--to" "/run/secrets/netsecrets-password"'')
        (elem "netsecrets-copy-password.service" ask.before)
        (elem "netsecrets-ask-password.service" copy.after)
        (elem "netsecrets-ask-password.service" copy.requires)
        (elem "netsecrets-ask-password.service" fetch.after)
        (elem "netsecrets-copy-password.service" fetch.after)
        (elem "netsecrets-secret-luks-key.service" copy.before)
        (elem "initrd.target" ask.wantedBy)
        (eq ask.unitConfig.DefaultDependencies false)
        (eq ask.serviceConfig.TTYPath "/dev/console")
        (has ''"--password-file" "/run/netsecrets-password"'' (exec fetch))
      ]
    ))
    (check "initrd password: stage 2 reads /run/secrets/netsecrets-password; no password in the initrd image" (
      all [
        (elem "netsecrets.password:/run/secrets/netsecrets-password"
          (svc promptClient).netsecrets-secret-luks-key.serviceConfig.LoadCredential)
        (eq promptClient.boot.initrd.secrets { "/etc/netsecrets/initrd-key" = "/run/agenix/key"; })
        (eq (hasAssertion promptClient "") false)
      ]
    ))
    (check "initrd: no prompt units without enableInitrdPassword" (
      all [
        (eq ((isvc initrdClient) ? netsecrets-ask-password) false)
        (eq ((isvc initrdClient) ? netsecrets-copy-password) false)
      ]
    ))
    (check "no unit uses a shell (no script/preStart; every ExecStart runs netsecrets or systemctl)" (
      all (
        map (u: if lib.hasPrefix (builtins.toJSON exe) (exec u) || lib.hasPrefix (builtins.toJSON systemctl) (exec u) then true else exec u) (
          lib.filter (u: u.serviceConfig ? ExecStart) (
            lib.attrValues (svc seedServer) ++ lib.attrValues (svc promptClient) ++ lib.attrValues (isvc promptClient)
          )
        )
      )
    ))
  ];

  # ---- rendering to unit files (for systemd-analyze) -------------------------

  toValue = v: if v == true then "true" else if v == false then "false" else toString v;
  renderAttrs =
    attrs:
    lib.concatStrings (
      lib.mapAttrsToList (
        k: v: lib.concatMapStrings (x: "${k}=${toValue x}\n") (if builtins.isList v then v else [ v ])
      ) attrs
    );
  renderUnit =
    u:
    let
      deps = lib.filterAttrs (_: v: v != [ ]) {
        After = u.after;
        Before = u.before;
        Wants = u.wants;
        Requires = u.requires;
        Conflicts = u.conflicts;
      };
    in
    "[Unit]\nDescription=${u.description}\n"
    + renderAttrs (lib.mapAttrs (_: lib.concatStringsSep " ") deps)
    + renderAttrs u.unitConfig
    + "\n[Service]\n"
    + renderAttrs u.serviceConfig
    + lib.optionalString (u.wantedBy != [ ]) "\n[Install]\nWantedBy=${lib.concatStringsSep " " u.wantedBy}\n";
  renderAll =
    prefix: services:
    lib.mapAttrs' (n: u: lib.nameValuePair "${prefix}/${n}.service" (renderUnit u)) services;
in
{
  results = tests;
  # The fake store paths used in ExecStart=; check.sh swaps them for real
  # executables before running systemd-analyze verify.
  fakeExecutables = { inherit exe systemctl; };
  units =
    renderAll "server" (svc analysedServer)
    // renderAll "server-overrides" (svc fileServer)
    // renderAll "server-seed" (svc seedServer)
    // renderAll "server-lowport" (svc lowPortServer)
    // renderAll "client" (svc seedClient)
    // renderAll "initrd" (isvc promptClient);
}
