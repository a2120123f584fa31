# enableInitrdPassword: stage 1 asks for the password on the console
# (netsecrets-ask-password.service) into /run/netsecrets-password, fetches
# with it in stage 1, and the stage-2 client loads the same file (/run
# survives switch-root). Nothing is created under /run/secrets, which
# sops-nix owns.
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

  testScript =
    { nodes, ... }:
    ''
    server.start()
    server.wait_for_unit("netsecrets-daemon.service")

    client.start()
    client.wait_for_console_text("netsecrets password: ")
    client.send_console("${common.password}\n")
    client.wait_for_unit("multi-user.target")

    with subtest("the typed password is kept for stage 2, root-only, and /run/secrets is left alone"):
        path = "${nodes.client.netsecrets.client.consolePasswordFile}"
        assert path == "/run/netsecrets-password"
        assert client.succeed(f"cat {path}").strip() == "${common.password}"
        assert client.succeed(f"stat -c '%U %a' {path}").strip() == "root 400"
        client.fail("test -e /run/secrets")

    with subtest("stage 1 fetched with it"):
        assert client.succeed("cat /run/netsecrets/db-password") == "${common.dbPassword}"

    with subtest("stage 2 fetched with the typed password"):
        client.wait_for_unit("netsecrets-client.service")
        assert client.succeed("cat /var/lib/netsecrets/db-password") == "${common.dbPassword}"
  '';
}
