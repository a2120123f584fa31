"""The client module in stage 2: one fetch unit per secret, the aggregate unit, owners and modes, odd
names, credentials, tmpfiles.

The scenarios are in client.nix."""

import re

from lib import R, exe_re, exec_start, expect, has, has_not, unit_lines, words

# Evaluation groups (one nix-instantiate each) of the scenarios in client.nix.
GROUPS = {"clients": ["original-client", "doc-client", "owned-client"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = ["original-client", "doc-client", "owned-client"]
# Secret values written in client.nix: none may appear in any rendered unit.
LITERALS = ["hunter2", "my-aes-key"]


def checks(ctx):
    f, units, warns, no_warn = ctx.f, ctx.units, ctx.warns, ctx.no_warn

    # -- the client configuration users already have, verbatim
    def original_client_units():
        u = units("original-client")
        expect(sorted(u) == ["netsecrets-client.service", "netsecrets-secret-api-key.service",
                             "netsecrets-secret-db-password.service"], sorted(u))
        agg = u["netsecrets-client.service"]
        for k in ("Wants", "After"):
            for d in ("netsecrets-secret-db-password.service", "netsecrets-secret-api-key.service",
                      "network-online.target"):
                expect(d in words(agg, k), f"{k}= lacks {d}:\n{agg}")
        # Wants= its fetches (one failing does not stop the others); Requires= only the ramfs.
        expect(words(agg, "Requires") == ["var-lib-netsecrets.mount"], agg)
        # One is-active per unit: with several in one call, is-active succeeds if ANY is active.
        e = unit_lines(agg, "ExecStart")
        expect(len(e) == 2 and all(re.fullmatch(r'"/nix/store/[^"]+-systemd-[^"]+/bin/systemctl" "is-active" '
                                                rf'"--quiet" "{u}"', line)
                                   for line, u in zip(e, ["netsecrets-secret-db-password.service",
                                                          "netsecrets-secret-api-key.service"])), e)
        expect(f("original-client")["wantedBy"]["netsecrets-client.service"] == ["multi-user.target"], "wantedBy")
        t = u["netsecrets-secret-db-password.service"]
        e = exec_start(t)
        expect(exe_re.match(e), e)
        for s in ['"send" "--server" "10.0.0.1" "--port" "8081" "--fallbacks" "10.0.0.2"',
                  '"--password-file" %d/netsecrets.password "--encryption-key-file" %d/netsecrets.encryption-key',
                  '"--request_secrets" "db-password" "--file-output" "/var/lib/netsecrets/db-password" '
                  '"--owner" "root" "--group" "root" "--mode" "0400"']:
            has(s, e, "ExecStart")
        has_not("api-key", e)
        lc = unit_lines(t, "LoadCredential")
        expect(len(lc) == 2 and lc[0].startswith("netsecrets.password:/nix/store/")
               and lc[1] == "netsecrets.encryption-key:/run/secrets/enc-key", lc)
        for k, v in [("ProtectSystem", "strict"), ("ReadWritePaths", "/var/lib/netsecrets"), ("Type", "oneshot"),
                     ("NoNewPrivileges", "true")]:
            expect(unit_lines(t, k) == [v], f"{k}: {unit_lines(t, k)}")
        expect(unit_lines(t, "RestrictAddressFamilies") == ["AF_INET", "AF_INET6"], t)
        expect("network-online.target" in words(t, "After") and "network-online.target" in words(t, "Wants"), t)
    R.check("NixOS: original client: one fetch unit per secret running `send` once into /var/lib/netsecrets/<name>, "
            "credentials only, netsecrets-client.service aggregates with systemctl is-active", original_client_units)

    def original_client_rest():
        x = f("original-client")
        warns("original-client", "netsecrets.client.password is set",
              "netsecrets.client.encryptionKey is ignored because netsecrets.client.encryptionKeyFile")
        no_warn("original-client", "netsecrets.client.encryptionKey is set")
        expect(x["secrets"]["db-password"]["file"] == "/var/lib/netsecrets/db-password", x["secrets"])
        expect(x["secrets"]["api-key"]["file"] == "/var/lib/netsecrets/api-key", x["secrets"])
        expect(x["secrets"]["db-password"]["initrdFile"] == "/run/netsecrets/db-password", x["secrets"])
        expect(x["etcMyapp"] == "/var/lib/netsecrets/db-password", x["etcMyapp"])
        expect(x["tmpfiles"] == ["d /var/lib/netsecrets 0751 root root -",
                                 "z /var/lib/netsecrets/db-password 0400 root root -",
                                 "z /var/lib/netsecrets/api-key 0400 root root -"], x["tmpfiles"])
        expect(x["initrdUnits"] == {} and x["initrdSecrets"] == {}, "stage-1 parts without enableInitrd")
    R.check("NixOS: original client: literal password warns, encryptionKey + encryptionKeyFile warns naming both; "
            "secrets.<name>.file and the consumer example; tmpfiles; nothing in stage 1", original_client_rest)

    def doc_client():
        t = units("doc-client")["netsecrets-secret-api-key.service"]
        has('"--owner" "myapp" "--group" "myapp" "--mode" "0440"', exec_start(t))
        expect("z /var/lib/netsecrets/api-key 0440 myapp myapp -" in f("doc-client")["tmpfiles"], f("doc-client")["tmpfiles"])
        expect(unit_lines(t, "LoadCredential") == ["netsecrets.password:/run/agenix/netsecrets-password",
                                                    "netsecrets.encryption-key:/run/secrets/enc-key"], t)
        no_warn("doc-client", "netsecrets")
    R.check("NixOS: documented file-based client: owner/group/mode per secret, credentials from the files, "
            "no warning", doc_client)

    def owned():
        u = units("owned-client")
        name = "netsecrets-secret-a\\x40b\\x2bc.service"
        expect(name in u, f"no {name}: {sorted(u)}")
        e = exec_start(u[name])
        has('"--fallbacks" "10.0.0.2,odd%%host$$name"', e)
        has('"--request_secrets" "a@b+c" "--file-output" "/var/lib/netsecrets/a@b+c"', e)
        has('"--insecure"', e)
        has_not("--encryption-key", e)
        expect(name in words(u["netsecrets-client.service"], "Wants"), u["netsecrets-client.service"])
        t = u["netsecrets-secret-db-password.service"]
        has('"--owner" "postgres" "--group" "postgres" "--mode" "0440"', exec_start(t))
        expect(unit_lines(t, "TimeoutStartSec") == ["5min"], t)
        expect(unit_lines(t, "LoadCredential") == ["netsecrets.password:/run/agenix/pw"], t)
    R.check("NixOS: client: % and $ escaped for systemd, @/+ names get valid unit names, owners, overrides, "
            "the server's spelling password_file", owned)

    R.check("NixOS: original client: the ignored encryptionKey is in no derivation of the system; the literal "
            "password only in its warned store file",
            ctx.closure_check("original-client", ["my-aes-key"], {"hunter2": r"-netsecrets-client-password(\.drv)?$"}))
