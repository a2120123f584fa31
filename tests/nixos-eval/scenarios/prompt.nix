# The console password prompt in stage 1 (enableInitrdPassword), with and
# without a boot loader, with and without the stage-1 fetch.
# Scenario name -> configuration; the expectations are in prompt.py.
{
  loaders,
  initrdNetwork,
  ...
}:
let
  # The console prompt with a key file (documented).
  promptKeyFile = {
    imports = [ initrdNetwork ];
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [ "luks-key" ];
      enableInitrd = true;
      enableInitrdPassword = true;
    };
  };

  # The console prompt with a literal key: works without a boot loader.
  promptLiteralKey = {
    imports = [ initrdNetwork ];
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      encryptionKey = "literal-prompt-key";
      request_secrets = [ "luks-key" ];
      enableInitrd = true;
      enableInitrdPassword = true;
    };
  };

  # The prompt alone (stage-2 fetch only): nothing needs appending.
  promptOnly = {
    boot.initrd.systemd.enable = true;
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      encryptionKeyFile = "/run/agenix/key";
      request_secrets = [ "db-password" ];
      enableInitrdPassword = true;
    };
  };
in
{
  prompt-grub.modules = [
    loaders.grub
    promptKeyFile
  ];
  prompt-systemd-boot.modules = [
    loaders.systemd-boot
    promptKeyFile
  ];
  prompt-none-literal-key.modules = [
    loaders.none
    promptLiteralKey
  ];
  prompt-only-none.modules = [
    loaders.none
    promptOnly
  ];
  prompt-none-key-file = {
    modules = [
      loaders.none
      promptKeyFile
    ];
    toplevel = false;
  };
  prompt-with-password = {
    modules = [
      loaders.none
      promptOnly
      {
        netsecrets.client.password = "typed-anyway";
        netsecrets.client.passwordFile = "/run/agenix/pw";
      }
    ];
    toplevel = false;
  };
}
