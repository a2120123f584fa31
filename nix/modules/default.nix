# Both netsecrets modules: netsecrets.server and netsecrets.client.
{
  imports = [
    ./server.nix
    ./client.nix
  ];
}
