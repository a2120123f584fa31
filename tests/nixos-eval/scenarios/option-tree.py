"""The option tree: the spellings configurations already use (password_file, authorized_ips,
request_secrets, top-level secrets.<name>) render exactly what the camelCase spellings under
netsecrets.client.secrets render, without any warning; both spellings of a list merge; a secret
declared only under netsecrets.client.secrets is fetched; a template's unit lists take "nginx" for
nginx.service.

The scenarios are in option-tree.nix."""

from lib import R, exec_start, expect, has, words

# Evaluation groups (one nix-instantiate each) of the scenarios in option-tree.nix.
GROUPS = {"option-tree": ["tree-original", "tree-camel", "tree-both-spellings", "tree-template-units"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = ["tree-original", "tree-camel"]
# Secret values written in option-tree.nix: none may appear in any rendered unit.
LITERALS = []


def checks(ctx):
    f, units = ctx.f, ctx.units

    def same_units():
        old, new = f("tree-original"), f("tree-camel")
        for name in ("tree-original", "tree-camel"):
            x = f(name)
            expect(x["warnings"] == [], f"{name}: warnings: {x['warnings']}")
            expect(x["failedAssertions"] == [], f"{name}: failed assertions: {x['failedAssertions']}")
        expect(sorted(old["units"]) == sorted(new["units"]), f"{sorted(old['units'])} vs {sorted(new['units'])}")
        for unit, text in old["units"].items():
            expect(new["units"][unit] == text, f"{unit} differs:\n{text}\n---\n{new['units'][unit]}")
        for key in ("consumerUnits", "tmpfiles", "configJson", "secrets", "secretPaths", "requiredBy"):
            expect(old[key] == new[key], f"{key}: {old[key]} vs {new[key]}")
        expect("netsecrets-secret-db-password.service" in new["units"], sorted(new["units"]))
    R.check("NixOS: option tree: password_file, authorized_ips, request_secrets and top-level secrets.<name> "
            "render the same units, tmpfiles, config.json and config.secrets.<name> as passwordFile, "
            "authorizedIps and netsecrets.client.secrets.<name>, with no warning and no failed assertion",
            same_units)

    def declared_is_fetched():
        x = f("tree-camel")
        u = x["units"]
        has('"--request_secrets" "db-password"', exec_start(u["netsecrets-secret-db-password.service"]),
            "the fetch unit of a secret declared only under netsecrets.client.secrets")
        expect("netsecrets-secret-db-password.service" in words(u["netsecrets-client.service"], "Wants"),
               u["netsecrets-client.service"])
        expect(x["secrets"]["db-password"]["file"] == "/var/lib/netsecrets/db-password", x["secrets"])
        expect(x["client"]["secretNames"] == ["api-key", "db-password"], x["client"]["secretNames"])
    R.check("NixOS: option tree: a secret declared only as netsecrets.client.secrets.<name> is fetched "
            "(its unit, netsecrets-client wants it, config.secrets.<name>.file)", declared_is_fetched)

    def twins():
        for name in ("tree-original", "tree-camel", "tree-both-spellings"):
            c, s = f(name)["client"], f(name)["server"]
            for old, new in (("request_secrets", "requestSecrets"), ("password_file", "passwordFile")):
                expect(c[old] == c[new], f"{name}: client {old} {c[old]} != {new} {c[new]}")
            for old, new in (("authorized_ips", "authorizedIps"), ("password_file", "passwordFile")):
                expect(s[old] == s[new], f"{name}: server {old} {s[old]} != {new} {s[new]}")
        x = f("tree-both-spellings")
        expect(x["warnings"] == [], x["warnings"])
        expect(sorted(x["client"]["requestSecrets"]) == ["one", "two"], x["client"]["requestSecrets"])
        for n in ("one", "two"):
            expect(f"netsecrets-secret-{n}.service" in x["units"], sorted(x["units"]))
        expect(sorted(x["server"]["authorizedIps"]) == ["10.0.1.0/24", "10.0.2.0/24"], x["server"])
        has('"--authorized-ips"', exec_start(x["units"]["netsecrets-daemon.service"]), "daemon ExecStart")
    R.check("NixOS: option tree: every snake_case option reads the same as its camelCase twin; a list set in "
            "both spellings (requestSecrets + request_secrets, authorizedIps + authorized_ips) is merged, "
            "without a warning", twins)

    def template_units():
        x = f("tree-template-units")
        t = x["units"]["netsecrets-template-t.service"]
        line = exec_start(t)
        has('"--restart-unit" "nginx.service"', line, "the render unit's ExecStart")
        has('"--reload-unit" "foo.socket"', line, "the render unit's ExecStart")
        expect('"nginx"' not in line, line)
        expect("myapp.service" in words(t, "Before"), t)
        expect(x["requiredBy"]["netsecrets-template-t.service"] == ["myapp.service"], x["requiredBy"])
    R.check('NixOS: templates: restartUnits = [ "nginx" ] renders --restart-unit nginx.service (as a '
            'secret\'s), "foo.socket" stays; requiredBy = [ "myapp" ] is myapp.service', template_units)
