# netsecrets.client.templates: config files that hold secrets, rendered on
# the machine, never in the Nix store (like sops-nix's sops.templates).
#
# A template is a text (`content`) or an existing file (`file`, e.g. the
# config file another module generated, taken from its ExecStart as scalpel
# does) in which config.netsecrets.placeholder.<secret> strings stand for
# secret values. The placeholder is "<netsecrets:NAME:HASH>" (./placeholder.nix:
# a hash of the name, nothing secret), so the template in the store holds
# placeholders only. `netsecrets render` puts the exact bytes of each fetched
# secret in their place (one pass, never re-expanded) and writes the file
# atomically with its owner, group and mode, only when it changed, then
# try-restarts / reloads the template's restartUnits / reloadUnits. Anything
# else starting with "<netsecrets:" is an error and the old file stays.
#
# Stage 2, per template <t> (no shell anywhere):
#   netsecrets-template-<t>.service  oneshot `netsecrets render`, Wants= and
#                                    After= the fetch units of the secrets it uses,
#                                    Requires= their netsecrets-ready-<s> gates,
#                                    Before= and RequiredBy= templates.<t>.requiredBy
#   netsecrets-template-<t>.path     PathChanged= on those secrets' files: a
#                                    secret that changed (a refresh writes a file
#                                    only when its value changed) re-renders
# Stage 1 (templates.<t>.initrd, needs enableInitrd): the same render in
# boot.initrd.systemd after the stage-1 fetches, from /run/netsecrets/<name>,
# as root (only root exists there); stage 2 renders again with the owner.
#
# Evaluation-time checks: when the template's text is visible to evaluation
# (`content`, or `file` as a Nix path value), every "<netsecrets:" in it must
# be the placeholder of a fetched secret (an assertion names the
# template and the secret). A `file` built by a derivation is not read at
# evaluation (no import-from-derivation): it gets every requested secret and
# `netsecrets render` refuses an unknown placeholder at run time.
#
# The options of one template are in ./template-options.nix; this module is
# imported by ./client (it is part of netsecrets.client).
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  cfg = config.netsecrets.client;
  common = import ./common.nix { inherit lib; };
  placeholderOf = import ./placeholder.nix;

  # The fetched secrets (client/secrets.nix).
  names = cfg.secretNames;
  exe = lib.getExe cfg.package;
  templates = cfg.templates;

  inherit (common) fetchUnit readyUnit unitName;
  unitBase = name: "netsecrets-template-${common.escapeUnit name}";
  unitOf = name: "${unitBase name}.service";
  # The RAM file systems rendered files and secrets are on (client/storage.nix).
  mounts = [ "run-netsecrets.mount" ] ++ lib.optional (!cfg.keepOnDisk) "var-lib-netsecrets.mount";

  # The default directory of rendered files: tmpfs, root's, 0751 (others may
  # traverse to their own file, not list).
  renderedDir = "${common.initrdDir}/rendered";

  templateFile = name: t: if t.file != null then t.file else pkgs.writeText "netsecrets-template-${name}" t.content;

  # The text when evaluation can see it without building anything.
  knownText =
    t:
    if t.content != null then
      t.content
    else if t.file != null && builtins.isPath t.file then
      builtins.readFile t.file
    else
      null;

  # Every "<netsecrets:" of a text, as { name; ok; }: ok when it is the whole
  # placeholder of `name` (what `netsecrets render` accepts).
  tokens =
    text:
    map
      (m: {
        name = lib.elemAt m 0;
        ok = "<netsecrets:${lib.elemAt m 0}${toString (lib.elemAt m 1)}" == placeholderOf (lib.elemAt m 0);
      })
      (
        lib.filter builtins.isList (builtins.split "<netsecrets:([A-Za-z0-9._@+-]*)(:[0-9a-f]{64}>)?" text)
      );

  # The secrets a template uses: those of its placeholders when its text is
  # known, else every requested secret.
  used =
    t:
    let
      text = knownText t;
    in
    if text == null then names else lib.unique (map (x: x.name) (lib.filter (x: x.ok && lib.elem x.name names) (tokens text)));

  templateAssertions =
    name: t:
    let
      text = knownText t;
      toks = if text == null then [ ] else tokens text;
      where = "netsecrets.client.templates.${name}";
    in
    [
      {
        assertion = (t.content == null) != (t.file == null);
        message = "${where}: set exactly one of `content` (the text) and `file` (an existing file).";
      }
      {
        assertion = t.initrd -> cfg.enableInitrd;
        message = "${where}.initrd needs netsecrets.client.enableInitrd = true (the secrets are fetched in stage 1 then).";
      }
      {
        assertion = t.initrd -> lib.hasPrefix "/run/" t.path;
        message = "${where}.initrd: path ${t.path} is not under /run, so the file rendered in stage 1 would not survive switch-root; use a path under /run.";
      }
    ]
    ++ map (x: {
      assertion = x.ok;
      message = ''${where}: "<netsecrets:${x.name}..." is not a whole placeholder; write ''${config.netsecrets.placeholder.${if x.name == "" then "NAME" else x.name}} unchanged.'';
    }) toks
    # A secret kept out of files (writeFile = false, a credential only) has
    # no file to render from.
    ++ map (s: {
      assertion = cfg.secrets.${s}.writeFile or true;
      message = ''${where}: uses secret "${s}", which has secrets.${s}.writeFile = false (a credential only, no file to render from); set writeFile = true.'';
    }) (if cfg.enable then used t else [ ])
    ++ map (x: {
      assertion = !x.ok || lib.elem x.name names;
      message = ''${where}: uses the placeholder of secret "${x.name}", which is not in netsecrets.client.request_secrets; add "${x.name}" there.'';
    }) toks;

  renderArgs =
    {
      name,
      t,
      secretFile,
      stage1,
    }:
    [
      exe
      "render"
      "--template"
      "${templateFile name t}"
      "--output"
      t.path
    ]
    ++ lib.concatMap (s: [
      "--secret"
      "${s}=${secretFile s}"
    ]) (used t)
    ++ lib.optionals (!stage1) (
      [
        "--owner"
        t.owner
        "--group"
        t.group
      ]
      # The same spellings as a secret's change actions: "nginx" means
      # nginx.service.
      ++ lib.concatMap (u: [
        "--restart-unit"
        (unitName u)
      ]) t.restartUnits
      ++ lib.concatMap (u: [
        "--reload-unit"
        (unitName u)
      ]) t.reloadUnits
      ++ lib.optionals (t.restartUnits != [ ] || t.reloadUnits != [ ]) [
        "--systemctl"
        "${config.systemd.package}/bin/systemctl"
      ]
    )
    ++ [
      "--mode"
      t.mode
    ];

  # As the fetch units: root with a read-only system, chown allowed, writing
  # only the rendered file's directory; AF_UNIX only, for systemctl to reach
  # PID 1 (the change actions).
  hardening =
    t:
    common.chownSandbox
    // {
      RestrictAddressFamilies = [ "AF_UNIX" ];
      PrivateNetwork = true;
      ReadWritePaths = [ "-${dirOf t.path}" ];
    };

  stage2Unit = name: t: {
    description = "netsecrets: render template ${name}";
    wantedBy = [ "multi-user.target" ];
    requiredBy = map unitName t.requiredBy;
    before = map unitName t.requiredBy;
    # Wants= on the fetch units and Requires= on their gates, not Requires=
    # on the fetch units: a restart of a fetch unit would propagate to this
    # unit and on to templates.<t>.requiredBy (client/args.nix, consumerConfig).
    # The RAM file systems the secrets are on (client/storage.nix) are required.
    wants = map fetchUnit (used t);
    after = map fetchUnit (used t) ++ map readyUnit (used t) ++ mounts;
    requires = map readyUnit (used t) ++ mounts;
    # Not RemainAfterExit: the .path unit starts it again when a secret changes.
    serviceConfig = hardening t // {
      Type = "oneshot";
      ExecStart = common.execLine utils (renderArgs {
        inherit name t;
        secretFile = s: cfg.secrets.${s}.file;
        stage1 = false;
      });
    };
  };

  pathUnit = name: t: {
    description = "netsecrets: render template ${name} again when its secrets change";
    wantedBy = [ "multi-user.target" ];
    pathConfig = {
      PathChanged = map (s: cfg.secrets.${s}.file) (used t);
      Unit = unitOf name;
    };
  };

  initrdUnit = name: t: {
    description = "netsecrets: render template ${name} in stage 1";
    wantedBy = [ "initrd.target" ];
    after = map fetchUnit (used t) ++ [ "run-netsecrets.mount" ];
    requires = map fetchUnit (used t) ++ [ "run-netsecrets.mount" ];
    before = [
      "initrd.target"
      "shutdown.target"
    ]
    ++ map unitName t.initrdRequiredBy;
    requiredBy = map unitName t.initrdRequiredBy;
    conflicts = [ "shutdown.target" ];
    unitConfig.DefaultDependencies = false;
    serviceConfig = {
      Type = "oneshot";
      RemainAfterExit = true;
      ExecStart = common.execLine utils (renderArgs {
        inherit name t;
        secretFile = s: cfg.secrets.${s}.initrdFile;
        stage1 = true;
      });
      UMask = "0077";
      StandardOutput = "journal+console";
      StandardError = "journal+console";
    };
  };


  # The options of one template.
  templateSubmodule = import ./template-options.nix { inherit lib common renderedDir; };

  nameType = common.secretName // {
    description = "template name (as a secret name: 1-255 characters of [A-Za-z0-9._@+-])";
  };
in
{
  options.netsecrets.placeholder = lib.mkOption {
    type = lib.types.attrsOf lib.types.str;
    readOnly = true;
    default = lib.genAttrs names placeholderOf;
    defaultText = lib.literalExpression ''{ <secret> = "<netsecrets:<secret>:<sha256 of the name>>"; }'';
    description = ''
      The placeholder of each fetched secret ({option}`netsecrets.client.secrets`),
      for {option}`netsecrets.client.templates`: a string that holds nothing
      secret and that `netsecrets render` replaces by the secret's value.
    '';
  };

  options.netsecrets.client.templates = lib.mkOption {
    type = lib.types.attrsOf (lib.types.submodule templateSubmodule);
    default = { };
    example = lib.literalExpression ''
      {
        "mosquitto.conf" = {
          content = '''
            remote_password ''${config.netsecrets.placeholder.br1passwd}
          ''';
          owner = "mosquitto";
          mode = "0440";
          restartUnits = [ "mosquitto.service" ];
        };
      }
    '';
    description = ''
      Files that hold secrets, rendered from a template with
      {option}`netsecrets.placeholder` strings after the secrets arrived, to
      `path` (default /run/netsecrets/rendered/<name>), atomically, with
      owner, group and mode, never in the Nix store.
    '';
  };

  config = lib.mkIf (templates != { }) (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = cfg.enable;
            message = "netsecrets.client.templates needs netsecrets.client.enable = true (the secrets it uses are fetched by the client).";
          }
        ]
        ++ lib.concatLists (lib.mapAttrsToList templateAssertions templates)
        ++ map (name: {
          assertion = nameType.check name && lib.stringLength (unitOf name) <= 250;
          message = "netsecrets.client.templates.\"${name}\": the name becomes a file and unit name; use 1-200 characters of [A-Za-z0-9._@+-].";
        }) (lib.attrNames templates);

        # A store path without string context (e.g. cut out of an ExecStart
        # with builtins.match, which drops it) does not bring its file into
        # the system: the render would find no template.
        warnings = lib.concatLists (
          lib.mapAttrsToList (
            n: t:
            lib.optional (t.file != null && builtins.isString t.file && lib.hasPrefix "${builtins.storeDir}/" t.file && !builtins.hasContext t.file) ''
              netsecrets.client.templates.${n}.file is a store path without string context
              (${t.file}): nothing makes sure it is part of the system. Take it with its
              context, e.g. lib.last (lib.splitString " " ExecStart) rather than builtins.match.
            ''
          ) templates
        );
      }
      (lib.mkIf cfg.enable {
        systemd.tmpfiles.rules = [
          "d ${common.initrdDir} 0751 root root -"
          "d ${renderedDir} 0751 root root -"
        ];
        systemd.services = lib.mapAttrs' (n: t: lib.nameValuePair (unitBase n) (stage2Unit n t)) templates;
        systemd.paths = lib.mapAttrs' (n: t: lib.nameValuePair (unitBase n) (pathUnit n t)) templates;
      })
      (
        let
          stage1 = lib.filterAttrs (_: t: t.initrd) templates;
        in
        lib.mkIf (cfg.enable && cfg.enableInitrd && stage1 != { }) {
          boot.initrd.systemd.services = lib.mapAttrs' (n: t: lib.nameValuePair (unitBase n) (initrdUnit n t)) stage1;
          # The template files themselves (placeholders only) go into the initrd.
          boot.initrd.systemd.storePaths = lib.mapAttrsToList (n: t: "${templateFile n t}") stage1;
        }
      )
    ]
  );
}
