# Templates (netsecrets.client.templates): content and derivation-built
# files, the Mosquitto module's own config file, stage 1, and the refused
# ones.
# Scenario name -> configuration; the expectations are in templates.py.
{
  repo,
  loaders,
  templateWith,
  docClient,
  initrdFiles,
  ...
}:
let
  # A config file written as text: two secrets, one used twice; owner, mode,
  # change actions; and a file built by a derivation (not readable at
  # evaluation), which gets every requested secret.
  templatesContent =
    { config, pkgs, ... }:
    {
      imports = [ docClient ];
      netsecrets.client.templates = {
        "app.conf" = {
          content = ''
            [db]
            password = ${config.netsecrets.placeholder.db-password}
            again = ${config.netsecrets.placeholder.db-password}
            [api]
            key = ${config.netsecrets.placeholder.api-key}
          '';
          owner = "myapp";
          group = "myapp";
          mode = "0440";
          restartUnits = [ "myapp.service" ];
          reloadUnits = [ "nginx.service" ];
          requiredBy = [ "myapp.service" ];
        };
        "built.conf".file = "${pkgs.writeText "built.conf" "k=${config.netsecrets.placeholder.api-key}\n"}";
      };
      systemd.services.myapp = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig.ExecStart = "/run/current-system/sw/bin/true";
      };
    };

  # scalpel's Mosquitto example, the netsecrets way: the bridge
  # passwords are placeholders in the Mosquitto module's own options, and the
  # derived system renders the config file the module generated.
  mosquittoBase =
    { config, ... }:
    {
      netsecrets.client = {
        enable = true;
        server = "10.0.0.1";
        passwordFile = "/run/agenix/netsecrets-password";
        encryptionKeyFile = "/run/agenix/netsecrets-key";
        request_secrets = [
          "br1passwd"
          "br2passwd"
        ];
      };
      services.mosquitto = {
        enable = true;
        listeners = [ { address = "127.0.0.1"; } ];
        bridges.br1 = {
          addresses = [ { address = "127.0.0.2"; } ];
          topics = [ "# in" ];
          settings.remote_password = config.netsecrets.placeholder.br1passwd;
        };
        bridges.br2 = {
          addresses = [ { address = "127.0.0.3"; } ];
          topics = [ "# in" ];
          settings.remote_password = config.netsecrets.placeholder.br2passwd;
        };
      };
    };

  mosquittoSecrets =
    {
      config,
      lib,
      prev,
      ...
    }:
    let
      start = prev.config.systemd.services.mosquitto.serviceConfig.ExecStart;
      # lib.splitString keeps the string's context (builtins.match would drop
      # it, and with it the file from the system's closure).
      mosquittoConf = lib.last (lib.splitString " " start);
      rendered = config.netsecrets.client.templates."mosquitto.conf".path;
    in
    {
      netsecrets.client.templates."mosquitto.conf" = {
        file = mosquittoConf;
        owner = "mosquitto";
        group = "mosquitto";
        mode = "0440";
        restartUnits = [ "mosquitto.service" ];
        requiredBy = [ "mosquitto.service" ];
      };
      systemd.services.mosquitto.serviceConfig.ExecStart = lib.mkForce (
        builtins.replaceStrings [ mosquittoConf ] [ rendered ] start
      );
    };

  # Rendered in stage 1 too.
  templatesInitrd =
    { config, ... }:
    {
      imports = [ initrdFiles ];
      netsecrets.client.templates."unlock.conf" = {
        content = "key=${config.netsecrets.placeholder.luks-key}\n";
        initrd = true;
        initrdRequiredBy = [ "cryptsetup-pre.target" ];
      };
    };
in
{
  templates-content.modules = [
    loaders.grub
    templatesContent
  ];
  templates-mosquitto = {
    modules = [
      loaders.grub
      mosquittoBase
    ];
    extend = [ mosquittoSecrets ];
  };
  templates-initrd.modules = [
    loaders.grub
    templatesInitrd
  ];
  template-unrequested = {
    modules = [ (templateWith { content = "a=${import (repo + "/nix/modules/placeholder.nix") "other"}"; }) ];
    toplevel = false;
  };
  template-cut = {
    modules = [ (templateWith { content = "a=<netsecrets:db-password:0123>"; }) ];
    toplevel = false;
  };
  template-both = {
    modules = [
      (templateWith {
        content = "x";
        file = "/etc/x.tpl";
      })
    ];
    toplevel = false;
  };
  template-initrd-off = {
    modules = [
      (templateWith {
        content = "x";
        initrd = true;
        path = "/etc/x.conf";
      })
    ];
    toplevel = false;
  };
  template-no-context = {
    modules = [
      (
        { pkgs, ... }:
        {
          imports = [ (templateWith { file = builtins.unsafeDiscardStringContext "${pkgs.writeText "t" "x"}"; }) ];
        }
      )
    ];
    toplevel = false;
  };
  template-credential-only = {
    modules = [
      (templateWith { content = "x=${import (repo + "/nix/modules/placeholder.nix") "db-password"}"; })
      {
        secrets.db-password = {
          writeFile = false;
          credential = true;
        };
      }
    ];
    toplevel = false;
  };
  template-no-client = {
    modules = [
      {
        netsecrets.client.templates.t.content = "x";
      }
    ];
    toplevel = false;
  };
}
