# Services that use secrets: ordering (requiredBy, initrdRequiredBy),
# credentials, change actions and the refresh, and the refused settings.
# Scenario name -> configuration; the expectations are in consumers.py.
{
  lib,
  loaders,
  initrdNetwork,
  clientWith,
  ...
}:
let
  # A file secret with change actions for myapp and nginx, a credential-only
  # one; other.service uses nothing.
  consumersClient = clientWith {
    request_secrets = [
      "db-password"
      "api-token"
    ];
    refreshInterval = "15min";
  }
  // {
    secrets.db-password = {
      owner = "root";
      requiredBy = [ "myapp.service" ];
      restartUnits = [ "myapp" ];
      reloadUnits = [ "nginx.service" ];
    };
    secrets.api-token = {
      requiredBy = [ "myapp.service" ];
      credential = true;
      writeFile = false;
    };
    systemd.services.myapp = {
      wantedBy = [ "multi-user.target" ];
      serviceConfig.ExecStart = "/bin/sh -c true";
    };
    systemd.services.other = {
      wantedBy = [ "multi-user.target" ];
      serviceConfig.ExecStart = "/bin/sh -c true";
    };
  };

  # A stage-1 service given the secret as a credential.
  consumersInitrd = clientWith {
    request_secrets = [ "luks-key" ];
    enableInitrd = true;
  }
  // {
    secrets.luks-key = {
      initrdRequiredBy = [ "unlock.service" ];
      credential = true;
    };
    boot.initrd.systemd.services.unlock = {
      wantedBy = [ "initrd.target" ];
      unitConfig.DefaultDependencies = false;
      serviceConfig.ExecStart = "/bin/sh -c true";
    };
  };

  # Change actions without refreshInterval: the refresh gets a default
  # interval with jitter; config.secrets.<name>.path in use (no warning).
  actionsNoInterval =
    { config, ... }:
    {
      imports = [ consumersClient ];
      netsecrets.client.refreshInterval = lib.mkForce null;
      environment.etc."myapp/db.conf".source = config.secrets.db-password.path;
    };
in
{
  consumers.modules = [
    loaders.none
    consumersClient
  ];
  consumers-initrd.modules = [
    loaders.grub
    initrdNetwork
    consumersInitrd
  ];
  consumers-no-interval = {
    modules = [
      loaders.none
      actionsNoInterval
    ];
    toplevel = false;
  };
  consumers-start-units = {
    modules = [
      loaders.none
      consumersClient
      { netsecrets.client.refreshStartsUnits = true; }
    ];
    toplevel = false;
  };
  # No change action anywhere, no refreshInterval: no refresh at all.
  no-actions = {
    modules = [
      loaders.none
      (clientWith { })
      { secrets.db-password.requiredBy = [ "other.service" ]; }
    ];
    toplevel = false;
  };
  consumer-refused = {
    modules = [
      loaders.none
      (clientWith { request_secrets = [ "a" "b" "c" ]; })
      {
        secrets.a.writeFile = false;
        secrets.b.credential = true;
        secrets.c.initrdRequiredBy = [ "unlock.service" ];
      }
    ];
    toplevel = false;
  };
}
