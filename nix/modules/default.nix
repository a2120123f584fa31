# Both netsecrets modules: netsecrets.server and netsecrets.client (with its
# templates, netsecrets.client.templates).
{
  imports = [
    ./server
    # With its templates (./templates.nix).
    ./client
  ];
}
