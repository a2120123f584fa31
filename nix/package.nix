# The netsecrets binary. Called from flake.nix with pkgsStatic (musl,
# statically linked), so the result has no runtime dependency at all and can
# be copied into a systemd stage-1 initrd as is.
#
# Crates come from Cargo.lock through fixed-output fetches; nothing else is
# downloaded.
{
  lib,
  rustPlatform,
}:
let
  cargoToml = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = cargoToml.package.name;
  inherit (cargoToml.package) version;

  # Only what cargo needs: a change to the Nix files, docs or initrd/ test
  # does not rebuild the binary. (.cargo/ holds only a developer alias.)
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  # The end-to-end tests (tests/*.rs) chown output files to root, which the
  # unprivileged build sandbox cannot do; they run in tests/run-all instead,
  # and the flake's checks are the NixOS VM tests of the built binary.
  doCheck = false;

  meta = {
    description = cargoToml.package.description;
    license = lib.licenses.mit;
    mainProgram = "netsecrets";
    platforms = lib.platforms.linux;
  };
}
