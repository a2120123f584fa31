"""Services that use secrets: ordering and the readiness gates, credentials, change actions, the
refresh timer, refreshStartsUnits, secrets.<name>.path.

The scenarios are in consumers.nix."""

from lib import R, exec_start, expect, has, unit_lines, unit_value, words

# Evaluation groups (one nix-instantiate each) of the scenarios in consumers.nix.
GROUPS = {"consumers": ["consumers", "consumers-initrd"],
    "day": ["consumers-no-interval", "consumers-start-units", "no-actions"],
    "options": ["consumer-refused"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = ["consumers", "consumers-initrd"]
# Secret values written in consumers.nix: none may appear in any rendered unit.
LITERALS = []


def checks(ctx):
    f, units, iunits, no_warn, asserts = ctx.f, ctx.units, ctx.iunits, ctx.no_warn, ctx.asserts

    def consumer_ordering():
        u = units("consumers")
        c = f("consumers")["consumerUnits"]
        expect(c is not None, "consumer units did not evaluate")
        app = c["myapp.service"]
        for key, wants in (("Requires", ("netsecrets-ready-db-password.service", "netsecrets-credentials.socket")),
                           ("After", ("netsecrets-secret-db-password.service", "netsecrets-ready-db-password.service",
                                      "netsecrets-credentials.socket")),
                           ("Wants", ("netsecrets-secret-db-password.service",))):
            w = words(app, key)
            for want in wants:
                expect(want in w, f"myapp.service {key}= lacks {want}: {w}")
            expect("netsecrets-secret-api-token.service" not in w, f"no fetch unit for a credential-only secret: {w}")
        expect(unit_lines(app, "LoadCredential") == ["api-token:/run/netsecrets-credentials.sock"],
               f"LoadCredential of myapp.service: {unit_lines(app, 'LoadCredential')}")
        other = c["other.service"]
        expect(not unit_lines(other, "LoadCredential") and not unit_lines(other, "Requires"),
               f"other.service is not listed and gets nothing:\n{other}")
        expect("netsecrets-secret-api-token.service" not in u, "writeFile = false: no fetch unit")
        expect(not any("api-token" in r for r in f("consumers")["tmpfiles"]), f("consumers")["tmpfiles"])
        cl = [w.strip('"') for w in words(u["netsecrets-client.service"], "ExecStart")]
        expect(len(unit_lines(u["netsecrets-client.service"], "ExecStart")) == 1, "one is-active per fetch unit")
        expect("netsecrets-secret-db-password.service" in cl and "netsecrets-secret-api-token.service" not in cl, cl)
    R.check("NixOS: secrets.<name>.requiredBy: Wants=/After= on the fetch unit, Requires=/After= on its gate "
            "netsecrets-ready-<name>.service (and the credentials socket); "
            "credential = true: LoadCredential=<name>:<socket> for the listed unit only; writeFile = false: no "
            "fetch unit, no file", consumer_ordering)

    def consumer_credentials():
        u = units("consumers")
        svc = u["netsecrets-credentials.service"]
        ex = exec_start(svc)
        has('"credentials"', ex, "ExecStart")
        has('"--allow" "api-token=myapp.service"', ex, "ExecStart")
        expect("db-password" not in ex, f"only credential secrets are served: {ex}")
        has("%d/netsecrets.password", ex, "ExecStart")
        expect(unit_value(svc, "Type") == "notify" and unit_value(svc, "NotifyAccess") == "main", svc)
        expect("AF_UNIX" in words(svc, "RestrictAddressFamilies"), svc)
        sock = u["netsecrets-credentials.socket"]
        expect(unit_value(sock, "ListenStream") == "/run/netsecrets-credentials.sock", sock)
        expect(unit_value(sock, "SocketMode") == "0600" and unit_value(sock, "SocketUser") == "root", sock)
        expect("sockets.target" in f("consumers")["wantedBy"]["netsecrets-credentials.socket"], f("consumers")["wantedBy"])
    R.check("NixOS: netsecrets-credentials.socket (0600, root) activates `netsecrets credentials --allow "
            "api-token=myapp.service` (Type=notify, AF_UNIX)", consumer_credentials)

    def consumer_actions():
        x = f("consumers")
        u = units("consumers")
        fetch = exec_start(u["netsecrets-secret-db-password.service"])
        has(f'"--restart-unit" "myapp.service" "--reload-unit" "nginx.service" "--systemctl" "{x["systemctl"]}"',
            fetch, "the fetch unit's ExecStart")
        expect("--start-unit" not in fetch, f"the boot fetch starts nothing itself (ordering does): {fetch}")
        expect("AF_UNIX" in words(u["netsecrets-secret-db-password.service"], "RestrictAddressFamilies"),
               "systemctl needs AF_UNIX to reach PID 1")
        refresh = u["netsecrets-refresh.service"]
        lines = unit_lines(refresh, "ExecStart")
        expect(len(lines) == 1 and lines[0].startswith("-"), f"one ExecStart per file secret, failures ignored: {lines}")
        has('"--file-output" "/var/lib/netsecrets/db-password"', lines[0], "refresh ExecStart")
        expect("--start-unit" not in lines[0], f"a refresh starts nothing by default: {lines[0]}")
        expect(unit_value(refresh, "Type") == "oneshot", refresh)
        expect("AF_UNIX" in words(refresh, "RestrictAddressFamilies"), refresh)
        timer = u["netsecrets-refresh.timer"]
        expect(unit_value(timer, "OnBootSec") == "15min" and unit_value(timer, "OnUnitActiveSec") == "15min", timer)
        expect("timers.target" in x["wantedBy"]["netsecrets-refresh.timer"], x["wantedBy"])
        expect("netsecrets-refresh.timer" not in units("original-client"), "refreshInterval is off by default")
    R.check("NixOS: restartUnits/reloadUnits become send --restart-unit/--reload-unit --systemctl <systemd's>; "
            "refreshInterval = \"15min\": netsecrets-refresh.timer (OnBootSec, OnUnitActiveSec) runs the fetches "
            "again, starting no unit; off by default", consumer_actions)

    def consumer_initrd():
        iu = iunits("consumers-initrd")
        c = f("consumers-initrd")["initrdConsumerUnits"]
        expect(c is not None, "initrd consumer units did not evaluate")
        un = c["unlock.service"]
        for key in ("Requires", "After"):
            w = words(un, key)
            for want in ("netsecrets-secret-luks-key.service", "netsecrets-credentials.socket"):
                expect(want in w, f"unlock.service {key}= lacks {want}: {w}")
        expect(unit_lines(un, "LoadCredential") == ["luks-key:/run/netsecrets-credentials-initrd.sock"], un)
        svc = iu["netsecrets-credentials.service"]
        has('"--allow" "luks-key=unlock.service"', exec_start(svc), "stage-1 credentials ExecStart")
        has('"--password-file" "/etc/netsecrets/initrd-password"', exec_start(svc), "stage-1 credentials ExecStart")
        sock = iu["netsecrets-credentials.socket"]
        for t in (svc, sock):
            expect(unit_value(t, "DefaultDependencies") == "false", t)
        expect(unit_value(sock, "ListenStream") == "/run/netsecrets-credentials-initrd.sock", sock)
        expect(not f("consumers")["initrdUnits"] or "netsecrets-credentials.socket" not in f("consumers")["initrdUnits"],
               "no stage-1 credentials without initrdRequiredBy")
    R.check("NixOS: initrdRequiredBy in stage 1: Requires=/After= the stage-1 fetch, LoadCredential from the "
            "stage-1 socket, netsecrets-credentials.{socket,service} without default dependencies", consumer_initrd)

    def consumer_refused():
        asserts("consumer-refused", "secrets.a: writeFile = false needs credential = true",
                "secrets.b.credential = true: list the services",
                "secrets.c.initrdRequiredBy needs netsecrets.client.enableInitrd")
    R.check("NixOS: refused: writeFile = false without credential, credential without requiredBy, "
            "initrdRequiredBy without enableInitrd", consumer_refused)


    # -- day two: change actions, restarts, stopped units, `path`
    def no_propagating_dependency():
        for name in ("consumers", "consumers-no-interval", "no-actions"):
            for unit, text in f(name)["consumerUnits"].items():
                for key in ("Requires", "Requisite", "BindsTo", "PartOf"):
                    bad = [w for w in words(text, key) if w.startswith("netsecrets-secret-")]
                    expect(not bad, f"{name}: {unit} {key}= {bad}: a restart of the fetch unit would restart it")
        tpl = units("templates-content")["netsecrets-template-app.conf.service"]
        for key in ("Requires", "Requisite", "BindsTo", "PartOf"):
            bad = [w for w in words(tpl, key) if w.startswith("netsecrets-secret-")]
            expect(not bad, f"template unit {key}= {bad}")
        # The gates, and the RAM file systems the files are on.
        expect(sorted(words(tpl, "Requires")) == ["netsecrets-ready-api-key.service",
                                                  "netsecrets-ready-db-password.service",
                                                  "run-netsecrets.mount", "var-lib-netsecrets.mount"], tpl)
        gate = units("no-actions")["netsecrets-ready-db-password.service"]
        expect(words(gate, "Wants") == ["netsecrets-secret-db-password.service"] == words(gate, "After"), gate)
        expect(not words(gate, "Requires") and not words(gate, "BindsTo") and not words(gate, "PartOf"), gate)
        ex = [w.strip('"') for w in words(gate, "ExecStart")]
        expect(ex[0].endswith("/bin/systemctl") and ex[1:] == ["is-active", "--quiet",
                                                              "netsecrets-secret-db-password.service"], ex)
        expect(unit_value(gate, "Type") == "oneshot" and unit_value(gate, "RemainAfterExit") == "true", gate)
        other = f("no-actions")["consumerUnits"]["other.service"]
        expect(words(other, "Requires") == ["netsecrets-ready-db-password.service"], other)
    R.check("NixOS: restarting a fetch unit restarts no consumer: requiredBy units and templates have only Wants= "
            "on netsecrets-secret-<name>.service (no Requires/Requisite/BindsTo/PartOf, which propagate restarts) "
            "and Requires= on the gate netsecrets-ready-<name>.service (systemctl is-active of the fetch unit, "
            "Wants=/After= it), so they still never start without the secret", no_propagating_dependency)

    def default_refresh():
        for name in ("consumers-no-interval", "templates-content"):
            u = units(name)
            expect("netsecrets-refresh.timer" in u, f"{name}: change actions but no netsecrets-refresh.timer")
            t = u["netsecrets-refresh.timer"]
            expect(unit_value(t, "OnUnitActiveSec") == "1h" and unit_value(t, "OnBootSec") == "1h", t)
            expect(unit_value(t, "RandomizedDelaySec") == "10min", t)
            no_warn(name, "refreshInterval")
        expect("netsecrets-refresh.timer" not in units("no-actions"), "no change action: no refresh")
        t = units("consumers")["netsecrets-refresh.timer"]
        expect(unit_value(t, "OnUnitActiveSec") == "15min" and not unit_lines(t, "RandomizedDelaySec"), t)
    R.check("NixOS: restartUnits/reloadUnits (a secret's or a template's) without refreshInterval: "
            "netsecrets-refresh.timer every 1h with RandomizedDelaySec=10min; none without change actions; "
            "an explicit refreshInterval is kept as given", default_refresh)

    def start_opt_in():
        for name, want in (("consumers", False), ("consumers-no-interval", False), ("consumers-start-units", True)):
            u = units(name)
            lines = unit_lines(u["netsecrets-refresh.service"], "ExecStart")
            got = any('"--start-unit" "myapp.service"' in line for line in lines)
            expect(got == want, f"{name}: --start-unit in the refresh: {got}, want {want}: {lines}")
            fetch = exec_start(u["netsecrets-secret-db-password.service"])
            expect("--start-unit" not in fetch, f"{name}: the boot fetch starts nothing: {fetch}")
        expect(f("consumers")["client"]["refreshStartsUnits"] is False, "refreshStartsUnits defaults to false")
    R.check("NixOS: a refresh never starts a unit by default (no --start-unit: a unit stopped by hand stays "
            "stopped); netsecrets.client.refreshStartsUnits = true opts in", start_opt_in)

    def secret_path():
        for name in ("consumers", "no-actions", "consumers-no-interval"):
            x = f(name)
            expect(x["secretPaths"] is not None, f"{name}: config.secrets.<name>.path does not evaluate")
            for n, s_ in x["secrets"].items():
                expect(x["secretPaths"][n] == s_["file"], f"{name}: path {x['secretPaths'][n]} != file {s_['file']}")
            expect(x["secretPaths"], f"{name}: no secrets")
        x = f("consumers-no-interval")
        expect(x["etcMyapp"] == "/var/lib/netsecrets/db-password", x["etcMyapp"])
        expect(x["warnings"] == [], x["warnings"])
    R.check("NixOS: config.secrets.<name>.path works wherever .file does (same value, usable in "
            "environment.etc, no warning)", secret_path)
