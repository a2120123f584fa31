# A client outside netsecrets.server.authorized_ips gets nothing (systemd's
# IPAddressDeny= drops it before the daemon sees it; the daemon would drop it
# too), while an authorized client on the same network is served.
{ self }:
let
  common = import ./common.nix;
in
{
  name = "netsecrets-unauthorized-client";
  defaults.imports = [ self.nixosModules.default ];

  nodes.server =
    { nodes, ... }:
    common.server { authorizedIps = [ "${nodes.client.networking.primaryIPAddress}/32" ]; };

  nodes.client = { nodes, ... }: common.client { serverIp = nodes.server.networking.primaryIPAddress; };

  nodes.attacker =
    { config, nodes, ... }:
    {
      imports = [
        (common.client {
          serverIp = nodes.server.networking.primaryIPAddress;
          timeout = 10;
        })
      ];
      environment.systemPackages = [ config.netsecrets.client.package ];
    };

  testScript =
    { nodes, ... }:
    ''
      start_all()
      server.wait_for_unit("netsecrets-daemon.service")
      client.wait_for_unit("netsecrets-client.service")
      assert client.succeed("cat /var/lib/netsecrets/db-password") == "${common.dbPassword}"

      with subtest("the unit on a client outside authorized_ips fails and writes nothing"):
          attacker.wait_until_succeeds("systemctl is-failed netsecrets-secret-db-password.service", timeout=120)
          attacker.wait_until_succeeds("systemctl is-failed netsecrets-client.service", timeout=120)
          attacker.fail("test -e /var/lib/netsecrets/db-password")
          attacker.fail("test -e /var/lib/netsecrets/api-key")

      with subtest("by hand, with the right password and key: still nothing"):
          status, out = attacker.execute(
              "netsecrets send --server ${nodes.server.networking.primaryIPAddress} --port ${toString common.port}"
              " --password-file /var/lib/test-secrets/password --encryption-key-file /var/lib/test-secrets/key"
              " --request_secrets db-password --timeout 5 2>&1"
          )
          print(out)
          assert status != 0, "a client outside authorized_ips was served"
          assert "${common.dbPassword}" not in out
    '';
}
