{
  description = "netsecrets: network secrets distribution for NixOS (server, client, initrd)";

  # The maintained release branch (see README.md, "Which release": the
  # package needs rustc >= 1.82, i.e. NixOS 24.11 or newer).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The static (musl) binary: no runtime dependencies, fit for the initrd.
      netsecretsFor = pkgs: pkgs.pkgsStatic.callPackage ./nix/package.nix { };

      # Module files plus this flake's package as their default, so the modules
      # work without the overlay. `key` lets the module system drop duplicates
      # (e.g. `default` and `server` both imported).
      withPackage =
        name: files:
        { pkgs, ... }:
        {
          key = "netsecrets-flake#nixosModules.${name}";
          _file = "${toString ./flake.nix}#nixosModules.${name}";
          imports = files;
          config.netsecrets.${name}.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.netsecrets;
        };
    in
    {
      packages = forAllSystems (pkgs: {
        netsecrets = netsecretsFor pkgs;
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.netsecrets;
      });

      overlays.default = final: _prev: { netsecrets = netsecretsFor final; };

      nixosModules = {
        server = withPackage "server" [ ./nix/modules/server ];
        client = withPackage "client" [
          ./nix/modules/client
          ./nix/modules/templates.nix
        ];
        default = {
          imports = [
            self.nixosModules.server
            self.nixosModules.client
          ];
        };
      };

      # NixOS VM tests (nix/vm-tests/, one file per scenario) and the package.
      checks = forAllSystems (
        pkgs:
        import ./nix/vm-tests { inherit pkgs self; }
        // {
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.netsecrets;
        }
      );

      # RFC 166 style: pkgs.nixfmt from 25.11 on (nixfmt-rfc-style is a
      # deprecated alias there and later dropped), nixfmt-rfc-style before.
      formatter = forAllSystems (
        pkgs: if lib.versionAtLeast lib.trivial.release "25.11" then pkgs.nixfmt else pkgs.nixfmt-rfc-style
      );
    };
}
