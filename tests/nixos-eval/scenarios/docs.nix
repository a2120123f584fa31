# Option descriptions that promise something checkable (the scenario `docs`,
# its facts the descriptions); docs.py holds the expectations.
{
  evalFull,
  clientWith,
  ...
}:
{
  docs.facts =
    let
      o = (evalFull [ (clientWith { }) ]).options;
    in
    {
      clientSystemdOverrides = o.netsecrets.client.systemdOverrides.description;
    };
}
