"""The server module: netsecrets-daemon.service, its credentials and hardening, named clients, rotation,
the clients file and config.json, the sources .path unit.

The scenarios are in server.nix."""

import json
import re

from lib import R, exe_re, exec_start, expect, has, has_not, unit_lines, unit_value, words

# Evaluation groups (one nix-instantiate each) of the scenarios in server.nix.
GROUPS = {"servers": ["original-server", "doc-server", "overrides-server", "lowport-server",
        "two-client-server", "clients-only-server", "rotation-server"],
    "options": ["server-client-bad"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = ["original-server", "doc-server", "overrides-server", "lowport-server", "two-client-server",
        "clients-only-server", "rotation-server"]
# Secret values written in server.nix: none may appear in any rendered unit.
LITERALS = ["hunter2", "my-aes-key", "ignored-literal-key"]


def checks(ctx):
    f, units, warns, no_warn, asserts = ctx.f, ctx.units, ctx.warns, ctx.no_warn, ctx.asserts

    # -- the server configuration users already have, verbatim
    def original_server_unit():
        t = units("original-server")["netsecrets-daemon.service"]
        e = exec_start(t)
        expect(exe_re.match(e), f"ExecStart does not run the netsecrets package: {e}")
        for s in ['"receive" "--server" "10.0.0.1" "--port" "8081"', '"--password-file" %d/netsecrets.password',
                  '"--secret-file" db-password=%d/db-password "--secret-file" api-key=%d/api-key',
                  '"--authorized-ips" "10.0.0.0/24"', '"--encryption-key-file" %d/netsecrets.encryption-key']:
            has(s, e, "ExecStart")
        has_not("--verbose", e, "ExecStart")
        has_not("--insecure", e, "ExecStart")
        lc = unit_lines(t, "LoadCredential")
        expect(len(lc) == 4, f"LoadCredential: {lc}")
        expect(lc[0].startswith("netsecrets.password:/nix/store/") and lc[0].endswith("-netsecrets-server-password"), lc[0])
        expect(lc[1:3] == ["db-password:/run/secrets/db-password", "api-key:/run/secrets/api-key"], lc)
        expect(lc[3].startswith("netsecrets.encryption-key:/nix/store/"), lc[3])
        expect(unit_lines(t, "IPAddressDeny") == ["any"] and unit_lines(t, "IPAddressAllow") == ["10.0.0.0/24"], t)
        for k, v in [("User", "netsecrets"), ("Group", "netsecrets"), ("ProtectSystem", "strict"),
                     ("PrivateUsers", "true"), ("PrivateDevices", "true"), ("NoNewPrivileges", "true"),
                     ("MemoryDenyWriteExecute", "true"), ("Restart", "on-failure"), ("Type", "notify"),
                     ("NotifyAccess", "main")]:
            expect(unit_lines(t, k) == [v], f"{k}= is {unit_lines(t, k)}, want {v}")
        expect(unit_lines(t, "CapabilityBoundingSet") == [""], f"CapabilityBoundingSet {unit_lines(t, 'CapabilityBoundingSet')}")
        # AF_UNIX for READY=1 on $NOTIFY_SOCKET (Type=notify)
        expect(unit_lines(t, "RestrictAddressFamilies") == ["AF_INET", "AF_INET6", "AF_UNIX"], t)
        expect("@system-service" in unit_lines(t, "SystemCallFilter"), t)
        expect("network-online.target" in words(t, "After") and "network-online.target" in words(t, "Wants"), t)
        expect(f("original-server")["wantedBy"]["netsecrets-daemon.service"] == ["multi-user.target"], "wantedBy")
        expect(not unit_lines(t, "Environment") or all("PATH=" in e or "LOCALE" in e or "TZDIR" in e
                                                        for e in unit_lines(t, "Environment")), t)
    R.check("NixOS: original server: netsecrets-daemon.service runs `receive` with credentials only, hardened, "
            "IPAddressAllow= from authorized_ips", original_server_unit)

    def original_server_rest():
        x = f("original-server")
        warns("original-server", "netsecrets.server.password is set", "netsecrets.server.encryptionKey is set",
              "world-readable")
        no_warn("original-server", "is ignored")
        expect(x["users"] == {"netsecrets": {"isSystemUser": True, "group": "netsecrets"}}, x["users"])
        expect(x["groups"] == ["netsecrets"], x["groups"])
        expect(x["firewallTCP"] == [], x["firewallTCP"])
        expect(json.loads(x["configJson"]) == {
            "ip": "10.0.0.1", "port": 8081, "secrets": ["db-password", "api-key"],
            "authorized_ips": ["10.0.0.0/24"], "insecure": False, "verbose": False, "encryption": True, "clients": {},
            "password_file": None, "encryption_key_file": None,
            "secret_files": {"db-password": "/run/secrets/db-password", "api-key": "/run/secrets/api-key"},
        }, x["configJson"])
    R.check("NixOS: original server: literal values warn (not errors); user/group; /etc/netsecrets/config.json "
            "holds the non-secret settings; firewall closed by default", original_server_rest)

    def doc_server():
        x = f("doc-server")
        t = units("doc-server")["netsecrets-daemon.service"]
        expect(unit_lines(t, "LoadCredential") == [
            "netsecrets.password:/run/agenix/netsecrets-password", "db-password:/run/secrets/db-password",
            "api-key:/run/secrets/api-key", "netsecrets.encryption-key:/run/agenix/netsecrets-key"],
            unit_lines(t, "LoadCredential"))
        expect(x["firewallTCP"] == [8081], x["firewallTCP"])
        no_warn("doc-server", "netsecrets")
    R.check("NixOS: documented file-based server: credentials from the files, openFirewall, no warning", doc_server)

    def two_client_server():
        x = f("two-client-server")
        t = units("two-client-server")["netsecrets-daemon.service"]
        e = exec_start(t)
        for s_ in ['"--password-file" %d/netsecrets.password', '"--clients-file" "/etc/netsecrets/clients"',
                   '"--authorized-ips" "10.0.0.0/24,10.0.1.0/24,fd00::/64,10.0.5.7"']:
            has(s_, e, "ExecStart")
        expect(unit_lines(t, "IPAddressAllow") == ["10.0.0.0/24", "10.0.1.0/24", "fd00::/64", "10.0.5.7"],
               unit_lines(t, "IPAddressAllow"))
        lc = unit_lines(t, "LoadCredential")
        expect(lc[-3:] == ["netsecrets.client.builder.password:/run/agenix/netsecrets-builder-password",
                           f"netsecrets.client.laptop.password:{ctx.canary_dir}/pw",
                           f"netsecrets.client.laptop.key:{ctx.canary_dir}/key"], lc)
        reload = unit_lines(t, "ExecReload")
        expect(len(reload) == 1 and re.match(r"^/nix/store/[^ ]+-coreutils-[^ ]+/bin/kill -HUP \$MAINPID$", reload[0]),
               f"ExecReload: {reload}")
        expect(x["clientsFile"] ==
               "builder password=netsecrets.client.builder.password from=10.0.1.0/24,fd00::/64 secrets=*\n"
               "laptop password=netsecrets.client.laptop.password key=netsecrets.client.laptop.key from=10.0.5.7 "
               "secrets=wifi\n", x["clientsFile"])
        for v in ctx.canaries.values():
            expect(v not in x["clientsFile"] and v not in t, "a client's password or key in the unit or clients file")
        expect(len(x["reloadTriggers"]) == 1 and x["reloadTriggers"][0].startswith("/nix/store/"), x["reloadTriggers"])
        # A changed client password or key file restarts the daemon like any other source file.
        watched = unit_lines(units("two-client-server")["netsecrets-daemon-sources.path"], "PathChanged")
        for want in ("/run/agenix/netsecrets-builder-password", f"{ctx.canary_dir}/pw", f"{ctx.canary_dir}/key"):
            expect(want in watched, f"{want} not watched: {watched}")
        no_warn("two-client-server", "netsecrets")
    R.check("NixOS: two named clients: each password and key through LoadCredential=, the clients file in "
            "/etc names only credential ids (no secret), IPAddressAllow= and --authorized-ips include the "
            "clients' networks, ExecReload= sends SIGHUP, a clients-only change reloads", two_client_server)

    def clients_only_server():
        t = units("clients-only-server")["netsecrets-daemon.service"]
        e = exec_start(t)
        has_not("--password-file", e, "ExecStart")
        has_not("--encryption-key-file", e, "ExecStart")
        has('"--authorized-ips" "10.0.5.7"', e, "ExecStart")
        expect(unit_lines(t, "IPAddressAllow") == ["10.0.5.7"] and unit_lines(t, "IPAddressDeny") == ["any"], t)
        expect(unit_lines(t, "LoadCredential") == [
            "wifi:/run/secrets/wifi", "netsecrets.client.laptop.password:/run/agenix/laptop-pw",
            "netsecrets.client.laptop.key:/run/agenix/laptop-key"], unit_lines(t, "LoadCredential"))
        no_warn("clients-only-server", "no encryption key")
        asserts("server-client-bad", 'clients."default"', 'names "disk"')
    def rotation_server():
        x = f("rotation-server")
        t = units("rotation-server")["netsecrets-daemon.service"]
        e = exec_start(t)
        for s_ in ['"--password-file" %d/netsecrets.password "--password-file" %d/netsecrets.password.1',
                   '"--encryption-key-file" %d/netsecrets.encryption-key '
                   '"--encryption-key-file" %d/netsecrets.encryption-key.1',
                   '"--max-failures" "10" "--max-per-ip" "16" "--max-connections" "512" "--timeout" "9"']:
            has(s_, e, "ExecStart")
        lc = unit_lines(t, "LoadCredential")
        for want in ["netsecrets.password:/run/agenix/pw-old", "netsecrets.password.1:/run/agenix/pw-new",
                     "netsecrets.encryption-key:/run/agenix/key-old",
                     "netsecrets.encryption-key.1:/run/agenix/key-new",
                     "netsecrets.client.nas.password:/run/agenix/nas-pw-old",
                     "netsecrets.client.nas.password.1:/run/agenix/nas-pw-new",
                     "netsecrets.client.nas.key:/run/agenix/nas-key-old",
                     "netsecrets.client.nas.key.1:/run/agenix/nas-key-new"]:
            expect(want in lc, f"{want} not in {lc}")
        expect(x["clientsFile"] ==
               "nas password=netsecrets.client.nas.password password=netsecrets.client.nas.password.1 "
               "key=netsecrets.client.nas.key key=netsecrets.client.nas.key.1 from=10.0.5.8 secrets=wifi\n",
               x["clientsFile"])
        watched = unit_lines(units("rotation-server")["netsecrets-daemon-sources.path"], "PathChanged")
        for want in ("/run/agenix/pw-new", "/run/agenix/key-new", "/run/agenix/nas-pw-new", "/run/agenix/nas-key-new"):
            expect(want in watched, f"{want} not watched: {watched}")
        no_warn("rotation-server", "netsecrets")
        # Without the limits set, none reaches the command line (the daemon's defaults).
        e2 = exec_start(units("two-client-server")["netsecrets-daemon.service"])
        for flag in ("--max-failures", "--max-per-ip", "--max-connections", "--timeout"):
            has_not(flag, e2, "ExecStart")
    R.check("NixOS: rotation: password and key files as lists (shared and per client) each reach the daemon "
            "through LoadCredential= and the clients file; maxFailures/maxPerIp/maxConnections/timeout map to "
            "the flags, and are absent when null", rotation_server)

    R.check("NixOS: clients only: no shared password or server key needed, IPAddressAllow= is the clients' "
            "networks; a reserved client name and a secret not served are refused", clients_only_server)

    def server_rotation():
        x = f("doc-server")
        u = units("doc-server")
        t = u["netsecrets-daemon.service"]
        expect(unit_value(t, "Type") == "notify" and unit_value(t, "NotifyAccess") == "main", t)
        expect(re.fullmatch(r"/nix/store/[^/]+-coreutils-[^/]+/bin/kill -HUP \$MAINPID", unit_value(t, "ExecReload")),
               unit_value(t, "ExecReload"))
        p = u["netsecrets-daemon-sources.path"]
        expect(unit_lines(p, "PathChanged") == ["/run/secrets/db-password", "/run/secrets/api-key",
                                                "/run/agenix/netsecrets-password", "/run/agenix/netsecrets-key"],
               unit_lines(p, "PathChanged"))
        expect(unit_value(p, "Unit") == "netsecrets-daemon-sources.service", p)
        expect("multi-user.target" in x["wantedBy"]["netsecrets-daemon-sources.path"], x["wantedBy"])
        svc = u["netsecrets-daemon-sources.service"]
        expect(unit_value(svc, "ExecStart") == f"{x['systemctl']} try-restart netsecrets-daemon.service", svc)
        # A literal password or key is a store file: not watched.
        sp = units("original-server")["netsecrets-daemon-sources.path"]
        expect(unit_lines(sp, "PathChanged") == ["/run/secrets/db-password", "/run/secrets/api-key"], sp)
    R.check("NixOS: server: Type=notify (READY=1 from the daemon), ExecReload= SIGHUP; "
            "netsecrets-daemon-sources.path (PathChanged= on every secret, password and key file outside the "
            "store) restarts netsecrets-daemon (LoadCredential= copies are made at start)", server_rotation)

    def overrides_server():
        t = units("overrides-server")["netsecrets-daemon.service"]
        expect(unit_lines(t, "LoadCredential") == [
            "netsecrets.password:/run/agenix/netsecrets-password", "db-password:/run/agenix/db",
            "api-key:/run/agenix/api-key", "netsecrets.encryption-key:/run/agenix/netsecrets-key"],
            unit_lines(t, "LoadCredential"))
        expect(unit_lines(t, "RestartSec") == ["30s"] and unit_lines(t, "ProtectSystem") == ["full"], t)
        has('"--verbose"', exec_start(t))
        has('"--authorized-ips" "10.0.0.0/24,fd00::/64"', exec_start(t))
        expect(unit_lines(t, "IPAddressAllow") == ["10.0.0.0/24", "fd00::/64"], t)
        warns("overrides-server", "netsecrets.server.encryptionKey is ignored because netsecrets.server.encryptionKeyFile")
        no_warn("overrides-server", "encryptionKey is set")
    R.check("NixOS: server with secretFiles, secretsDir, overrides and the client's spelling passwordFile; "
            "encryptionKey + encryptionKeyFile warns naming both", overrides_server)

    def lowport():
        t = units("lowport-server")["netsecrets-daemon.service"]
        expect(unit_lines(t, "CapabilityBoundingSet") == ["CAP_NET_BIND_SERVICE"], t)
        expect(unit_lines(t, "AmbientCapabilities") == ["CAP_NET_BIND_SERVICE"], t)
        expect(unit_lines(t, "PrivateUsers") == ["false"], t)
        has('"--insecure"', exec_start(t))
        has_not("--encryption-key", exec_start(t))
        expect(len(unit_lines(t, "LoadCredential")) == 2, unit_lines(t, "LoadCredential"))
    R.check("NixOS: server on port 443 gets CAP_NET_BIND_SERVICE only; insecure drops the key", lowport)

    def config_json():
        j = json.loads(f("clients-only-server")["configJson"])
        expect(j["encryption"] is True, f"every client has a key, yet encryption = {j['encryption']}")
        expect(j["clients"] == {"laptop": {"encryption": True, "authorized_ips": ["10.0.5.7"], "secrets": ["wifi"]}},
               j["clients"])
        j = json.loads(f("two-client-server")["configJson"])
        expect(j["encryption"] is True and j["clients"]["builder"]["encryption"] is True, j)
    R.check("NixOS: /etc/netsecrets/config.json says encryption = true when every client has a key (own or the "
            "server's), and per client", config_json)


    R.check("NixOS: server: an encryptionKey ignored for encryptionKeyFile is in no derivation of the system",
            ctx.closure_check("overrides-server", ["ignored-literal-key"]))
    R.check("NixOS: two named clients: the clients' password and key file contents are in no derivation",
            ctx.closure_check("two-client-server", [ctx.canaries["pw"], ctx.canaries["key"]]))
