# Settings that would otherwise be silently ignored or wrong: the warnings
# and assertions that name the option to set; a disabled module.
# Scenario name -> configuration; the expectations are in refused.py.
{
  loaders,
  clientWith,
  serverWith,
  ...
}:
{
  client-password-and-file = {
    modules = [ (clientWith { password = "both-set"; }) ];
    toplevel = false;
  };
  client-no-server = {
    modules = [ (clientWith { server = null; }) ];
    toplevel = false;
  };
  client-no-password = {
    modules = [ (clientWith { passwordFile = null; }) ];
    toplevel = false;
  };
  client-stray-secret = {
    modules = [
      (clientWith { })
      { secrets.b.owner = "root"; }
    ];
    toplevel = false;
  };
  initrd-no-systemd = {
    modules = [
      (clientWith { enableInitrd = true; })
      { boot.initrd.systemd.enable = false; }
    ];
    toplevel = false;
  };
  initrd-no-network = {
    modules = [
      loaders.grub
      (clientWith { enableInitrd = true; })
      { boot.initrd.systemd.enable = true; }
    ];
    toplevel = false;
  };
  server-no-password = {
    modules = [ (serverWith { password_file = null; }) ];
    toplevel = false;
  };
  server-no-secrets = {
    modules = [ (serverWith { secrets = [ ]; }) ];
    toplevel = false;
  };
  server-stray-file = {
    modules = [ (serverWith { secretFiles.other = "/run/x"; }) ];
    toplevel = false;
  };
  server-reserved-name = {
    modules = [ (serverWith { secrets = [ "netsecrets.password" ]; }) ];
    toplevel = false;
  };
  server-plaintext = {
    modules = [ (serverWith { }) ];
    toplevel = false;
  };
  disabled = {
    modules = [
      {
        netsecrets.server.enable = false;
        netsecrets.client.enable = false;
      }
    ];
    toplevel = false;
  };
}
