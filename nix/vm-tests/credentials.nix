# A secret as a systemd credential: the listed consumer gets it in
# $CREDENTIALS_DIRECTORY when it starts, fetched then by `netsecrets
# credentials` through its socket; it is never written under
# /var/lib/netsecrets; a unit not listed that asks for it does not start.
{ self }:
let
  common = import ./common.nix;
in
{
  name = "netsecrets-credentials";
  defaults.imports = [ self.nixosModules.default ];

  nodes.server = common.server { };

  nodes.client =
    { nodes, ... }:
    {
      imports = [ (common.client { serverIp = nodes.server.networking.primaryIPAddress; }) ];
      secrets.api-key = {
        credential = true;
        writeFile = false;
        requiredBy = [ "consumer.service" ];
      };
      # Started by the test once the server is up (the credential is fetched
      # when the unit starts).
      systemd.services.consumer.serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "/run/current-system/sw/bin/cp %d/api-key /run/consumer-saw";
      };
      # Not in requiredBy: asks for the same credential and must not get it.
      systemd.services.intruder = {
        requires = [ "netsecrets-credentials.socket" ];
        after = [ "netsecrets-credentials.socket" ];
        serviceConfig = {
          Type = "oneshot";
          LoadCredential = [ "api-key:/run/netsecrets-credentials.sock" ];
          ExecStart = "/run/current-system/sw/bin/cp %d/api-key /run/intruder-saw";
        };
      };
    };

  testScript = ''
    start_all()
    server.wait_for_unit("netsecrets-daemon.service")
    client.wait_for_unit("netsecrets-credentials.socket")
    client.wait_for_unit("netsecrets-secret-db-password.service")

    with subtest("the listed consumer gets the value as a credential"):
        client.succeed("systemctl start consumer.service")
        assert client.succeed("cat /run/consumer-saw") == "${common.apiKey}"

    with subtest("never written to /var/lib/netsecrets, no fetch unit"):
        client.fail("test -e /var/lib/netsecrets/api-key")
        client.fail("systemctl cat netsecrets-secret-api-key.service")

    with subtest("a unit not listed does not start"):
        client.fail("systemctl start intruder.service")
        client.fail("test -e /run/intruder-saw")
  '';
}
