# The wire protocol pinned both ways (check.py also looks at every unit of
# every whole-system scenario of the other topics).
# Scenario name -> configuration; the expectations are in protocol.py.
{
  loaders,
  clientWith,
  serverWith,
  ...
}:
{
  # Protocol pinned both ways: a client for a server that knows only
  # protocol 1, a server that refuses protocol 1.
  protocol-pinned = {
    modules = [
      loaders.none
      (serverWith { minProtocol = 2; })
      (clientWith { protocol = 1; })
    ];
    toplevel = false;
  };
  client-protocol-2-plaintext = {
    modules = [
      (clientWith {
        insecure = true;
        protocol = 2;
      })
    ];
    toplevel = false;
  };
}
