# The option tree and the option names configurations already use: a server
# and a client written in the spellings of the first releases
# (password_file, authorized_ips, request_secrets, top-level secrets.<name>)
# and the same machine in camelCase with netsecrets.client.secrets.<name>
# must render the same units with no warning at all; both spellings of a list
# merge; a secret declared only under netsecrets.client.secrets is fetched;
# a template's change actions take "nginx" for nginx.service.
# Scenario name -> configuration; the expectations are in option-tree.py.
{ loaders, ... }:
let
  myapp = {
    imports = [ loaders.grub ];
    systemd.services.myapp = {
      wantedBy = [ "multi-user.target" ];
      serviceConfig.ExecStart = "/run/current-system/sw/bin/true";
    };
  };
  apiKeyOptions = {
    owner = "myapp";
    mode = "0440";
    requiredBy = [ "myapp" ];
    restartUnits = [ "myapp" ];
  };
  server = {
    enable = true;
    secrets = [
      "api-key"
      "db-password"
    ];
    encryptionKeyFile = "/run/keys/key";
  };
  client = {
    enable = true;
    server = "10.0.0.1";
    encryptionKeyFile = "/run/agenix/key";
  };
in
{
  tree-original.modules = [
    myapp
    {
      netsecrets.server = server // {
        password_file = "/run/keys/pw";
        authorized_ips = [ "10.0.0.0/24" ];
      };
      netsecrets.client = client // {
        password_file = "/run/agenix/pw";
        # In name order: secrets declared only under netsecrets.client.secrets
        # are fetched in name order, so both spellings give the same lists.
        request_secrets = [
          "api-key"
          "db-password"
        ];
      };
      secrets.api-key = apiKeyOptions;
    }
  ];
  tree-camel.modules = [
    myapp
    {
      netsecrets.server = server // {
        passwordFile = "/run/keys/pw";
        authorizedIps = [ "10.0.0.0/24" ];
      };
      netsecrets.client = client // {
        passwordFile = "/run/agenix/pw";
        secrets = {
          api-key = apiKeyOptions;
          db-password = { };
        };
      };
    }
  ];
  # A list in both spellings: the names of both are fetched.
  tree-both-spellings = {
    modules = [
      loaders.grub
      {
        netsecrets.client = client // {
          passwordFile = "/run/agenix/pw";
          requestSecrets = [ "one" ];
          request_secrets = [ "two" ];
        };
        netsecrets.server = server // {
          passwordFile = "/run/keys/pw";
          authorizedIps = [ "10.0.1.0/24" ];
          authorized_ips = [ "10.0.2.0/24" ];
        };
      }
    ];
    toplevel = false;
  };
  # A template's restartUnits / reloadUnits / requiredBy in the spellings a
  # secret's take: "nginx" is nginx.service, "foo.socket" stays.
  tree-template-units = {
    modules = [
      myapp
      (
        { config, ... }:
        {
          netsecrets.client = client // {
            passwordFile = "/run/agenix/pw";
            secrets.db-password = { };
            templates.t = {
              content = "password=${config.netsecrets.placeholder.db-password}\n";
              restartUnits = [ "nginx" ];
              reloadUnits = [ "foo.socket" ];
              requiredBy = [ "myapp" ];
            };
          };
        }
      )
    ];
    toplevel = false;
  };
}
