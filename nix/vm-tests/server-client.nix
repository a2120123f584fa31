# A server and a client: every requested secret arrives with its content,
# owner and mode; config.secrets.<name>.file works for consumers; one secret
# the server does not have fails netsecrets-client.service without stopping
# the others; nothing secret shows up in units or the process list; the
# daemon's systemd-analyze security exposure stays <= 2.0.
{ self }:
let
  common = import ./common.nix;
in
{
  name = "netsecrets-server-client";
  defaults.imports = [ self.nixosModules.default ];

  nodes.server = common.server { };

  nodes.client =
    { config, nodes, ... }:
    {
      imports = [ (common.client { serverIp = nodes.server.networking.primaryIPAddress; }) ];
      netsecrets.client.request_secrets = [ "not-served" ];
      secrets.api-key = {
        owner = "alice";
        group = "users";
        mode = "0440";
      };
      users.users.alice.isNormalUser = true;
      environment.etc."myapp/db.conf".source = config.secrets.db-password.file;
    };

  testScript = ''
    start_all()
    server.wait_for_unit("netsecrets-daemon.service")

    client.wait_for_unit("netsecrets-secret-db-password.service")
    client.wait_for_unit("netsecrets-secret-api-key.service")

    with subtest("values, owners and modes"):
        assert client.succeed("cat /var/lib/netsecrets/db-password") == "${common.dbPassword}"
        assert client.succeed("cat /var/lib/netsecrets/api-key") == "${common.apiKey}"
        assert client.succeed("stat -c '%U %G %a' /var/lib/netsecrets/db-password").strip() == "root root 400"
        assert client.succeed("stat -c '%U %G %a' /var/lib/netsecrets/api-key").strip() == "alice users 440"
        assert client.succeed("stat -c '%U %G %a' /var/lib/netsecrets").strip() == "root root 751"
        client.succeed("su alice -c 'cat /var/lib/netsecrets/api-key'")
        client.fail("su alice -c 'cat /var/lib/netsecrets/db-password'")

    with subtest("config.secrets.<name>.file for consumers"):
        assert client.succeed("cat /etc/myapp/db.conf") == "${common.dbPassword}"

    with subtest("a missing secret fails netsecrets-client.service, the others are still fetched"):
        client.wait_until_succeeds("systemctl is-failed netsecrets-secret-not-served.service")
        client.wait_until_succeeds("systemctl is-failed netsecrets-client.service")
        client.fail("test -e /var/lib/netsecrets/not-served")
        client.succeed("test -s /var/lib/netsecrets/db-password")

    with subtest("no secret in units, command lines or environments"):
        # grep exits 1 for "no match" (2 would be an error, which must not pass).
        patterns = "-e '${common.dbPassword}' -e '${common.apiKey}' -e '${common.password}' -e '${common.key}'"
        server.succeed(f"rc=0; grep -R -q {patterns} /etc/systemd/system/ /etc/netsecrets/ || rc=$?; test $rc -eq 1")
        client.succeed(f"rc=0; grep -R -q {patterns} /etc/systemd/system/ || rc=$?; test $rc -eq 1")
        pid = server.succeed("systemctl show -p MainPID --value netsecrets-daemon.service").strip()
        seen = server.succeed(f"tr '\\0' ' ' < /proc/{pid}/cmdline; tr '\\0' ' ' < /proc/{pid}/environ")
        for value in ("${common.password}", "${common.key}", "${common.dbPassword}", "${common.apiKey}"):
            assert value not in seen, "a secret is on the daemon's command line or in its environment"
        assert server.succeed(f"stat -c %U /proc/{pid}").strip() == "netsecrets"
        server.succeed("test -f /etc/netsecrets/config.json")

    with subtest("hardening: systemd-analyze security exposure <= 2.0"):
        out = server.succeed("systemd-analyze security netsecrets-daemon.service | tail -n 1")
        print(out)
        exposure = float(out.split(":")[1].split()[0])
        assert exposure <= 2.0, f"exposure {exposure} > 2.0"

    with subtest("restarting the aggregate retries only what failed"):
        client.fail("systemctl start netsecrets-client.service")
        client.succeed("systemctl is-active netsecrets-secret-db-password.service")
  '';
}
