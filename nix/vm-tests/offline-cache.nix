# The offline cache (netsecrets.client.offlineCache): a client fetches its
# secrets, which are also sealed with systemd-creds into
# /var/lib/netsecrets-cache (no plaintext there); with the server stopped the
# fetch units still succeed from the cache (a journal line gives the copy's
# age); with the server back but refusing this client's password, they fail
# and the cache is not used; the server answering again brings the value back.
{ self }:
let
  common = import ./common.nix;
in
{
  name = "netsecrets-offline-cache";
  defaults.imports = [ self.nixosModules.default ];

  nodes.server = common.server { };

  nodes.client =
    { nodes, ... }:
    {
      imports = [
        (common.client {
          serverIp = nodes.server.networking.primaryIPAddress;
          timeout = 60;
        })
      ];
      netsecrets.client.offlineCache = {
        enable = true;
        after = 3;
      };
      netsecrets.client.refreshInterval = "1h";
    };

  testScript = ''
    start_all()
    server.wait_for_unit("netsecrets-daemon.service")
    client.wait_for_unit("netsecrets-secret-db-password.service")
    client.wait_for_unit("netsecrets-secret-api-key.service")

    with subtest("the cache is filled, sealed, root-only"):
        assert client.succeed("stat -c '%U %a' /var/lib/netsecrets-cache").strip() == "root 700"
        for name in ("db-password", "api-key"):
            assert client.succeed(f"stat -c '%U %a' /var/lib/netsecrets-cache/{name}.cred").strip() == "root 600"
        # grep exits 1 for "no match".
        client.succeed("rc=0; grep -R -q -e '${common.dbPassword}' -e '${common.apiKey}' /var/lib/netsecrets-cache || rc=$?; test $rc -eq 1")
        client.succeed("test -f /var/lib/systemd/credential.secret")

    with subtest("server down: the fetch units succeed from the cache"):
        server.succeed("systemctl stop netsecrets-daemon.service")
        client.succeed("rm /var/lib/netsecrets/db-password")
        client.succeed("systemctl restart netsecrets-secret-db-password.service")
        assert client.succeed("cat /var/lib/netsecrets/db-password") == "${common.dbPassword}"
        log = client.succeed("journalctl -b -o cat _SYSTEMD_UNIT=netsecrets-secret-db-password.service")
        assert "using the offline cache's copy" in log, log
        assert "${common.dbPassword}" not in client.succeed("journalctl -b -o cat")

    with subtest("server up with another password: no cache, the unit fails"):
        server.succeed("chmod 600 /var/lib/test-secrets/password && echo -n other-password > /var/lib/test-secrets/password")
        server.succeed("systemctl start netsecrets-daemon.service")
        server.wait_for_unit("netsecrets-daemon.service")
        client.fail("systemctl restart netsecrets-secret-api-key.service")
        client.succeed("test -f /var/lib/netsecrets-cache/api-key.cred")

    with subtest("server answering again: fetched from it"):
        server.succeed("echo -n '${common.password}' > /var/lib/test-secrets/password")
        server.succeed("systemctl restart netsecrets-daemon.service")
        server.wait_for_unit("netsecrets-daemon.service")
        client.succeed("systemctl restart netsecrets-secret-api-key.service")
        assert client.succeed("cat /var/lib/netsecrets/api-key") == "${common.apiKey}"
  '';
}
