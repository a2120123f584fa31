# The modules against nixpkgs' lib alone, with stub NixOS options: what the
# real-NixOS evaluation (tests/nixos-eval/nixos.nix, NixOS 24.05 from ../shared)
# cannot check, namely that the modules still evaluate, and their option
# types still behave, with ANOTHER nixpkgs lib -- e.g. the lib of the release
# flake.nix follows (nixos-26.05), given to tests/nixos-eval/check.py as
# NETSECRETS_NIXPKGS_LIB. Everything about generated units, credentials,
# warnings, assertions and secrets is checked on the real evaluation.
#
# The NixOS options the modules set are declared here as minimal stubs,
# `pkgs` is a fake with writeText and a fake netsecrets package, and `utils`
# provides escapeSystemdExecArgs with nixpkgs' rules.
#
#   nix-instantiate --eval --strict --json tests/nixos-eval/eval.nix --arg lib 'import <nixpkgs lib dir>'
#
# returns { results = [ { name; ok; detail; } ... ]; }.
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
    netsecrets = fakeDrv "netsecrets-0.1.0";
    coreutils = fakeDrv "coreutils-9.5";
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
    // {
      # As NixOS: store paths whose change reloads the unit instead of restarting it.
      reloadTriggers = lib.mkOption {
        type = lib.types.listOf lib.types.unspecified;
        default = [ ];
      };
    }
    // lib.genAttrs [ "unitConfig" "serviceConfig" "environment" "socketConfig" "timerConfig" "pathConfig" ] (
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
      systemd.sockets = lib.mkOption {
        type = lib.types.attrsOf unitType;
        default = { };
      };
      systemd.paths = lib.mkOption {
        type = lib.types.attrsOf unitType;
        default = { };
      };
      systemd.timers = lib.mkOption {
        type = lib.types.attrsOf unitType;
        default = { };
      };
      # The RAM file systems (nix/modules/client/storage.nix).
      systemd.mounts = lib.mkOption {
        type = lib.types.listOf lib.types.unspecified;
        default = [ ];
      };
      systemd.tmpfiles.rules = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
      };
      boot.loader.supportsInitrdSecrets = lib.mkOption {
        type = lib.types.bool;
        default = false;
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
        sockets = lib.mkOption {
          type = lib.types.attrsOf unitType;
          default = { };
        };
        storePaths = lib.mkOption {
          type = lib.types.listOf lib.types.unspecified;
          default = [ ];
        };
        mounts = lib.mkOption {
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

  # Everything a NixOS system would render from the config.
  rendered = c: builtins.toJSON (removeAttrs c [ "netsecrets" "secrets" "_module" ]);

  failedAssertions = c: map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
  fails = v: !(builtins.tryEval (builtins.deepSeq v v)).success;

  originalServer = eval {
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

  originalClient = eval {
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
  };

  promptClient = eval {
    boot.initrd.systemd.enable = true;
    boot.initrd.network.enable = true;
    boot.loader.supportsInitrdSecrets = true;
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      password_file = "/run/agenix/pw";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [
        "luks-key"
        "a@b+c"
      ];
      enableInitrd = true;
      enableInitrdPassword = true;
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
  clientWith = extra: eval {
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      passwordFile = "/run/agenix/pw";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [ "db-password" ];
    }
    // extra;
  };

  # A template (nix/modules/templates.nix) using both secrets; one of a secret
  # that is not requested.
  placeholderOf = import (modules + "/placeholder.nix");
  templateClient = eval (
    { config, ... }:
    {
      netsecrets.client = {
        enable = true;
        server = "10.0.0.1";
        passwordFile = "/run/agenix/pw";
        insecure = true;
        request_secrets = [
          "db-password"
          "api-key"
        ];
        templates."app.conf" = {
          content = "a=${config.netsecrets.placeholder.db-password} b=${config.netsecrets.placeholder.api-key}";
          mode = "0440";
          restartUnits = [ "app.service" ];
        };
        templates.other.content = "x=${placeholderOf "other"}";
      };
    }
  );

  t = name: ok: detail: { inherit name ok detail; };
  check =
    name: thunk:
    let
      r = builtins.tryEval (builtins.deepSeq thunk thunk);
    in
    t name (r.success && r.value == true) (
      if !r.success then "evaluation failed" else if r.value == true then "" else toString r.value
    );
  eq = a: b: if a == b then true else "expected ${builtins.toJSON b}, got ${builtins.toJSON a}";
  all = lib.foldl' (acc: x: if acc != true then acc else x) true;

  tests = [
    (t "harness: a false check fails, a throwing check fails, a true check passes" (
      !(check "x" false).ok && !(check "y" (throw "boom")).ok && (check "z" true).ok
    ) "")
    (check "lib ${lib.version or "?"}: the server and client configurations users already have and a stage-1 client with the prompt evaluate completely, no failed assertion" (
      all [
        (eq (builtins.isString (rendered originalServer + rendered originalClient + rendered promptClient)) true)
        (eq (failedAssertions originalServer ++ failedAssertions originalClient ++ failedAssertions promptClient) [ ])
        (eq (lib.attrNames promptClient.boot.initrd.systemd.services) [
          "netsecrets-ask-password"
          "netsecrets-client"
          "netsecrets-secret-a\\x40b\\x2bc"
          "netsecrets-secret-luks-key"
        ])
      ]
    ))
    (check "lib ${lib.version or "?"}: ports as int or string; \"http\" and 70000 refused; default 8080" (
      all [
        (eq originalServer.netsecrets.server.port 8081)
        (eq originalClient.netsecrets.client.port 8081)
        (eq (serverWith { }).netsecrets.server.port 8080)
        (eq (fails (serverWith { port = "http"; }).netsecrets.server.port) true)
        (eq (fails (serverWith { port = 70000; }).netsecrets.server.port) true)
      ]
    ))
    (check "lib ${lib.version or "?"}: file options refuse store paths, Nix path values and relative paths; names are checked" (
      all [
        (eq (fails (serverWith { password_file = "${builtins.storeDir}/abc-pw"; }).netsecrets.server.password_file) true)
        (eq (fails (serverWith { encryptionKeyFile = ./eval.nix; }).netsecrets.server.encryptionKeyFile) true)
        (eq (fails (serverWith { password_file = "relative/pw"; }).netsecrets.server.password_file) true)
        (eq (fails (clientWith { passwordFile = "${builtins.storeDir}/abc-pw"; }).netsecrets.client.passwordFile) true)
        (eq (fails (serverWith { secrets = [ "../etc/shadow" ]; }).netsecrets.server.secrets) true)
        (eq (fails (clientWith { request_secrets = [ "a b" ]; }).netsecrets.client.request_secrets) true)
        (eq (fails (clientWith { passwordFile = "/run/a/pw"; }).netsecrets.client.passwordFile) false)
      ]
    ))
    (check "lib ${lib.version or "?"}: password_file and passwordFile on both modules; consolePasswordFile is read-only" (
      all [
        (eq promptClient.netsecrets.client.passwordFile "/run/agenix/pw")
        (eq (eval {
          netsecrets.server = {
            enable = true;
            passwordFile = "/run/a/pw";
            secrets = [ "x" ];
          };
        }).netsecrets.server.password_file "/run/a/pw")
        (eq originalClient.netsecrets.client.consolePasswordFile "/run/netsecrets-password")
        (eq (fails (eval { netsecrets.client.consolePasswordFile = "/run/secrets/x"; }).netsecrets.client.consolePasswordFile) true)
      ]
    ))
    (check "lib ${lib.version or "?"}: templates: placeholders, the render unit and its .path unit, an assertion for an unrequested secret" (
      all [
        (eq templateClient.netsecrets.placeholder.api-key (placeholderOf "api-key"))
        (eq (builtins.isString (rendered templateClient)) true)
        (eq (lib.hasInfix ''"render" "--template" "${builtins.storeDir}/'' templateClient.systemd.services."netsecrets-template-app.conf".serviceConfig.ExecStart) true)
        (eq templateClient.systemd.paths."netsecrets-template-app.conf".pathConfig.PathChanged [
          "/var/lib/netsecrets/db-password"
          "/var/lib/netsecrets/api-key"
        ])
        (eq (lib.any (lib.hasInfix ''secret "other", which is not in netsecrets.client.request_secrets'') (failedAssertions templateClient)) true)
      ]
    ))
  ];
in
{
  results = tests;
}
