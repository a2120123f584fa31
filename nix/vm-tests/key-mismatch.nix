# Client and server with different encryption keys: the fetch fails loudly
# (failed units, a `netsecrets: ...` error in the journal, non-zero exit) and
# nothing is written; the server keeps serving.
{ self }:
let
  common = import ./common.nix;
in
{
  name = "netsecrets-key-mismatch";
  defaults.imports = [ self.nixosModules.default ];

  nodes.server = common.server { };

  nodes.client =
    { config, nodes, ... }:
    {
      imports = [
        (common.client {
          serverIp = nodes.server.networking.primaryIPAddress;
          keyFile = "/var/lib/test-secrets/wrong-key";
          timeout = 10;
        })
      ];
      systemd.tmpfiles.rules = [ "f /var/lib/test-secrets/wrong-key 0400 root root - not-the-server-key" ];
      environment.systemPackages = [ config.netsecrets.client.package ];
    };

  testScript =
    { nodes, ... }:
    ''
      start_all()
      server.wait_for_unit("netsecrets-daemon.service")

      with subtest("the fetch units and the aggregate fail, nothing is written"):
          client.wait_until_succeeds("systemctl is-failed netsecrets-secret-db-password.service", timeout=120)
          client.wait_until_succeeds("systemctl is-failed netsecrets-client.service", timeout=120)
          client.fail("test -e /var/lib/netsecrets/db-password")
          # The binary's own error line (only the unit's processes, not PID 1's
          # messages about the unit) and its exit status 1.
          assert "netsecrets:" in client.succeed("journalctl -b -o cat _SYSTEMD_UNIT=netsecrets-secret-db-password.service")
          assert client.succeed("systemctl show -p ExecMainStatus --value netsecrets-secret-db-password.service").strip() == "1"
          assert "${common.dbPassword}" not in client.succeed("journalctl -b -o cat")

      with subtest("by hand: non-zero exit and a one-line error"):
          status, out = client.execute(
              "netsecrets send --server ${nodes.server.networking.primaryIPAddress} --port ${toString common.port}"
              " --password-file /var/lib/test-secrets/password --encryption-key-file /var/lib/test-secrets/wrong-key"
              " --request_secrets db-password --timeout 5 2>&1"
          )
          print(out)
          assert status != 0, "a client with the wrong key got an answer"
          assert "netsecrets:" in out
          assert "${common.dbPassword}" not in out

      with subtest("the server is still up and serves a client with the right key"):
          server.succeed("systemctl is-active netsecrets-daemon.service")
          client.succeed(
              "netsecrets send --server ${nodes.server.networking.primaryIPAddress} --port ${toString common.port}"
              " --password-file /var/lib/test-secrets/password --encryption-key-file /var/lib/test-secrets/key"
              " --request_secrets db-password --file-output /root/db-password"
          )
          assert client.succeed("cat /root/db-password") == "${common.dbPassword}"
    '';
}
