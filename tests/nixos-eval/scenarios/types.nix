# Option types: each entry of the one scenario `types` evaluates one option
# value of a small configuration (facts: { ok; value; }); types.py knows which
# must be refused.
{
  value,
  clientWith,
  serverWith,
  templateWith,
  ...
}:
{
  types.facts = {
    server-port-string = value [ (serverWith { port = "8081"; }) ] (c: c.netsecrets.server.port);
    server-port-int = value [ (serverWith { port = 8081; }) ] (c: c.netsecrets.server.port);
    server-port-default = value [ (serverWith { }) ] (c: c.netsecrets.server.port);
    client-port-string = value [ (clientWith { port = "8081"; }) ] (c: c.netsecrets.client.port);
    server-port-name = value [ (serverWith { port = "http"; }) ] (c: c.netsecrets.server.port);
    server-port-70000 = value [ (serverWith { port = 70000; }) ] (c: c.netsecrets.server.port);
    server-password-file-store = value [ (serverWith { password_file = "${builtins.storeDir}/abc-pw"; }) ] (
      c: c.netsecrets.server.password_file
    );
    server-key-file-store = value [ (serverWith { encryptionKeyFile = "${builtins.storeDir}/abc-key"; }) ] (
      c: c.netsecrets.server.encryptionKeyFile
    );
    server-secret-file-store = value [ (serverWith { secretFiles.db-password = "${builtins.storeDir}/abc-db"; }) ] (
      c: c.netsecrets.server.secretFiles
    );
    server-key-file-nix-path = value [ (serverWith { encryptionKeyFile = ./types.nix; }) ] (
      c: c.netsecrets.server.encryptionKeyFile
    );
    server-password-file-relative = value [ (serverWith { password_file = "relative/pw"; }) ] (
      c: c.netsecrets.server.password_file
    );
    client-key-file-store = value [ (clientWith { encryptionKeyFile = "${builtins.storeDir}/abc-key"; }) ] (
      c: c.netsecrets.client.encryptionKeyFile
    );
    client-password-file-store = value [ (clientWith { passwordFile = "${builtins.storeDir}/abc-pw"; }) ] (
      c: c.netsecrets.client.passwordFile
    );
    server-name-traversal = value [ (serverWith { secrets = [ "../etc/shadow" ]; }) ] (c: c.netsecrets.server.secrets);
    server-name-dotdot = value [ (serverWith { secrets = [ ".." ]; }) ] (c: c.netsecrets.server.secrets);
    client-name-space = value [ (clientWith { request_secrets = [ "a b" ]; }) ] (
      c: c.netsecrets.client.request_secrets
    );
    client-console-password-file-readonly = value [ { netsecrets.client.consolePasswordFile = "/run/secrets/x"; } ] (
      c: c.netsecrets.client.consolePasswordFile
    );
    client-mode-setuid = value [ (clientWith { request_secrets = [ "db-password" ]; }) { secrets.db-password.mode = "4755"; } ] (
      c: c.secrets.db-password.mode
    );
    client-mode-0440 = value [ (clientWith { request_secrets = [ "db-password" ]; }) { secrets.db-password.mode = "0440"; } ] (
      c: c.secrets.db-password.mode
    );
    template-path-store = value [ (templateWith { content = "x"; path = "${builtins.storeDir}/abc-t"; }) ] (
      c: c.netsecrets.client.templates.t.path
    );
    template-placeholder-readonly = value [ (clientWith { }) { netsecrets.placeholder.db-password = "x"; } ] (
      c: c.netsecrets.placeholder
    );
    # Only requested secrets have a placeholder (a missing attribute is no catchable error).
    template-placeholder-unrequested = value [ (clientWith { }) ] (c: c.netsecrets.placeholder ? other);
    template-path-default = value [ (templateWith { content = "x"; }) ] (c: c.netsecrets.client.templates.t.path);
    # Both spellings, both modules, to the same option.
    server-alias-passwordFile = value [
      {
        netsecrets.server = {
          enable = true;
          passwordFile = "/run/a/pw";
          secrets = [ "db-password" ];
        };
      }
    ] (c: c.netsecrets.server.password_file);
    client-alias-password_file = value [
      {
        netsecrets.client = {
          enable = true;
          server = "10.0.0.1";
          password_file = "/run/a/pw";
          insecure = true;
          request_secrets = [ "db-password" ];
        };
      }
    ] (c: c.netsecrets.client.passwordFile);
  };
}
