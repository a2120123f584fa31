# Where the secrets are kept: RAM file systems, initrdOnly, keepOnDisk.
# Scenario name -> configuration; the expectations are in storage.py.
{
  loaders,
  initrdNetwork,
  clientWith,
  ...
}:
let
  # The LUKS example of docs/nixos.md (an initrdOnly key) beside a stage-2
  # secret used by a service, a credential and a template.
  storageClient =
    { config, ... }:
    clientWith {
      request_secrets = [
        "luks-root"
        "db-password"
        "api-token"
      ];
      enableInitrd = true;
      refreshInterval = "15min";
      templates.app = {
        content = "pw=${config.netsecrets.placeholder.db-password}";
        path = "/etc/app.conf";
      };
    }
    // {
      secrets.luks-root.initrdOnly = true;
      secrets.db-password.requiredBy = [ "myapp.service" ];
      secrets.api-token = {
        requiredBy = [ "myapp.service" ];
        credential = true;
        writeFile = false;
      };
      boot.initrd.luks.devices.root = {
        device = "/dev/vda2";
        keyFile = config.secrets.luks-root.initrdFile;
      };
      systemd.services.myapp = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = "/bin/sh -c true";
      };
    };
in
{
  storage-luks.modules = [
    loaders.systemd-boot
    initrdNetwork
    storageClient
  ];
  storage-disk.modules = [
    loaders.systemd-boot
    initrdNetwork
    storageClient
    { netsecrets.client.keepOnDisk = true; }
  ];
  storage-refused = {
    toplevel = false;
    modules = [
      loaders.none
      (clientWith { request_secrets = [ "luks-root" ]; })
      {
        secrets.luks-root = {
          initrdOnly = true;
          requiredBy = [ "myapp.service" ];
        };
      }
    ];
  };
}
