"""Where the secrets are kept: RAM file systems, initrdOnly, keepOnDisk.

The scenarios are in storage.nix."""

from lib import R, exec_start, expect, has, unit_value, words

# Evaluation groups (one nix-instantiate each) of the scenarios in storage.nix.
GROUPS = {"storage": ["storage-luks", "storage-disk", "storage-refused"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = ["storage-luks", "storage-disk"]
# Secret values written in storage.nix: none may appear in any rendered unit.
LITERALS = []


def checks(ctx):
    f, units, iunits, asserts = ctx.f, ctx.units, ctx.iunits, ctx.asserts

    def storage_ram():
        x = f("storage-luks")
        m = x["mountUnits"]
        expect(m is not None and "var-lib-netsecrets.mount" in m, f"no var-lib-netsecrets.mount: {m}")
        mu = m["var-lib-netsecrets.mount"]
        expect(unit_value(mu, "What") == "ramfs" and unit_value(mu, "Type") == "ramfs"
               and unit_value(mu, "Where") == "/var/lib/netsecrets", mu)
        expect("mode=0751" in unit_value(mu, "Options"), mu)
        expect("local-fs.target" in x["mountWantedBy"]["var-lib-netsecrets.mount"], x["mountWantedBy"])
        u = units("storage-luks")
        for name in ("netsecrets-secret-db-password.service", "netsecrets-client.service",
                     "netsecrets-refresh.service", "netsecrets-credentials.service", "netsecrets-template-app.service"):
            expect(name in u, f"no {name}: {sorted(u)}")
            for key in ("Requires", "After"):
                expect("var-lib-netsecrets.mount" in words(u[name], key), f"{name} {key}= lacks the mount:\n{u[name]}")
        expect("run-netsecrets.mount" in m and unit_value(m["run-netsecrets.mount"], "What") == "ramfs",
               f"stage 2: /run/netsecrets (rendered templates) is ramfs too: {sorted(m)}")
        expect("run-netsecrets.mount" in words(u["netsecrets-template-app.service"], "Requires"),
               "the stage-2 render unit Requires= run-netsecrets.mount")
        expect(unit_value(u["netsecrets-credentials.service"], "ProtectProc") == "default",
               "the credentials service must see /proc/<pid>/cgroup of systemd's loader")
        im = x["initrdMountUnits"]
        expect(im is not None and "run-netsecrets.mount" in im, f"no run-netsecrets.mount in the initrd: {im}")
        imu = im["run-netsecrets.mount"]
        expect(unit_value(imu, "What") == "ramfs" and unit_value(imu, "Where") == "/run/netsecrets", imu)
        expect(unit_value(imu, "IgnoreOnIsolate") in ("true", "yes"), imu)
        iu = iunits("storage-luks")
        for name in ("netsecrets-secret-db-password.service", "netsecrets-secret-luks-root.service",
                     "netsecrets-client.service"):
            for key in ("Requires", "After"):
                expect("run-netsecrets.mount" in words(iu[name], key), f"stage 1 {name} {key}= lacks the mount")
        d = f("storage-disk")
        expect("var-lib-netsecrets.mount" not in (d["mountUnits"] or {}), f"keepOnDisk: no mount: {d['mountUnits']}")
        expect("var-lib-netsecrets.mount" not in words(units("storage-disk")["netsecrets-secret-db-password.service"],
                                                       "Requires"), "keepOnDisk: no Requires= on a mount")
    R.check("NixOS: /var/lib/netsecrets is a ramfs mount (var-lib-netsecrets.mount, 0751) that every stage-2 "
            "fetch, render, refresh and credentials unit Requires= and is After=; stage 1 likewise on "
            "/run/netsecrets (IgnoreOnIsolate: kept across switch-root); keepOnDisk = true: no mount", storage_ram)

    def storage_initrd_only():
        x = f("storage-luks")
        expect(x["drvPath"], "the LUKS example evaluates to a system")
        path = "/run/netsecrets/initrd-only/luks-root/luks-root"
        expect(x["secrets"]["luks-root"]["initrdFile"] == path, x["secrets"]["luks-root"])
        expect(x["luksKeyFile"] == path, x["luksKeyFile"])
        u = units("storage-luks")
        expect("netsecrets-secret-luks-root.service" not in u, "initrdOnly: no stage-2 fetch unit")
        expect("netsecrets-secret-db-password.service" in u, "the other secret has its stage-2 unit")
        expect(not any("luks-root" in t for t in u.values()), "initrdOnly: no stage-2 unit names it")
        expect(not any("luks-root" in r for r in x["tmpfiles"]), f"initrdOnly: no tmpfiles rule: {x['tmpfiles']}")
        iu = iunits("storage-luks")
        lu = iu["netsecrets-secret-luks-root.service"]
        has(f'"--file-output" "{path}"', exec_start(lu), "ExecStart")
        expect(words(lu, "RuntimeDirectory") == ["netsecrets/initrd-only/luks-root"],
               f"only its own directory (systemd empties every RuntimeDirectory= it does not preserve):\n{lu}")
        expect(unit_value(lu, "RuntimeDirectoryPreserve") in ("false", "no"), lu)
        for key in ("Conflicts", "Before"):
            expect("initrd-switch-root.target" in words(lu, key), f"{key}= lacks initrd-switch-root.target:\n{lu}")
        other = iu["netsecrets-secret-db-password.service"]
        expect(unit_value(other, "RuntimeDirectoryPreserve") in ("true", "yes"), other)
        expect("initrd-switch-root.target" not in words(other, "Conflicts"), other)
        expect("netsecrets-secret-luks-root.service" in iu["netsecrets-client.service"], "stage 1 waits for it")
        asserts("storage-refused", "secrets.luks-root.initrdOnly needs netsecrets.client.enableInitrd",
                "secrets.luks-root.initrdOnly: the secret is never fetched in stage 2")
    R.check("NixOS: secrets.<name>.initrdOnly (the LUKS example): fetched in stage 1 into its own "
            "RuntimeDirectory (removed when the unit stops; Conflicts=/Before= initrd-switch-root.target), "
            "no stage-2 unit or tmpfiles rule; refused with requiredBy or without enableInitrd", storage_initrd_only)
