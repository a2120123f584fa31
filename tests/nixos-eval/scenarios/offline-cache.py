"""The offline cache (netsecrets.client.offlineCache): stage-2 flags, none in stage 1, refused settings.

The scenarios are in offline-cache.nix."""

from lib import R, exec_start, expect, has, unit_lines, unit_value, words

# Evaluation groups (one nix-instantiate each) of the scenarios in offline-cache.nix.
GROUPS = {"offline": ["offline-cache", "offline-cache-refused"]}
# Scenarios that are whole systems: config.system.build.toplevel.drvPath must evaluate.
WHOLE_SYSTEMS = ["offline-cache"]
# Secret values written in offline-cache.nix: none may appear in any rendered unit.
LITERALS = []


def checks(ctx):
    f, units, iunits, warns, no_warn, asserts = ctx.f, ctx.units, ctx.iunits, ctx.warns, ctx.no_warn, ctx.asserts

    def offline_stage2():
        x = f("offline-cache")
        u = units("offline-cache")
        creds = x["systemctl"].replace("/bin/systemctl", "/bin/systemd-creds")
        want = ('"--offline-cache" "/var/lib/netsecrets-cache" "--offline-after" "12" "--offline-max-age" "86400" '
                f'"--systemd-creds" "{creds}"')
        fetch = u["netsecrets-secret-db-password.service"]
        has(want, exec_start(fetch), "the fetch unit's ExecStart")
        refresh = unit_lines(u["netsecrets-refresh.service"], "ExecStart")
        expect(len(refresh) == 1 and want in refresh[0], f"refresh ExecStart: {refresh}")
        for t in (fetch, u["netsecrets-refresh.service"]):
            expect("/var/lib/netsecrets-cache" in words(t, "ReadWritePaths"), t)
            expect(unit_value(t, "PrivateDevices") == "false" and unit_value(t, "DevicePolicy") == "closed", t)
            expect(unit_lines(t, "DeviceAllow") == ["/dev/tpmrm0 rw"], t)
            for key in ("Wants", "After"):
                expect("netsecrets-cache-setup.service" in words(t, key), f"{key}= {words(t, key)}")
        setup = u["netsecrets-cache-setup.service"]
        expect(exec_start(setup) == x["systemctl"].replace("/bin/systemctl", "/bin/systemd-creds setup"), setup)
        expect(unit_value(setup, "ConditionPathExists") == "!/var/lib/systemd/credential.secret", setup)
        expect("d /var/lib/netsecrets-cache 0700 root root -" in x["tmpfiles"], x["tmpfiles"])
        expect(x["client"]["offlineCache"] == {"enable": True, "after": 12, "maxAge": 86400}, x["client"]["offlineCache"])
        no_warn("offline-cache", "offlineCache")
        # Off by default: no flag, no directory, no device.
        d = units("original-client")
        for t in d.values():
            expect("--offline" not in t and "netsecrets-cache" not in t and "tpmrm0" not in t, t)
        expect(f("original-client")["client"]["offlineCache"] == {"enable": False, "after": 10, "maxAge": 604800},
               f("original-client")["client"]["offlineCache"])
    R.check("NixOS: offlineCache: stage-2 fetch and refresh units pass --offline-cache /var/lib/netsecrets-cache "
            "--offline-after --offline-max-age --systemd-creds <systemd's>, may write the cache and open "
            "/dev/tpmrm0 only, after netsecrets-cache-setup (systemd-creds setup); tmpfiles 0700 root; off by "
            "default", offline_stage2)

    def offline_stage1():
        iu = iunits("offline-cache")
        fetch = iu["netsecrets-secret-db-password.service"]
        expect("--offline" not in fetch and "systemd-creds" not in fetch, fetch)
        has('"--file-output" "/run/netsecrets/db-password"', exec_start(fetch), "stage-1 ExecStart")
    R.check("NixOS: offlineCache: the stage-1 (initrd) fetch gets no cache flags (the host key and the cache "
            "are on the root file system)", offline_stage1)

    def offline_refused():
        asserts("offline-cache-refused", "offlineCache.after (10 s) must be below netsecrets.client.timeout (10 s)")
        warns("offline-cache-refused", "offlineCache is enabled without netsecrets.client.refreshInterval")
    R.check("NixOS: offlineCache: after >= timeout is refused; no refreshInterval is warned about", offline_refused)
