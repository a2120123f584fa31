# The flake's outputs, evaluated without flakes: Debian's Nix 2.8 cannot
# evaluate this flake purely (lib.fileset on an old Nix), so this file calls
# `outputs` of ../../flake.nix itself, with `self` tied to the result and
# `nixpkgs` an imitation of the nixpkgs flake built from a nixpkgs tree
# (`lib` and `legacyPackages.<system>`, the only attributes flake.nix uses).
# The tree is NixOS 24.05 here, not the release flake.nix follows; what this
# proves is that every output evaluates against 24.05's nixpkgs.
#
#   nix-instantiate --eval --strict --json tests/nixos-eval/flake.nix --arg nixpkgs <tree> -A facts \
#     [--arg checkSystems '[ "x86_64-linux" ]']
#
# `facts`: the drvPath of every check and package (null if it does not
# evaluate), and which package the flake's modules default to.
{
  nixpkgs,
  # Whose checks.<system> `facts.checks` evaluates (each system's VM tests
  # take a few GB; check.py evaluates them in separate processes).
  checkSystems ? [
    "x86_64-linux"
    "aarch64-linux"
  ],
}:
let
  flake = import ../../flake.nix;
  lib = import (nixpkgs + "/lib");
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  # A trimmed tree (../shared/nixpkgs) has no Haskell package set; see nixos.nix.
  trimmed = !builtins.pathExists (nixpkgs + "/pkgs/development/haskell-modules/hackage-packages.nix");
  overlays = lib.optional trimmed (
    _final: prev: {
      shellcheck-minimal = prev.emptyDirectory // {
        compiler = {
          meta.platforms = [ ];
        };
      };
    }
  );
  fakeNixpkgs = {
    inherit lib;
    outPath = nixpkgs;
    legacyPackages = lib.genAttrs systems (system: import nixpkgs { inherit system overlays; });
  };
  self =
    flake.outputs {
      inherit self;
      nixpkgs = fakeNixpkgs;
    }
    // {
      outPath = ../..;
    };

  try = v: let r = builtins.tryEval (builtins.deepSeq v v); in if r.success then r.value else null;

  # A NixOS system that imports only the flake's module: its package must
  # default to the flake's build (no overlay).
  withModule =
    (import (nixpkgs + "/nixos/lib/eval-config.nix") {
      system = "x86_64-linux";
      modules = [
        self.nixosModules.default
        self.nixosModules.server
        {
          nixpkgs.overlays = overlays;
          boot.loader.grub.enable = false;
          fileSystems."/".device = "/dev/vda";
          system.stateVersion = "24.05";
          netsecrets.server = {
            enable = true;
            password_file = "/run/keys/pw";
            secrets = [ "db-password" ];
            insecure = true;
          };
        }
      ];
    }).config;
in
{
  inherit self;
  facts = {
    checks = lib.genAttrs checkSystems (system: lib.mapAttrs (_: c: try c.drvPath) self.checks.${system});
    checkNames = lib.mapAttrs (_: c: lib.attrNames c) self.checks;
    packages = lib.genAttrs systems (system: try self.packages.${system}.netsecrets.drvPath);
    packageNames = lib.genAttrs systems (system: try self.packages.${system}.netsecrets.name);
    defaultIsPackage = lib.genAttrs systems (
      system: try (self.packages.${system}.default.drvPath == self.packages.${system}.netsecrets.drvPath)
    );
    nixosModules = lib.attrNames self.nixosModules;
    overlay = builtins.isFunction self.overlays.default;
    # Not evaluated: nixfmt is a Haskell package (absent from a trimmed tree).
    formatterSystems = lib.attrNames self.formatter;
    flakePackage = try "${self.packages.x86_64-linux.netsecrets}";
    moduleDaemon = try withModule.systemd.units."netsecrets-daemon.service".text;
    moduleFailedAssertions = try (map (a: a.message) (lib.filter (a: !a.assertion) withModule.assertions));
    # The client module brings the templates (nix/modules/templates.nix).
    moduleHasTemplates = try (withModule.netsecrets.client ? templates && withModule.netsecrets ? placeholder);
  };
}
