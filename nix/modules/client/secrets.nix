# The secrets of netsecrets.client, declared in one place:
# netsecrets.client.secrets.<name> holds the options of one secret, and
# declaring it is enough to fetch it. Owned here: that per-secret type, the
# list of fetched names (netsecrets.client.secretNames, internal) and the
# spellings configurations already use, which keep working without any
# warning:
#   netsecrets.client.request_secrets = [ ... ]   (= requestSecrets)
#   secrets.<name>  (top level: read config.secrets.<name>.file, .path,
#                    .initrdFile; set owner, mode, requiredBy, ... there)
# Both spellings of a list merge (`requestSecrets` and `request_secrets`
# together give the names of both). A name set only under the top-level
# `secrets` must also be requested (requestSecrets or
# netsecrets.client.secrets.<name>): an assertion in ./checks.nix says so,
# as it always did.
{
  config,
  options,
  lib,
  ...
}:
let
  cfg = config.netsecrets.client;
  common = import ../common.nix { inherit lib; };

  # Names declared under netsecrets.client.secrets by a configuration (not
  # through the top-level `secrets` alias or requestSecrets, whose
  # definitions come from this file).
  thisFile = toString ./secrets.nix;
  declared = lib.unique (
    lib.concatMap (d: lib.attrNames d.value) (
      lib.filter (d: d.file != thisFile) options.netsecrets.client.secrets.definitionsWithLocations
    )
  );

  secretSubmodule =
    { name, config, ... }:
    {
      options = {
        file = lib.mkOption {
          type = lib.types.str;
          readOnly = true;
          default = "${common.stateDir}/${name}";
          defaultText = lib.literalExpression ''"${common.stateDir}/''${name}"'';
          description = "Where netsecrets-client.service writes this secret (stage 2); {option}`path` is the same.";
        };
        # sops-nix and agenix users write config.sops.secrets.<n>.path /
        # config.age.secrets.<n>.path: the same value under that name.
        path = lib.mkOption {
          type = lib.types.str;
          readOnly = true;
          default = "${common.stateDir}/${name}";
          defaultText = lib.literalExpression ''"${common.stateDir}/''${name}"'';
          description = ''
            The same as {option}`file` (the spelling sops-nix and agenix use);
            read-only like it: the fetch always writes under /var/lib/netsecrets
            (for a file elsewhere, use a template with its own `path`).
          '';
        };
        initrdFile = lib.mkOption {
          type = lib.types.str;
          readOnly = true;
          default =
            if config.initrdOnly then
              "/run/${common.initrdOnlyDir name}/${name}"
            else
              "${common.initrdDir}/${name}";
          defaultText = lib.literalExpression ''"${common.initrdDir}/''${name}" (initrdOnly: "${common.initrdDir}/initrd-only/''${name}/''${name}")'';
          description = ''
            Where the stage-1 fetch writes this secret when
            {option}`netsecrets.client.enableInitrd` is set (root, 0400), on
            the RAM file system mounted at /run/netsecrets. With
            {option}`initrdOnly`, in a directory of its own that is removed
            before switch-root.
          '';
        };
      }
      // common.fileOptions "the stage-2 file"
      // {
        requiredBy = lib.mkOption {
          type = lib.types.listOf common.unitType;
          default = [ ];
          example = [ "postgresql.service" ];
          description = ''
            Services that need this secret (stage 2). Each gets `Wants=` and
            `After=` on netsecrets-secret-<name>.service and `Requires=` on
            netsecrets-ready-<name>.service, which succeeds only when the
            fetch unit is active: it never starts before the secret is in
            place and does not start at all when it cannot be fetched, and
            restarting the fetch unit restarts none of them (a new value
            reaches them through {option}`restartUnits` / {option}`reloadUnits`).
            With {option}`credential` it also gets the secret as a credential.
            A refresh does not start them unless
            {option}`netsecrets.client.refreshStartsUnits` is set.
          '';
        };
        initrdRequiredBy = lib.mkOption {
          type = lib.types.listOf common.unitType;
          default = [ ];
          example = [ "unlock-data.service" ];
          description = ''
            Stage-1 services (boot.initrd.systemd.services) that need this
            secret: the same as {option}`requiredBy`, in the initrd (needs
            {option}`netsecrets.client.enableInitrd`).
          '';
        };
        credential = lib.mkOption {
          type = lib.types.bool;
          default = false;
          description = ''
            Hand the secret to the {option}`requiredBy` (and
            {option}`initrdRequiredBy`) services as a systemd credential:
            `LoadCredential=<name>:/run/netsecrets-credentials.sock` (in
            stage 1 `/run/netsecrets-credentials-initrd.sock`). The
            value is fetched from the server when the unit starts, by
            `netsecrets credentials` (socket-activated), for the listed units
            only, and exists only in `/run/credentials/<unit>/` (read it as
            `$CREDENTIALS_DIRECTORY/<name>` or `%d/<name>`). A unit not listed
            gets nothing and does not start.
          '';
        };
        writeFile = lib.mkOption {
          type = lib.types.bool;
          default = true;
          description = ''
            Also write the secret to {option}`file` (and to
            {option}`initrdFile` in stage 1). Set to false with
            `credential = true` so that the value is never written under
            /var/lib/netsecrets: there is then no fetch unit for it.
          '';
        };
        restartUnits = lib.mkOption {
          type = lib.types.listOf common.unitType;
          default = [ ];
          example = [ "myapp.service" ];
          description = ''
            Units to restart when the value changes: after the file was
            created or changed (never when a fetch returns the same bytes),
            `systemctl --no-block try-restart` (a stopped unit stays stopped).
          '';
        };
        reloadUnits = lib.mkOption {
          type = lib.types.listOf common.unitType;
          default = [ ];
          example = [ "nginx.service" ];
          description = ''
            Units to reload when the value changes: as {option}`restartUnits`,
            with `systemctl --no-block try-reload-or-restart`.
          '';
        };
      };
    };
in
{
  imports = [
    (lib.mkAliasOptionModule
      [
        "netsecrets"
        "client"
        "request_secrets"
      ]
      [
        "netsecrets"
        "client"
        "requestSecrets"
      ]
    )
    (lib.mkAliasOptionModule [ "secrets" ] [
      "netsecrets"
      "client"
      "secrets"
    ])
  ];

  options.netsecrets.client = {
    requestSecrets = lib.mkOption {
      type = lib.types.listOf common.secretName;
      default = [ ];
      example = [
        "db-password"
        "api-key"
      ];
      description = ''
        Names of secrets to fetch, each to /var/lib/netsecrets/<name>, in
        addition to those declared in {option}`netsecrets.client.secrets`
        (a name needs to be in only one of them). `request_secrets` is the
        same option.
      '';
    };

    secrets = lib.mkOption {
      type = lib.types.attrsOf (lib.types.submodule secretSubmodule);
      default = { };
      example = lib.literalExpression ''
        {
          db-password = {
            owner = "postgres";
            requiredBy = [ "postgresql" ];
          };
          api-key = { };
        }
      '';
      description = ''
        The secrets to fetch, one entry each, with their options; declaring
        one is enough to fetch it (every name in
        {option}`netsecrets.client.requestSecrets` has an entry too).
        `config.netsecrets.client.secrets.<name>.file` is its path, e.g.
        `environment.etc."myapp/db.conf".source = config.netsecrets.client.secrets.db-password.file;`.
        The top-level `secrets.<name>` is the same option.
      '';
    };

    secretNames = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      internal = true;
      readOnly = true;
      default = cfg.requestSecrets ++ lib.filter (n: !lib.elem n cfg.requestSecrets) declared;
      description = "The fetched secrets: requestSecrets, then those only declared in netsecrets.client.secrets.";
    };
  };

  config = lib.mkIf cfg.enable {
    netsecrets.client.secrets = lib.genAttrs cfg.requestSecrets (_: { });
  };
}
