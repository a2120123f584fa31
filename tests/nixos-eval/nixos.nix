# The modules inside the real NixOS module system: every scenario is a whole
# NixOS configuration built with nixos/lib/eval-config.nix of a nixpkgs tree
# (tests/nixos-eval/check.py finds it; NixOS 24.05 from ../shared/nixpkgs by
# default), so option names, unit rendering, boot.initrd.secrets and
# nixpkgs' own assertions are those of that release.
#
#   nix-instantiate --eval --strict --json tests/nixos-eval/nixos.nix --arg nixpkgs <tree> \
#     --arg only '[ "original-server" ]' [--arg canaryDir '"<dir>"']
#
# gives { <scenario> = facts; } for the scenarios in `only` (all when null).
# The facts are plain data (drvPath of config.system.build.toplevel or null,
# failed assertions, warnings, rendered unit texts, ...). Nothing here builds
# anything.
#
# The scenarios are in scenarios/<topic>.nix, every .nix file there but
# lib.nix: a function of what lib.nix shares, giving an attribute set of
# scenario name -> { modules; toplevel ? true; extend ? null; } (evaluated
# by lib.nix's `facts`) or -> { facts = <plain data>; } (taken as it is).
# Their expectations are in scenarios/<topic>.py. A scenario name is unique
# across all topics.
{
  nixpkgs,
  only ? null,
  # A directory with files named pw, key (contents known only to check.py):
  # scenarios use them as passwordFile/encryptionKeyFile, and check.py greps
  # every derivation of those systems for their contents.
  canaryDir ? "/run/agenix",
  system ? "x86_64-linux",
}:
let
  shared = import ./scenarios/lib.nix { inherit nixpkgs canaryDir system; };
  inherit (shared) lib;
  topicFiles = lib.attrNames (
    lib.filterAttrs (n: kind: kind == "regular" && lib.hasSuffix ".nix" n && n != "lib.nix") (
      builtins.readDir ./scenarios
    )
  );
  addTopic =
    acc: file:
    let
      topic = import (./scenarios + "/${file}") shared;
      twice = lib.attrNames (builtins.intersectAttrs topic acc);
    in
    if twice != [ ] then
      throw "scenarios/${file}: scenario name(s) ${toString twice} already defined by another topic"
    else
      acc // topic;
  scenarios = lib.foldl' addTopic { } topicFiles;
  pick = attrs: if only == null then attrs else lib.filterAttrs (n: _: lib.elem n only) attrs;
  unknown = if only == null then [ ] else lib.filter (n: !(scenarios ? ${n})) only;
in
if unknown != [ ] then
  throw "no scenario named ${toString unknown} in scenarios/*.nix"
else
  lib.mapAttrs (_: s: if s ? facts then s.facts else shared.facts s) (pick scenarios)
