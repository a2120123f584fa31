# Stage 1 (enableInitrd): password and key files appended by grub or
# systemd-boot, literal ones without a boot loader, and files refused where
# no boot loader can append them.
# Scenario name -> configuration; the expectations are in initrd.py.
{
  lib,
  loaders,
  initrdNetwork,
  originalClient,
  initrdFiles,
  ...
}:
let
  # Literal password and key: store files, accepted in the initrd without a
  # boot loader (the VM tests' setup).
  initrdLiterals = {
    imports = [ initrdNetwork ];
    netsecrets.client = {
      enable = true;
      server = "10.0.0.1";
      password = "literal-initrd-password";
      encryptionKey = "literal-initrd-key";
      request_secrets = [ "luks-key" ];
      enableInitrd = true;
    };
  };
in
{
  initrd-grub.modules = [
    loaders.grub
    initrdFiles
  ];
  initrd-systemd-boot.modules = [
    loaders.systemd-boot
    initrdFiles
  ];
  initrd-none-literals.modules = [
    loaders.none
    initrdLiterals
  ];
  initrd-none-files = {
    modules = [
      loaders.none
      initrdFiles
    ];
    toplevel = false;
  };
  # The client configuration users already have, with enableInitrd = true on a machine without a
  # boot loader: its encryptionKeyFile cannot reach stage 1.
  original-client-initrd-none = {
    modules = [
      loaders.none
      initrdNetwork
      originalClient
      { netsecrets.client.enableInitrd = lib.mkForce true; }
    ];
    toplevel = false;
  };
}
