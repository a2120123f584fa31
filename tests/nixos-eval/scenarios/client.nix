# The client module in stage 2: the configuration users already have
# (verbatim) with its consumer, the documented file-based one, owners, odd
# names and overrides.
# Scenario name -> configuration; the expectations are in client.py.
{
  loaders,
  originalClient,
  docClient,
  ...
}:
let
  # A service using the secret's file, as users already write it.
  originalConsumer =
    { config, ... }:
    {
      environment.etc."myapp/db.conf".source = config.secrets.db-password.file;
      systemd.services.myapp.serviceConfig.EnvironmentFile = "/var/lib/netsecrets/db-password";
    };

  # Owners, odd names, % and $ in arguments, overrides.
  ownedClient = {
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      password_file = "/run/agenix/pw"; # the server's spelling
      insecure = true;
      request_secrets = [
        "db-password"
        "a@b+c"
      ];
      fallbacks = [
        "10.0.0.2"
        "odd%host$name"
      ];
      systemdOverrides.TimeoutStartSec = "5min";
    };
    secrets.db-password = {
      owner = "postgres";
      group = "postgres";
      mode = "0440";
    };
    users.users.postgres = {
      isSystemUser = true;
      group = "postgres";
    };
    users.groups.postgres = { };
  };
in
{
  original-client.modules = [
    loaders.grub
    originalClient
    originalConsumer
  ];
  doc-client.modules = [
    loaders.grub
    docClient
  ];
  owned-client.modules = [
    loaders.none
    ownedClient
  ];
}
