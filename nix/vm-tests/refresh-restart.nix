# Change actions: a service with restartUnits on its secret is restarted when
# (and only when) the value changes. No refreshInterval is set: the module
# adds netsecrets-refresh.timer because a change action exists. Restarting the
# fetch unit with the same value restarts nothing (the service has Wants= on
# it and Requires= on the netsecrets-ready gate, not Requires= on the fetch
# unit); a refresh never starts a service an administrator stopped.
{ self }:
let
  common = import ./common.nix;
  newValue = "rotated-db-value";
  newerValue = "rotated-again";
in
{
  name = "netsecrets-refresh-restart";
  defaults.imports = [ self.nixosModules.default ];

  nodes.server = common.server { };

  nodes.client =
    { nodes, ... }:
    {
      imports = [ (common.client { serverIp = nodes.server.networking.primaryIPAddress; }) ];
      secrets.db-password = {
        requiredBy = [ "myapp.service" ];
        restartUnits = [ "myapp.service" ];
      };
      systemd.services.myapp = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = "/run/current-system/sw/bin/sleep infinity";
      };
    };

  testScript = ''
    def invocation():
        return client.succeed("systemctl show -p InvocationID --value myapp.service").strip()

    def serve(value):
        server.succeed(f"printf %s {value} > /var/lib/test-secrets/db-password")
        server.succeed("systemctl restart netsecrets-daemon.service")
        server.wait_for_unit("netsecrets-daemon.service")

    start_all()
    server.wait_for_unit("netsecrets-daemon.service")
    client.wait_for_unit("myapp.service")
    first = invocation()

    with subtest("change actions without refreshInterval get a refresh timer"):
        client.succeed("systemctl is-active netsecrets-refresh.timer")

    with subtest("the same value: a refresh or a restart of the fetch unit restarts nothing"):
        client.succeed("systemctl start netsecrets-refresh.service")
        client.succeed("systemctl restart netsecrets-secret-db-password.service")
        client.succeed("systemctl restart 'netsecrets-secret-*'")
        client.sleep(2)
        assert invocation() == first, "myapp was restarted without a change"

    with subtest("a new value: the refresh writes it and restarts myapp"):
        serve("${newValue}")
        client.succeed("systemctl start netsecrets-refresh.service")
        assert client.succeed("cat /var/lib/netsecrets/db-password") == "${newValue}"
        client.wait_until_succeeds(f"test \"$(systemctl show -p InvocationID --value myapp.service)\" != {first}")
        client.wait_for_unit("myapp.service")

    with subtest("a stopped service stays stopped through a refresh with a new value"):
        client.succeed("systemctl stop myapp.service")
        serve("${newerValue}")
        client.succeed("systemctl start netsecrets-refresh.service")
        assert client.succeed("cat /var/lib/netsecrets/db-password") == "${newerValue}"
        client.sleep(2)
        client.fail("systemctl is-active myapp.service")
  '';
}
