//! The `--help` texts, one per subcommand: what `netsecrets <command> --help` prints. Defaults
//! shown here must match the parser's (`parse.rs`, `conn.rs`) and the NixOS modules'.

pub const MAIN_HELP: &str = "\
netsecrets - network secrets distribution for NixOS

Usage: netsecrets <command> [flags]

Commands:
  receive        run the server: serve secrets from memory to allowed networks
  send           run the client: fetch secrets and write them to stdout or a file
  credentials    serve secrets to systemd's LoadCredential= over an AF_UNIX socket
  ask-password   prompt for the server password on the console (initrd)
  copy-password  copy the prompted password elsewhere (custom initrds)
  keygen         print a new random encryption key (or, with --password, a password)
  render         put fetched secrets into a config file template
  placeholder    print the placeholder of a secret for a template

Run `netsecrets <command> --help` for its flags. `netsecrets --version` prints the version.
Exit codes: 0 success, 1 a secret could not be fetched or written, 2 bad usage or configuration.
";

pub const RECEIVE_HELP: &str = "\
Usage: netsecrets receive [flags]

Serve secrets from memory over TCP.

  --server IP                 bind address, IPv4 or IPv6 (env NETSECRETS_SERVER) [0.0.0.0]
  --port PORT                 TCP port (env NETSECRETS_PORT) [8080]
  --password PW               shared password (env NETSECRETS_PASSWORD); visible in ps, prefer:
  --password-file PATH        read the password from a file, one trailing newline stripped
                              (env NETSECRETS_PASSWORD_FILE)
  -S NAME=VALUE               a secret to serve; repeatable; visible in ps, prefer:
  --secret-file NAME=PATH     a secret whose value is the regular file's exact bytes (16 MiB
                              at most); repeatable
  --clients-file PATH         named clients, one a line: NAME password=FILE [key=FILE]
                              [from=CIDR,...] secrets=NAME,...|* (paths relative to
                              $CREDENTIALS_DIRECTORY, else to the file); see README
  -a, --authorized-ips CIDR,...  allowed client networks (IPv4/IPv6 CIDRs or addresses);
                              repeatable; default: any address; an empty list is an error
  --encryption-key STR        AES-256-GCM key = SHA-256(STR); visible in ps, prefer:
  --encryption-key-file PATH  AES-256-GCM key = SHA-256(file minus one trailing newline);
                              beats --encryption-key
  --insecure                  plaintext even if a key is given
  --min-protocol 1|2          2: refuse protocol-1 requests, whose answers are bound to
                              nothing (env NETSECRETS_MIN_PROTOCOL) [1]
  --timeout SECS              per-connection deadline [5]
  --max-connections N         connections served at once (= worker threads) [256]
  --max-per-ip N              connections at once from one address [64]
  --max-failures N            failed logins from one address before it is locked out for 30 s,
                              doubling on each further failure; 0 disables [5]
  --verbose                   more detail on stderr (never values, passwords or keys)
  -h, --help

SIGHUP re-reads every file (password, key, secrets, clients); a bad one keeps the old set.
";

pub const SEND_HELP: &str = "\
Usage: netsecrets send [flags]

Fetch secrets; write them to stdout (one per line) or atomically to a file.

  --server IP|HOST            the server (env NETSECRETS_SERVER)
  --port PORT                 TCP port (env NETSECRETS_PORT) [8080]
  --password PW               shared password (env NETSECRETS_PASSWORD); visible in ps, prefer:
  --password-file PATH        one trailing newline stripped (env NETSECRETS_PASSWORD_FILE)
  --request_secrets NAMES     names, space- or comma-separated; also --request-secrets
                              (env NETSECRETS_REQUEST_SECRETS)
  --file-output PATH          write here (atomically) instead of stdout; values joined by newlines
  --owner USER|UID            owner of the output file [the caller]
  --group GROUP|GID           group of the output file [the caller's]
  --mode OCTAL                mode of the output file, up to 0777 [0400]
  --restart-unit UNIT         after the file was created or changed: systemctl --no-block
                              try-restart UNIT; repeatable
  --reload-unit UNIT          likewise try-reload-or-restart UNIT; repeatable
  --start-unit UNIT           after every successful fetch: systemctl --no-block start UNIT
                              (units waiting for this secret); repeatable
  --systemctl PATH            the systemctl to run [systemctl from PATH]
  --fallbacks IP,...          more servers, same port, tried in order (env NETSECRETS_FALLBACKS)
  --encryption-key STR        AES-256-GCM key = SHA-256(STR); visible in ps, prefer:
  --encryption-key-file PATH  key = SHA-256(file minus one trailing newline); beats --encryption-key
  --insecure                  plaintext even if a key is given
  --protocol 1|2              2: each answer bound to its request (needs a key); 1 for servers
                              that know only protocol 1 (env NETSECRETS_PROTOCOL) [2 with a key]
  --timeout SECS              total deadline, retries with backoff included [30]
  --offline-cache DIR         also keep each value fetched in DIR/<name>.cred, sealed with
                              systemd-creds for this host (TPM2 + host key, or host key)
  --offline-after SECS        when no server could be reached (refused, no route, no answer)
                              for SECS, take each secret from the cache; a server that was
                              reached and refused, or said Not found, never allows it
  --offline-max-age SECS      older copies are deleted, never used [604800 = 7 days]
  --systemd-creds PATH        the systemd-creds to run [systemd-creds from PATH]
  --verbose                   progress on stderr (never values, passwords or keys)
  -h, --help

Nothing is written unless every secret arrived; an existing file is left intact on failure.
A file that already holds the same bytes, owner, group and mode is left untouched (timestamps
too) and no restart or reload follows. A failed systemctl is a warning (the value is in place).
";

pub const CREDENTIALS_HELP: &str = "\
Usage: netsecrets credentials --allow NAME=UNIT,... [--socket PATH] [connection flags]

Serve secrets to systemd units as credentials: a unit with LoadCredential=NAME:PATH (PATH this
socket) gets the value fetched from the server when it starts, into /run/credentials/<unit>/
only. systemd names the unit and credential in its socket address; a unit not allowed for
NAME, a peer that is not root, or a secret that cannot be fetched is answered with more than
systemd accepts for a credential, so the unit fails to start. Nothing is stored.

  --allow NAME=UNIT,...       the units that may load NAME; repeatable
  --socket PATH               listen here (mode 0600; a stale socket is replaced), unless
                              systemd passes the socket (LISTEN_FDS, a .socket unit)
  --server --port --password[-file] --fallbacks --encryption-key[-file] --insecure --protocol
  --timeout SECS              as for send; the timeout is per credential [30]
  --verbose
  -h, --help
";

pub const ASK_HELP: &str = "\
Usage: netsecrets ask-password [flags]

Ask for the server password on a terminal (no echo) and store it for `send --password-file`.

  --tty PATH                  terminal to ask on [/dev/console]
  --output PATH               where to write the password (atomically, mode 0400)
                              [/run/netsecrets-password]
  --prompt TEXT               [netsecrets password: ]
  --verify-secret NAME        check the password by fetching NAME (value discarded). Each typed
                              password is sent once it reaches a server (an unreachable one is
                              retried within --timeout); a refused one is asked again at once,
                              never sent again. Takes send's connection flags:
                              --server --port --fallbacks --encryption-key[-file] --insecure
                              --protocol --timeout
  --tries N                   typed passwords with --verify-secret before giving up [3]
  -h, --help
";

pub const COPY_HELP: &str = "\
Usage: netsecrets copy-password [--from PATH] [--to PATH]

Copy the prompted password to another path, for a custom initrd whose later services read it
elsewhere: atomic, mode 0400, the directory is created with mode 0751 when missing. The NixOS
module does not use this command: its stage-2 units read /run/netsecrets-password, where
ask-password writes it. With both defaults nothing is copied (the password is only checked
to be there).

  --from PATH                 [/run/netsecrets-password]
  --to PATH                   [/run/netsecrets-password]
  -h, --help
";

pub const KEYGEN_HELP: &str = "\
Usage: netsecrets keygen [--password] [--output PATH]

Print a new key: 32 random bytes as 64 hex characters and a newline, usable as
--encryption-key-file. With --output, write it atomically with mode 0400 (never overwrites).

  --password                  a password instead: 16 random bytes as 32 hex characters and a
                              newline, usable as --password-file (a client's or the server's)
  --output PATH               write here instead of stdout
  -h, --help
";

pub const PLACEHOLDER_HELP: &str = "\
Usage: netsecrets placeholder NAME

Print the placeholder that stands for secret NAME in a template (<netsecrets:NAME:HASH>, HASH
the SHA-256 of the name, nothing secret): the same string as config.netsecrets.placeholder.NAME
in NixOS, for templates written outside Nix. `render` replaces it by the secret's value.

  -h, --help
";

pub const RENDER_HELP: &str = "\
Usage: netsecrets render --template PATH --output PATH [--secret NAME=PATH]... [flags]

Replace every placeholder <netsecrets:NAME:HASH> in the template (config.netsecrets.placeholder.NAME
in NixOS) by the exact bytes of the file given for NAME, in one pass (values are never expanded
again), and write the result atomically. Anything else starting with <netsecrets: (a cut
placeholder, a wrong hash, a secret not given) is an error, and the old file is left as it was.
An unchanged result leaves the file untouched.

  --template PATH             the text with placeholders (16 MiB at most)
  --output PATH               the rendered file (a missing directory is created, mode 0751)
  --secret NAME=PATH          the value of secret NAME (e.g. the file `send` wrote); repeatable;
                              only the secrets the template uses are read
  --owner USER|UID            owner of the output file [the caller]
  --group GROUP|GID           group of the output file [the caller's]
  --mode OCTAL                mode of the output file, up to 0777 [0400]
  --restart-unit UNIT         `systemctl try-restart UNIT` when the file was written; repeatable
  --reload-unit UNIT          `systemctl try-reload-or-restart UNIT` when written; repeatable
  --start-unit UNIT           `systemctl start UNIT` after every successful render; repeatable
  --systemctl PATH            the systemctl to run [systemctl from PATH]
  --verbose                   say also when the file was unchanged
  -h, --help
";
