# enableInitrd: the secrets are fetched in systemd stage 1 (after the initrd
# network is online, before cryptsetup-pre.target) to /run/netsecrets/<name>,
# and again in stage 2 to /var/lib/netsecrets/<name>.
#
# The password and the key are given literally here (netsecrets.client.password
# and encryptionKey): they become store files handed to stage 1 through
# boot.initrd.secrets, which works in a VM without a boot loader
# (boot.loader.supportsInitrdSecrets is false there; a file option would be
# refused by the module's assertion). On a real machine use
# passwordFile/encryptionKeyFile with grub or systemd-boot (appended to the
# initrd by the boot loader) or enableInitrdPassword.
{ self }:
let
  common = import ./common.nix;
in
{
  name = "netsecrets-initrd-fetch";
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
        password = common.password;
        encryptionKey = common.key;
        request_secrets = [
          "db-password"
          "api-key"
        ];
        enableInitrd = true;
        timeout = 120;
        verbose = true;
      };
    };

  testScript = ''
    server.start()
    server.wait_for_unit("netsecrets-daemon.service")

    client.start()
    client.wait_for_unit("multi-user.target")

    with subtest("stage 1 wrote /run/netsecrets/<name> (root, 0400) before switch-root"):
        assert client.succeed("cat /run/netsecrets/db-password") == "${common.dbPassword}"
        assert client.succeed("cat /run/netsecrets/api-key") == "${common.apiKey}"
        assert client.succeed("stat -c '%U %G %a' /run/netsecrets/db-password").strip() == "root root 400"
        # The stage-1 unit ran in the initrd (its journal is flushed into stage 2's).
        assert "netsecrets: fetch secret db-password in stage 1" in client.succeed("journalctl -b -o cat")

    with subtest("stage 2 fetched again"):
        client.wait_for_unit("netsecrets-client.service")
        assert client.succeed("cat /var/lib/netsecrets/db-password") == "${common.dbPassword}"
  '';
}
