# The options of netsecrets.server (the module is ./default.nix). Every
# option has a camelCase name; `password_file` and `authorized_ips`, the
# spellings existing configurations use, are the same options.
{
  lib,
  pkgs,
  ...
}:
let
  common = import ../common.nix { inherit lib; };
in
{
  # The spellings existing configurations use, the same options without any
  # warning (a list given in both spellings is merged).
  imports = [
    (lib.mkAliasOptionModule
      [
        "netsecrets"
        "server"
        "password_file"
      ]
      [
        "netsecrets"
        "server"
        "passwordFile"
      ]
    )
    (lib.mkAliasOptionModule
      [
        "netsecrets"
        "server"
        "authorized_ips"
      ]
      [
        "netsecrets"
        "server"
        "authorizedIps"
      ]
    )
  ];

  options.netsecrets.server = {
    enable = lib.mkEnableOption "the netsecrets server (netsecrets-daemon.service)";

    package = lib.mkPackageOption pkgs "netsecrets" { };

    ip = lib.mkOption {
      type = lib.types.str;
      default = "0.0.0.0";
      example = "10.0.0.1";
      description = "Address to bind (IPv4 or IPv6, e.g. `0.0.0.0` or `::`).";
    };

    port = lib.mkOption {
      type = common.port;
      default = common.defaultPort;
      example = 8081;
      description = ''
        TCP port to listen on; `8081` and `"8081"` are both accepted. A port
        below 1024 gives the daemon CAP_NET_BIND_SERVICE and nothing else.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open {option}`netsecrets.server.port` in the firewall.";
    };

    password = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = ''
        The shared password, literally. It is copied into the world-readable
        Nix store (a warning says so); prefer {option}`netsecrets.server.passwordFile`.
      '';
    };

    passwordFile = lib.mkOption {
      type = lib.types.nullOr (
        lib.types.either common.pathNotInStoreOrEmpty (lib.types.listOf common.pathNotInStore)
      );
      default = null;
      example = "/run/agenix/netsecrets-password";
      description = ''
        A root-only file holding the shared password (one trailing newline is
        stripped), e.g. from agenix or sops-nix. Handed to the daemon with
        LoadCredential=; takes priority over {option}`netsecrets.server.password`.
        `""` means unset. `password_file` is the same option.
        A list of files is accepted too, every password in it at once: to
        rotate, list the old and the new, switch the clients, then drop the old.
      '';
    };

    secrets = lib.mkOption {
      type = lib.types.listOf common.secretName;
      default = [ ];
      example = [
        "db-password"
        "api-key"
      ];
      description = ''
        Names of the secrets to serve. The value of each is read from
        {option}`netsecrets.server.secretFiles`.<name> if set, else from
        {option}`netsecrets.server.secretsDir`/<name>.
      '';
    };

    secretsDir = lib.mkOption {
      type = common.pathNotInStore;
      default = "/run/secrets";
      example = "/run/agenix";
      description = ''
        Directory holding one root-only file per served secret, named after it.
        The default is where sops-nix puts `sops.secrets.<name>`.
      '';
    };

    secretFiles = lib.mkOption {
      type = lib.types.attrsOf common.pathNotInStore;
      default = { };
      example = lib.literalExpression ''
        {
          db-password = config.age.secrets.db-password.path;
          api-key = config.sops.secrets.api-key.path;
        }
      '';
      description = ''
        Where the value of a secret listed in {option}`netsecrets.server.secrets`
        lives, for secrets not at {option}`netsecrets.server.secretsDir`/<name>.
        Each file is read by systemd (as root) and handed to the daemon with
        LoadCredential=; its exact bytes are the secret. Nix store paths are
        refused: the store is world-readable.
      '';
    };

    authorizedIps = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "10.0.0.0/24" ];
      description = ''
        Client networks (IPv4/IPv6 CIDRs or bare addresses) allowed to connect.
        Passed to the daemon and mirrored into systemd's IPAddressAllow= with
        IPAddressDeny=any. Empty: every address may connect.
        `authorized_ips` is the same option.
      '';
    };

    encryptionKey = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = ''
        AES-256-GCM key material, literally. It is copied into the
        world-readable Nix store (a warning says so); prefer
        {option}`netsecrets.server.encryptionKeyFile`.
      '';
    };

    encryptionKeyFile = lib.mkOption {
      type = lib.types.nullOr (
        lib.types.either common.pathNotInStoreOrEmpty (lib.types.listOf common.pathNotInStore)
      );
      default = null;
      example = "/run/agenix/netsecrets-key";
      description = ''
        A root-only file holding the key material (`netsecrets keygen` makes
        one). Takes priority over {option}`netsecrets.server.encryptionKey`
        (setting both warns).
        `""` means unset. A list of files is accepted too (every key in it at
        once, for rotation; at most 8 keys may be tried at one address).
      '';
    };

    insecure = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Serve in plaintext even if a key is set.";
    };

    maxFailures = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.unsigned;
      default = null;
      example = 10;
      description = ''
        Distinct wrong passwords from one address (an IPv6 /64 gets 4 times
        as many) before it is locked out (`--max-failures`; 0: never): 30 s,
        doubling with each further wrong password up to 15 minutes.
        null: the daemon's default (5). See docs/nixos.md on lockouts.
      '';
    };

    maxPerIp = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.positive;
      default = null;
      example = 16;
      description = "Connections at once from one address or IPv6 /64 (`--max-per-ip`). null: the daemon's default (64).";
    };

    maxConnections = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.positive;
      default = null;
      example = 512;
      description = "Connections served at once in all (`--max-connections`). null: the daemon's default (256).";
    };

    timeout = lib.mkOption {
      type = lib.types.nullOr lib.types.ints.positive;
      default = null;
      example = 10;
      description = ''
        Seconds one connection may take, until the client has read its
        answer (`--timeout`); a client that has not read it by then is reset.
        null: the daemon's default (5).
      '';
    };

    verbose = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Log progress (never values, passwords or keys).";
    };

    minProtocol = lib.mkOption {
      type = lib.types.enum [ 1 2 ];
      default = 1;
      description = ''
        Oldest wire protocol served (`--min-protocol`). 2 refuses requests of
        protocol 1, whose answers are bound to nothing: set it once every client
        speaks protocol 2 (netsecrets.client.protocol).
      '';
    };

    clients = lib.mkOption {
      default = { };
      example = lib.literalExpression ''
        {
          laptop = {
            passwordFile = "/run/agenix/netsecrets-laptop-password";
            encryptionKeyFile = "/run/agenix/netsecrets-laptop-key";
            authorizedIps = [ "10.0.0.7" ];
            secrets = [ "wifi" ];
          };
          builder = {
            passwordFile = "/run/agenix/netsecrets-builder-password";
            encryptionKeyFile = "/run/agenix/netsecrets-builder-key";
            authorizedIps = [ "10.0.1.0/24" ];
            secrets = [ "*" ];
          };
        }
      '';
      description = ''
        Named clients, each with its own password, optionally its own key, the
        networks it may connect from and the secrets it may read (one identity
        per client: a stolen client reveals only its own secrets). Its files
        reach the daemon with LoadCredential=; the generated clients file
        (/etc/netsecrets/clients) names no secret. A secret a client may not
        read is answered exactly like a missing one. Removing a client and
        switching revokes it; `systemctl reload netsecrets-daemon` re-reads
        every file. The shared password, when set, stays a client that may
        read everything.
      '';
      type = lib.types.attrsOf (
        lib.types.submodule {
          options = {
            passwordFile = lib.mkOption {
              type = lib.types.either common.pathNotInStore (lib.types.nonEmptyListOf common.pathNotInStore);
              example = "/run/agenix/netsecrets-laptop-password";
              description = ''
                A root-only file holding this client's own password (one trailing
                newline is stripped), or a list of such files, all accepted at
                once (rotation: old and new, then the new alone).
              '';
            };
            encryptionKeyFile = lib.mkOption {
              type = lib.types.nullOr (
                lib.types.either common.pathNotInStore (lib.types.nonEmptyListOf common.pathNotInStore)
              );
              default = null;
              example = "/run/agenix/netsecrets-laptop-key";
              description = ''
                A root-only file holding this client's own key material
                (`netsecrets keygen`); null: the server's key (or plaintext
                with `insecure`).
              '';
            };
            authorizedIps = lib.mkOption {
              type = lib.types.listOf lib.types.str;
              default = [ ];
              example = [ "10.0.0.7" ];
              description = ''
                Networks (CIDRs or addresses) this client may connect from;
                added to IPAddressAllow=. Empty: anywhere
                {option}`netsecrets.server.authorizedIps` allows.
              '';
            };
            secrets = lib.mkOption {
              type = lib.types.listOf lib.types.str;
              example = [ "wifi" ];
              description = ''
                Names (from {option}`netsecrets.server.secrets`) this client
                may read; `[ "*" ]` for all.
              '';
            };
          };
        }
      );
    };

    systemdOverrides = lib.mkOption {
      type = lib.types.attrsOf lib.types.anything;
      default = { };
      example = {
        RestartSec = "30s";
      };
      description = ''
        Extra keys for the serviceConfig of netsecrets-daemon.service; a key
        given here replaces the module's value for that key.
      '';
    };
  };

}
