# Named clients: each its own password (made with `netsecrets keygen
# --password`, here fixed test values) and key. The laptop reads db-password
# and is told "not found" for api-key, which it may not read; the old client
# is served until it is removed from netsecrets.server.clients and the server
# switches (a reload), then refused, its last copy left intact; the server's
# log names the address it refused.
{ self }:
let
  common = import ./common.nix;
  laptopPassword = "laptop-password-0123456789abcdef";
  laptopKey = "laptop-key-0123456789abcdef0123456789";
  oldPassword = "old-password-0123456789abcdef";
  oldKey = "old-key-0123456789abcdef0123456789abc";

  # The client's own pair, root-only, where its module reads it.
  ownPair = password: key: {
    systemd.tmpfiles.rules = [
      "d /var/lib/own 0700 root root -"
      "f /var/lib/own/password 0400 root root - ${password}"
      "f /var/lib/own/key 0400 root root - ${key}"
    ];
  };

  namedClient =
    password: key:
    { config, nodes, ... }:
    {
      imports = [ (ownPair password key) ];
      netsecrets.client = {
        enable = true;
        server = nodes.server.networking.primaryIPAddress;
        port = common.port;
        passwordFile = "/var/lib/own/password";
        encryptionKeyFile = "/var/lib/own/key";
        request_secrets = [ "db-password" ];
        timeout = 120;
        verbose = true;
      };
      environment.systemPackages = [ config.netsecrets.client.package ];
    };
in
{
  name = "netsecrets-named-clients";
  defaults.imports = [ self.nixosModules.default ];

  nodes.server =
    { lib, nodes, ... }:
    let
      laptop = {
        passwordFile = "/var/lib/test-secrets/laptop-password";
        encryptionKeyFile = "/var/lib/test-secrets/laptop-key";
        authorizedIps = [ nodes.laptop.networking.primaryIPAddress ];
        secrets = [ "db-password" ];
      };
    in
    {
      imports = [ common.secretFiles ];
      systemd.tmpfiles.rules = [
        "f /var/lib/test-secrets/laptop-password 0400 root root - ${laptopPassword}"
        "f /var/lib/test-secrets/laptop-key 0400 root root - ${laptopKey}"
        "f /var/lib/test-secrets/old-password 0400 root root - ${oldPassword}"
        "f /var/lib/test-secrets/old-key 0400 root root - ${oldKey}"
      ];
      netsecrets.server = {
        enable = true;
        port = common.port;
        secrets = [
          "db-password"
          "api-key"
        ];
        secretsDir = "/var/lib/test-secrets";
        # The test network stays open at the daemon, so that a revoked client
        # reaches it and is refused there (with a log line), not by the kernel.
        authorized_ips = [ "192.168.1.0/24" ];
        clients = {
          inherit laptop;
          old = {
            passwordFile = "/var/lib/test-secrets/old-password";
            encryptionKeyFile = "/var/lib/test-secrets/old-key";
            authorizedIps = [ nodes.old.networking.primaryIPAddress ];
            secrets = [ "*" ];
          };
        };
        openFirewall = true;
        verbose = true;
      };
      # The same server without the old client: switching to it revokes it.
      specialisation.revoked.configuration.netsecrets.server.clients = lib.mkForce { inherit laptop; };
    };

  nodes.laptop = namedClient laptopPassword laptopKey;
  nodes.old = namedClient oldPassword oldKey;

  testScript =
    { nodes, ... }:
    let
      serverIp = nodes.server.networking.primaryIPAddress;
      oldIp = nodes.old.networking.primaryIPAddress;
      byHand =
        name:
        "netsecrets send --server ${serverIp} --port ${toString common.port}"
        + " --password-file /var/lib/own/password --encryption-key-file /var/lib/own/key"
        + " --request_secrets ${name} --timeout 10 2>&1";
    in
    ''
      start_all()
      server.wait_for_unit("netsecrets-daemon.service")

      with subtest("each client with its own password and key"):
          laptop.wait_for_unit("netsecrets-client.service")
          old.wait_for_unit("netsecrets-client.service")
          assert laptop.succeed("cat /var/lib/netsecrets/db-password") == "${common.dbPassword}"
          assert old.succeed("cat /var/lib/netsecrets/db-password") == "${common.dbPassword}"

      with subtest("a secret the client may not read is answered like a missing one"):
          status, out = laptop.execute("${byHand "api-key"}")
          print(out)
          assert status != 0 and "${common.apiKey}" not in out

      with subtest("removing a client and switching revokes it"):
          server.succeed("/run/current-system/specialisation/revoked/bin/switch-to-configuration test")
          server.succeed("! grep -q '^old ' /etc/netsecrets/clients")
          server.wait_for_unit("netsecrets-daemon.service")
          status, out = old.execute("${byHand "db-password"}")
          print(out)
          assert status != 0, "a revoked client was served"
          assert "${common.dbPassword}" not in out
          # Its last copy stays as it was; the laptop is still served.
          old.fail("systemctl restart netsecrets-secret-db-password.service")
          assert old.succeed("cat /var/lib/netsecrets/db-password") == "${common.dbPassword}"
          assert "${common.dbPassword}" in laptop.succeed("${byHand "db-password"}")

      with subtest("the server's log names the refused address"):
          server.wait_until_succeeds(
              "journalctl -u netsecrets-daemon.service | grep -F 'peer=${oldIp}:' | grep -v outcome=served"
          )
    '';
}
