# enableInitrdPassword: stage 1 asks for the password on the console
# (netsecrets-ask-password.service), copies it for stage 2
# (netsecrets-copy-password.service), fetches with it in stage 1, and the
# stage-2 client uses the copy in /run/secrets/netsecrets-password.
{ self }:
let
  common = import ./common.nix;
in
{
  name = "netsecrets-initrd-password-prompt";
  defaults.imports = [ self.nixosModules.default ];

  nodes.server = common.server { };

  nodes.client =
    { nodes, ... }:
    {
      imports = [ common.initrdNetwork ];
      netsecrets.client = {
        enable = true;
        server = nodes.server.networking.primaryIPAddress;
        port = common.port;
        # Literal key: a store file handed to stage 1 (see initrd-fetch.nix).
        encryptionKey = common.key;
        request_secrets = [ "db-password" ];
        enableInitrd = true;
        enableInitrdPassword = true;
        timeout = 120;
      };
    };

  testScript = ''
    server.start()
    server.wait_for_unit("netsecrets-daemon.service")

    client.start()
    client.wait_for_console_text("netsecrets password: ")
    client.send_console("${common.password}\n")
    client.wait_for_unit("multi-user.target")

    with subtest("the typed password was handed over and not echoed"):
        assert client.succeed("cat /run/secrets/netsecrets-password").strip() == "${common.password}"
        assert client.succeed("stat -c '%U %a' /run/secrets/netsecrets-password").strip() == "root 400"

    with subtest("stage 1 fetched with it"):
        assert client.succeed("cat /run/netsecrets/db-password") == "${common.dbPassword}"

    with subtest("stage 2 fetched with the copy"):
        client.wait_for_unit("netsecrets-client.service")
        assert client.succeed("cat /var/lib/netsecrets/db-password") == "${common.dbPassword}"
  '';
}
