# The options of one netsecrets.client.templates.<name> (the module is
# ./templates.nix): the text or file, where it is written, owner, group and
# mode, the units that need it or act on a change, stage 1. A plain function
# giving the submodule.
{
  lib,
  common,
  renderedDir,
}:
{ name, ... }:
{
  options = {
    content = lib.mkOption {
      type = lib.types.nullOr lib.types.lines;
      default = null;
      example = lib.literalExpression ''
        '''
          [database]
          password = ''${config.netsecrets.placeholder.db-password}
        '''
      '';
      description = ''
        The file's text, with {option}`netsecrets.placeholder.<secret>`
        strings where the secret values go. It is written to the Nix
        store as it is (placeholders only); set this or `file`.
      '';
    };
    file = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = lib.literalExpression ''"''${pkgs.writeText "app.conf" "..."}"'';
      description = ''
        An existing file with placeholders, e.g. the config file another
        module generated (a store path taken from its ExecStart). A file
        built by a derivation is not read at evaluation: it is rendered
        with every requested secret, and an unknown placeholder fails
        the render unit. Set this or `content`.
      '';
    };
    path = lib.mkOption {
      type = common.pathNotInStore;
      default = "${renderedDir}/${name}";
      defaultText = lib.literalExpression ''"${renderedDir}/''${name}"'';
      description = ''
        Where the rendered file is written (never in the Nix store). Its
        directory must exist, unless it is the default one.
      '';
    };
  }
  // common.fileOptions "the rendered file"
  // {
    restartUnits = lib.mkOption {
      type = lib.types.listOf common.unitType;
      default = [ ];
      example = [ "mosquitto.service" ];
      description = ''
        Units restarted (`systemctl try-restart`: only if running) when
        the rendered file changes; "foo" means foo.service, as for a
        secret's `restartUnits`.
      '';
    };
    reloadUnits = lib.mkOption {
      type = lib.types.listOf common.unitType;
      default = [ ];
      example = [ "nginx.service" ];
      description = "Units reloaded (`systemctl try-reload-or-restart`) when the rendered file changes.";
    };
    requiredBy = lib.mkOption {
      type = lib.types.listOf common.unitType;
      default = [ ];
      example = [ "mosquitto.service" ];
      description = ''
        Units that need the rendered file: they get Requires= and After=
        on netsecrets-template-<name>.service (stage 2).
      '';
    };
    initrd = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Also render in systemd stage 1, after the stage-1 fetches (needs
        {option}`netsecrets.client.enableInitrd`), as root: only root
        exists there. `path` must be under /run, which survives
        switch-root; stage 2 renders it again with `owner` and `group`.
      '';
    };
    initrdRequiredBy = lib.mkOption {
      type = lib.types.listOf common.unitType;
      default = [ ];
      description = "Stage-1 units (boot.initrd.systemd) that need the file rendered in stage 1.";
    };
  };
}
