#!/usr/bin/env bash
# Checks of the Nix side that run without nixpkgs and without building
# anything (the VM tests in nix/tests/ need `nix flake check` on NixOS):
#
#   1. every .nix file in the repository parses (nix-instantiate --parse);
#   2. tests/nix/eval.nix: the modules evaluated with nixpkgs' lib against stub
#      NixOS options (option names and types, generated units, credentials,
#      tmpfiles, warnings, assertions, no secret anywhere in what is rendered);
#   3. the generated units, written out as unit files, pass
#      `systemd-analyze verify`, and `systemd-analyze security --offline=true`
#      scores netsecrets-daemon.service (must be <= 2.0).
#
# nixpkgs' lib comes from $NETSECRETS_NIXPKGS_LIB: the root of a nixpkgs or
# nix-community/nixpkgs.lib checkout (the directory holding lib/), or that lib/
# directory itself. Unset: extracted from a local mirror of nixpkgs.lib under
# /work/.mirror if there is one (never committed). Neither: step 2 and 3 are
# skipped, loudly.
#
# Usage: bash tests/nix/check.sh     Last line: "<N> passed, <N> failed".
# Exit status: 0 when nothing failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
skipped=0
pass() { passed=$((passed + 1)); printf 'PASS  %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/      /'; }
skip() {
  skipped=$((skipped + 1))
  printf '\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
  printf '!!! SKIPPED: %s\n' "$1"
  printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
}
finish() {
  [ "$skipped" -gt 0 ] && echo "($skipped check group(s) SKIPPED, see above)"
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

# ---- 0. tools ---------------------------------------------------------------
if ! command -v nix-instantiate >/dev/null 2>&1; then
  echo "nix-instantiate not found; installing nix-bin"
  apt-get -o DPkg::Lock::Timeout=300 install -y nix-bin >"$tmp/apt.log" 2>&1 ||
    { apt-get -o DPkg::Lock::Timeout=300 update >>"$tmp/apt.log" 2>&1 &&
      apt-get -o DPkg::Lock::Timeout=300 install -y nix-bin >>"$tmp/apt.log" 2>&1; }
fi
if ! command -v nix-instantiate >/dev/null 2>&1; then
  fail "nix-instantiate available (apt-get install -y nix-bin)" "$(tail -n 5 "$tmp/apt.log" 2>/dev/null)"
  finish
fi
# nix-instantiate wants a writable state directory even for --parse/--eval.
export NIX_STATE_DIR="$tmp/nix-state" NIX_LOG_DIR="$tmp/nix-log" HOME="${HOME:-$tmp}"
mkdir -p "$NIX_STATE_DIR" "$NIX_LOG_DIR"

# ---- 1. parse every .nix file -------------------------------------------------
echo "== parse"
while IFS= read -r -d '' f; do
  rel=${f#"$repo"/}
  if out=$(nix-instantiate --parse "$f" 2>&1 >/dev/null); then
    pass "parse $rel"
  else
    fail "parse $rel" "$out"
  fi
done < <(find "$repo" \( -name .git -o -name target -o -name result \) -prune -o -name '*.nix' -type f -print0 | sort -z)

# ---- 2. evaluation tests ------------------------------------------------------
echo "== evaluation (tests/nix/eval.nix)"
libdir=""
if [ -n "${NETSECRETS_NIXPKGS_LIB:-}" ]; then
  if [ -f "$NETSECRETS_NIXPKGS_LIB/lib/default.nix" ]; then
    libdir="$NETSECRETS_NIXPKGS_LIB/lib"
  elif [ -f "$NETSECRETS_NIXPKGS_LIB/modules.nix" ] && [ -f "$NETSECRETS_NIXPKGS_LIB/default.nix" ]; then
    libdir="$NETSECRETS_NIXPKGS_LIB"
  else
    fail "NETSECRETS_NIXPKGS_LIB=$NETSECRETS_NIXPKGS_LIB holds nixpkgs' lib" \
      "expected <dir>/lib/default.nix or <dir>/modules.nix"
    finish
  fi
  echo "nixpkgs lib: $libdir (from NETSECRETS_NIXPKGS_LIB)"
else
  for gitdir in /work/.mirror/nix-community+nixpkgs.lib/repo /work/.mirror/*nixpkgs.lib*/repo; do
    [ -d "$gitdir" ] || continue
    mkdir -p "$tmp/nixpkgs.lib"
    if git --git-dir="$gitdir" archive HEAD 2>/dev/null | tar -x -C "$tmp/nixpkgs.lib" 2>/dev/null &&
      [ -f "$tmp/nixpkgs.lib/lib/default.nix" ]; then
      libdir="$tmp/nixpkgs.lib/lib"
      echo "nixpkgs lib: extracted from $gitdir ($(git --git-dir="$gitdir" rev-parse --short HEAD))"
      break
    fi
  done
fi

if [ -z "$libdir" ]; then
  skip "evaluation tests and systemd-analyze: no nixpkgs lib. Set NETSECRETS_NIXPKGS_LIB to a nixpkgs (or nixpkgs.lib) checkout, e.g. git clone https://github.com/nix-community/nixpkgs.lib"
  finish
fi

if ! nix-instantiate --eval --strict --json "$here/eval.nix" --arg lib "import $libdir" \
  >"$tmp/eval.json" 2>"$tmp/eval.err"; then
  fail "tests/nix/eval.nix evaluates" "$(tail -n 30 "$tmp/eval.err")"
  finish
fi
while IFS=$'\t' read -r ok name detail; do
  if [ "$ok" = 1 ]; then pass "$name"; else fail "$name" "$detail"; fi
done < <(python3 - "$tmp/eval.json" <<'EOF'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print("1" if r["ok"] else "0", r["name"], r["detail"].replace("\t", " ").replace("\n", " "), sep="\t")
EOF
)

# ---- 3. systemd-analyze on the rendered units -----------------------------------
echo "== systemd-analyze"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  skip "systemd-analyze verify/security: systemd-analyze not installed"
  finish
fi
# ExecStart= points into a fake store; verify wants an executable there. Use a
# built netsecrets if there is one, else /bin/true (the checks are about the
# unit files, not the binary). systemctl is the host's.
bin=""
for c in "$repo/target/x86_64-unknown-linux-musl/release/netsecrets" "$repo/target/release/netsecrets" \
  "$repo/target/debug/netsecrets"; do
  if [ -x "$c" ]; then bin=$c; break; fi
done
[ -n "$bin" ] || bin=$(command -v true)
systemctl_bin=$(command -v systemctl || command -v true)
echo "ExecStart binaries for verify: netsecrets -> $bin, systemctl -> $systemctl_bin"

python3 - "$tmp/eval.json" "$tmp/units" "$bin" "$systemctl_bin" <<'EOF'
import json, os, sys
data = json.load(open(sys.argv[1]))
out, nsbin, sysctl = sys.argv[2], sys.argv[3], sys.argv[4]
fake = data["fakeExecutables"]
for path, text in data["units"].items():
    text = text.replace(json.dumps(fake["exe"]), json.dumps(nsbin))
    text = text.replace(json.dumps(fake["systemctl"]), json.dumps(sysctl))
    dest = os.path.join(out, path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "w") as f:
        f.write(text)
EOF

for group in "$tmp"/units/*/; do
  g=$(basename "$group")
  if out=$(cd "$group" && systemd-analyze verify ./*.service 2>&1) && [ -z "$out" ]; then
    pass "systemd-analyze verify: $g ($(cd "$group" && ls | tr '\n' ' '))"
  else
    fail "systemd-analyze verify: $g" "$out"
  fi
done

score() {
  systemd-analyze security --offline=true "$1" 2>&1 |
    sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p'
}
exposure=$(score "$tmp/units/server/netsecrets-daemon.service")
if [ -n "$exposure" ] && python3 -c "import sys; sys.exit(0 if float('$exposure') <= 2.0 else 1)"; then
  pass "systemd-analyze security --offline=true netsecrets-daemon.service: exposure $exposure (<= 2.0)"
else
  fail "systemd-analyze security --offline=true netsecrets-daemon.service: exposure '${exposure}' (want <= 2.0)" \
    "$(systemd-analyze security --offline=true "$tmp/units/server/netsecrets-daemon.service" 2>&1 | grep '✗')"
fi
echo "info: exposure of netsecrets-daemon.service with port < 1024: $(score "$tmp/units/server-lowport/netsecrets-daemon.service")"
echo "info: exposure of the client's netsecrets-secret-db-password.service (runs as root): $(score "$tmp/units/client/netsecrets-secret-db-password.service")"

finish
