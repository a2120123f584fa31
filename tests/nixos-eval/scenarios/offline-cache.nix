# The offline cache (netsecrets.client.offlineCache).
# Scenario name -> configuration; the expectations are in offline-cache.py.
{
  loaders,
  initrdNetwork,
  clientWith,
  ...
}:
{
  # The offline cache: stage 2 units get the flags and systemd's
  # systemd-creds, the stage-1 fetch none of them.
  offline-cache.modules = [
    loaders.grub
    initrdNetwork
    (clientWith {
      enableInitrd = true;
      refreshInterval = "15min";
      offlineCache = {
        enable = true;
        after = 12;
        maxAge = 86400;
      };
    })
  ];
  offline-cache-refused = {
    modules = [
      loaders.none
      (clientWith {
        timeout = 10;
        offlineCache = {
          enable = true;
          after = 10;
        };
      })
    ];
    toplevel = false;
  };
}
