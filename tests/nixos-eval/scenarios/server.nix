# The server module: the configuration users already have (verbatim), the
# documented file-based one, overrides, a port below 1024, named clients,
# rotation lists and admission limits; refused client names.
# Scenario name -> configuration; the expectations are in server.py.
{
  canaryDir,
  loaders,
  ...
}:
let
  # The server configuration users already have, verbatim (its comments
  # too): the module must keep accepting it as it is.
  originalServer = {
    netsecrets.server = {
      enable = true;
      ip = "10.0.0.1";
      port = "8081";
      password = "hunter2"; # or use password_file
      password_file = ""; # path to file containing password
      secrets = [
        "db-password"
        "api-key"
      ];
      authorized_ips = [ "10.0.0.0/24" ];
      encryptionKey = "my-aes-key"; # optional; or use encryptionKeyFile
      encryptionKeyFile = ""; # path to file; takes priority over encryptionKey
      insecure = false;
      verbose = false;
      # merge extra systemd serviceConfig keys
      systemdOverrides = { };
    };
  };

  # The documented file-based server (README.md, docs/nixos.md).
  docServer = {
    netsecrets.server = {
      enable = true;
      ip = "10.0.0.1";
      port = "8081";
      password_file = "/run/agenix/netsecrets-password";
      secrets = [
        "db-password"
        "api-key"
      ];
      authorized_ips = [ "10.0.0.0/24" ];
      encryptionKeyFile = "/run/agenix/netsecrets-key";
      insecure = false;
      verbose = false;
      openFirewall = true;
      systemdOverrides = { };
    };
  };

  # Everything at once on the server side: secretFiles, overrides, a literal
  # key that the key file makes ignored (it must reach nothing).
  overridesServer = {
    netsecrets.server = {
      enable = true;
      port = 8081;
      passwordFile = "/run/agenix/netsecrets-password"; # the client's spelling
      secrets = [
        "db-password"
        "api-key"
      ];
      secretFiles.db-password = "/run/agenix/db";
      secretsDir = "/run/agenix";
      authorized_ips = [
        "10.0.0.0/24"
        "fd00::/64"
      ];
      encryptionKey = "ignored-literal-key";
      encryptionKeyFile = "/run/agenix/netsecrets-key";
      verbose = true;
      openFirewall = true;
      systemdOverrides = {
        RestartSec = "30s";
        ProtectSystem = "full";
      };
    };
  };

  lowPortServer = {
    netsecrets.server = {
      enable = true;
      port = 443;
      password_file = "/run/keys/pw";
      secrets = [ "x" ];
      insecure = true;
      encryptionKeyFile = "/run/keys/key";
    };
  };

  # Two named clients (README, docs/nixos.md), each its own password and
  # key, beside the shared password; file contents come from canaryDir so
  # check.py can grep every derivation for them.
  twoClientServer = {
    netsecrets.server = {
      enable = true;
      ip = "10.0.0.1";
      port = 8081;
      password_file = "/run/agenix/netsecrets-password";
      encryptionKeyFile = "/run/agenix/netsecrets-key";
      secrets = [
        "wifi"
        "db-password"
      ];
      authorized_ips = [ "10.0.0.0/24" ];
      clients = {
        laptop = {
          passwordFile = "${canaryDir}/pw";
          encryptionKeyFile = "${canaryDir}/key";
          authorizedIps = [ "10.0.5.7" ];
          secrets = [ "wifi" ];
        };
        builder = {
          passwordFile = "/run/agenix/netsecrets-builder-password";
          authorizedIps = [
            "10.0.1.0/24"
            "fd00::/64"
          ];
          secrets = [ "*" ];
        };
      };
    };
  };

  # Only named clients, all limited to their networks: IPAddressAllow= is
  # exactly their networks; no shared password, no server key needed.
  clientsOnlyServer = {
    netsecrets.server = {
      enable = true;
      secrets = [ "wifi" ];
      clients.laptop = {
        passwordFile = "/run/agenix/laptop-pw";
        encryptionKeyFile = "/run/agenix/laptop-key";
        authorizedIps = [ "10.0.5.7" ];
        secrets = [ "wifi" ];
      };
    };
  };

  # Overlap rotation (lists of password and key files) and the admission limits.
  rotationServer = {
    netsecrets.server = {
      enable = true;
      secrets = [ "wifi" ];
      passwordFile = [
        "/run/agenix/pw-old"
        "/run/agenix/pw-new"
      ];
      encryptionKeyFile = [
        "/run/agenix/key-old"
        "/run/agenix/key-new"
      ];
      maxFailures = 10;
      maxPerIp = 16;
      maxConnections = 512;
      timeout = 9;
      clients.nas = {
        passwordFile = [
          "/run/agenix/nas-pw-old"
          "/run/agenix/nas-pw-new"
        ];
        encryptionKeyFile = [
          "/run/agenix/nas-key-old"
          "/run/agenix/nas-key-new"
        ];
        authorizedIps = [ "10.0.5.8" ];
        secrets = [ "wifi" ];
      };
    };
  };
in
{
  original-server.modules = [
    loaders.grub
    originalServer
  ];
  doc-server.modules = [
    loaders.grub
    docServer
  ];
  overrides-server.modules = [
    loaders.none
    overridesServer
  ];
  lowport-server.modules = [
    loaders.none
    lowPortServer
  ];
  two-client-server.modules = [
    loaders.none
    twoClientServer
  ];
  clients-only-server.modules = [
    loaders.none
    clientsOnlyServer
  ];
  rotation-server.modules = [
    loaders.none
    rotationServer
  ];
  server-client-bad = {
    toplevel = false;
    modules = [
      loaders.none
      {
        netsecrets.server = {
          enable = true;
          secrets = [ "wifi" ];
          clients."default" = {
            passwordFile = "/run/agenix/pw";
            secrets = [ "disk" ];
          };
        };
      }
    ];
  };
}
