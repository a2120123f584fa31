# Shared pieces of the VM tests in this directory (one file per scenario).
#
# The test values below pass through the Nix store (they are written by
# tmpfiles rules); that is fine for throw-away test VMs and is exactly what the
# modules refuse to do for real secrets.
rec {
  dbPassword = "s3cret-db-value";
  apiKey = "api-key-value";
  password = "test-password";
  key = "test-encryption-key";
  port = 8081;

  # Root-only files: the password and the key (both sides) ...
  credentialFiles = {
    systemd.tmpfiles.rules = [
      "d /var/lib/test-secrets 0700 root root -"
      "f /var/lib/test-secrets/password 0400 root root - ${password}"
      "f /var/lib/test-secrets/key 0400 root root - ${key}"
    ];
  };
  # ... and the served values (server only), in the layout the server module
  # expects with netsecrets.server.secretsDir = /var/lib/test-secrets.
  secretFiles = {
    imports = [ credentialFiles ];
    systemd.tmpfiles.rules = [
      "f /var/lib/test-secrets/db-password 0400 root root - ${dbPassword}"
      "f /var/lib/test-secrets/api-key 0400 root root - ${apiKey}"
    ];
  };

  # A netsecrets server serving db-password and api-key to `authorizedIps`.
  server =
    {
      authorizedIps ? [ "192.168.1.0/24" ],
    }:
    {
      imports = [ secretFiles ];
      netsecrets.server = {
        enable = true;
        inherit port;
        password_file = "/var/lib/test-secrets/password";
        secrets = [
          "db-password"
          "api-key"
        ];
        secretsDir = "/var/lib/test-secrets";
        encryptionKeyFile = "/var/lib/test-secrets/key";
        authorized_ips = authorizedIps;
        openFirewall = true;
        verbose = true;
      };
    };

  # A stage-2 client of `serverIp` using files for the password and the key.
  # The server boots in parallel: by default keep retrying for a while. A
  # scenario that expects failure passes a short `timeout` and/or another
  # `keyFile` here (setting them again in the node would be a conflicting
  # definition).
  client =
    {
      serverIp,
      timeout ? 120,
      keyFile ? "/var/lib/test-secrets/key",
    }:
    {
      imports = [ credentialFiles ];
      netsecrets.client = {
        enable = true;
        server = serverIp;
        port = toString port;
        passwordFile = "/var/lib/test-secrets/password";
        encryptionKeyFile = keyFile;
        request_secrets = [
          "db-password"
          "api-key"
        ];
        inherit timeout;
        verbose = true;
      };
    };

  # Stage-1 networking on the test VLAN (eth1) with the node's test address.
  initrdNetwork =
    { config, ... }:
    {
      virtualisation.graphics = false; # /dev/console is the serial line the driver reads
      boot.initrd.systemd.enable = true;
      boot.initrd.network.enable = true;
      # Stage 2's own network setup takes over eth1.
      boot.initrd.network.flushBeforeStage2 = true;
      boot.initrd.availableKernelModules = [ "virtio_net" ];
      boot.initrd.systemd.network.networks."10-test-vlan" = {
        matchConfig.Name = "eth1";
        address = [ "${config.networking.primaryIPAddress}/24" ];
      };
      boot.initrd.systemd.network.wait-online.timeout = 60;
    };
}
