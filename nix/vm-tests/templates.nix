# Templates: a config file with placeholders is rendered on the client with
# the fetched values, for its owner and mode, before the service that needs
# it; the placeholder `netsecrets placeholder NAME` prints is the one the
# module put in the template; a new value on the server, fetched again,
# renders the file again (the .path unit on the secret's file).
{ self }:
let
  common = import ./common.nix;
  newValue = "rotated-db-value";
in
{
  name = "netsecrets-templates";
  defaults.imports = [ self.nixosModules.default ];

  nodes.server = common.server { };

  nodes.client =
    { config, nodes, ... }:
    {
      imports = [ (common.client { serverIp = nodes.server.networking.primaryIPAddress; }) ];
      users.users.myapp = {
        isSystemUser = true;
        group = "myapp";
      };
      users.groups.myapp = { };
      netsecrets.client.templates."app.conf" = {
        content = ''
          [db]
          password = ${config.netsecrets.placeholder.db-password}
          [api]
          key = ${config.netsecrets.placeholder.api-key}
        '';
        owner = "myapp";
        group = "myapp";
        mode = "0440";
        requiredBy = [ "myapp.service" ];
      };
      # Records what it found when it started.
      systemd.services.myapp = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = "/run/current-system/sw/bin/cp /run/netsecrets/rendered/app.conf /run/myapp-saw";
        };
      };
      environment.systemPackages = [ config.netsecrets.client.package ];
      environment.etc."placeholder-db-password".text = config.netsecrets.placeholder.db-password;
    };

  testScript = ''
    start_all()
    server.wait_for_unit("netsecrets-daemon.service")
    client.wait_for_unit("myapp.service")

    want = "[db]\npassword = ${common.dbPassword}\n[api]\nkey = ${common.apiKey}\n"

    with subtest("rendered with the values, owner and mode, before the service that needs it"):
        assert client.succeed("cat /run/netsecrets/rendered/app.conf") == want
        assert client.succeed("stat -c '%U %G %a' /run/netsecrets/rendered/app.conf").strip() == "myapp myapp 440"
        assert client.succeed("cat /run/myapp-saw") == want

    with subtest("the CLI prints the module's placeholder"):
        assert client.succeed("netsecrets placeholder db-password").strip() == client.succeed("cat /etc/placeholder-db-password")

    with subtest("a new value, fetched again, renders the file again"):
        server.succeed("printf %s ${newValue} > /var/lib/test-secrets/db-password")
        server.succeed("systemctl restart netsecrets-daemon.service")
        server.wait_for_unit("netsecrets-daemon.service")
        client.succeed("systemctl restart netsecrets-secret-db-password.service")
        client.wait_until_succeeds("grep -qF 'password = ${newValue}' /run/netsecrets/rendered/app.conf")
        assert client.succeed("stat -c '%U %G %a' /run/netsecrets/rendered/app.conf").strip() == "myapp myapp 440"
  '';
}
