"""The wire protocol: every unit that talks to a server, in every whole-system scenario of every topic,
says which (--protocol), the server its --min-protocol.

The scenarios are in protocol.nix."""

import re

from lib import R, exec_start, expect, has, unit_lines

# Evaluation groups (one nix-instantiate each) of the scenarios in protocol.nix.
GROUPS = {"options": ["protocol-pinned", "client-protocol-2-plaintext"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = []
# Secret values written in protocol.nix: none may appear in any rendered unit.
LITERALS = []


def checks(ctx):
    f, failed, asserts = ctx.f, ctx.failed, ctx.asserts

    # -- the wire protocol: every unit that talks to a server says which (2 with a key unless
    # netsecrets.client.protocol says otherwise), the server its --min-protocol
    def protocol_flags():
        talkers = re.compile(r'"(send|credentials|ask-password)"')
        seen = {}
        for name in ctx.whole_systems + ["protocol-pinned"]:
            x = f(name)
            cl = x["client"] or {}
            keyed = not cl.get("insecure") and bool(cl.get("encryptionKeyFile") or cl.get("encryptionKey"))
            want = cl.get("protocol") or (2 if keyed else 1)
            texts = list((x["units"] or {}).items()) + [("initrd " + n, t) for n, t in (x["initrdUnits"] or {}).items()]
            for n, t in texts:
                for e in unit_lines(t, "ExecStart"):
                    m = talkers.search(e)
                    if not m or (m.group(1) == "ask-password" and "--verify-secret" not in e):
                        continue
                    expect(e.count('"--protocol"') == 1 and f'"--protocol" "{want}"' in e,
                           f"{name}: {n}: want --protocol {want}: {e}")
                    seen[(name, m.group(1), want)] = True
            d = (x["units"] or {}).get("netsecrets-daemon.service")
            if d is not None:
                want_min = (x["server"] or {}).get("minProtocol", 1)
                has(f'"--min-protocol" "{want_min}"', exec_start(d), f"{name}: netsecrets-daemon ExecStart")
                seen[(name, "receive", want_min)] = True
        # The cases that must have been seen: defaults with and without a key, stage 1 and
        # stage 2, credentials, the typed password's check, and both pinned settings.
        for case in [("original-client", "send", 2), ("owned-client", "send", 1), ("consumers", "credentials", 2),
                     ("prompt-grub", "ask-password", 2), ("initrd-grub", "send", 2),
                     ("protocol-pinned", "send", 1), ("original-server", "receive", 1), ("protocol-pinned", "receive", 2)]:
            expect(case in seen, f"no unit checked for {case}; seen: {sorted(seen)}")
        asserts("client-protocol-2-plaintext", "netsecrets.client.protocol = 2 needs an encryption key")
        expect(failed("protocol-pinned") == [], failed("protocol-pinned"))
    R.check("NixOS: every unit that talks to a server passes --protocol (2 with a key, 1 in plaintext or when "
            "netsecrets.client.protocol = 1), stage 1 and 2, send, credentials and the typed password's check; "
            "the server passes --min-protocol (netsecrets.server.minProtocol); protocol 2 without a key is an assertion",
            protocol_flags)
