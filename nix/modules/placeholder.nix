# The placeholder of a secret in netsecrets.client.templates:
# "<netsecrets:NAME:HASH>", HASH = sha256("netsecrets-placeholder:" + NAME) in
# lowercase hex. It holds nothing secret (a hash of the name) and does not
# occur in ordinary text. `netsecrets render` computes the same string (keep
# in sync with TAG in src/client/template.rs; tests/templates.rs and
# tests/nix/check.py check that both agree). A plain function, no lib needed.
name: "<netsecrets:${name}:${builtins.hashString "sha256" "netsecrets-placeholder:${name}"}>"
