"""The machines the stage-1 boot test boots, and the test material baked into them.

Owns: the netsecrets.client settings of each machine (CONFIGS, evaluated by units.nix inside
real NixOS into the units that are booted), the fixed test password and key, where the
evaluated machines keep their boot.initrd.secrets sources, the paths the checks look at, the
test-only services some machines add, and `evaluate`: one NixOS evaluation for the machines a
run needs. stage2.py reuses the material and adds machines of its own.
"""

import hashlib
import re

import nixeval
from harness import TestError, log

# What the guest dials; the guestfwd rule maps it to the host's loopback port.
GUEST_SERVER = "10.0.2.100"
GUEST_PORT = 7777
# Paths inside the initrd that the checks look at (the units come from the module;
# these are nix/modules/common.nix's initrdDir and consolePasswordFile).
STAGE1_DIR = "/run/netsecrets"
STAGE2_DIR = "/var/lib/netsecrets"
CONSOLE_PW = "/run/netsecrets-password"

# Test material baked into the test initrd. Fixed, so that the initrd can be
# cached between runs; the secret values live only on the host and are fresh
# random bytes each run.
# Spaces on purpose: the server splits a request at its last space, so a password may hold
# spaces and the wire format must keep them.
TEST_PASSWORD = "boot test pw 7Qz"
WRONG_PASSWORD = "not the pw 9Xk"
TEST_KEY = hashlib.sha256(b"netsecrets boot test key").hexdigest() + "\n"

SECRET_NAMES = ["alpha", "beta"]
FETCH_UNITS = [f"netsecrets-secret-{n}.service" for n in SECRET_NAMES]
COPY_SECRETS_UNIT = "initrd-nixos-copy-secrets.service"
STAGE2_MOUNTS = ["var-lib-netsecrets.mount", "run-netsecrets.mount"]

# Where the evaluated machine keeps its client password and key (the
# boot.initrd.secrets sources on the NixOS host; never read here). The boot
# loader appends them to the initrd as /.initrd-secrets/<dest>; the harness
# puts the test values there, as append-initrd-secrets would.
HOST_PASSWORD_SRC = "/etc/nixos/netsecrets/client-password"
HOST_KEY_SRC = "/etc/nixos/netsecrets/client-key"
SOURCE_CONTENT = {HOST_PASSWORD_SRC: TEST_PASSWORD + "\n", HOST_KEY_SRC: TEST_KEY}

# Scenario 7: stage-1 services that use secrets (initrdRequiredBy, credential). alpha is a credential only
# (writeFile = false), beta a file and a credential, both for nsbt-consumer; "missing" and
# "missing-file" are not served: the first as a credential for nsbt-blocked (refused by
# `netsecrets credentials`), the second as a file for nsbt-blocked-file (its fetch unit
# fails). nsbt-unlisted asks the socket for alpha on its own (LoadCredential= written here,
# not by the module): it is not listed for alpha. Each consumer leaves /run/nsbt-ran-<unit>
# only if it ran with its credentials in place.
CRED_SECRETS = ["alpha", "beta", "missing", "missing-file"]
CRED_SOCKET = "/run/netsecrets-credentials-initrd.sock"  # nix/modules/client/args.nix


def _consumer(check):
    return {"wantedBy": ["initrd.target"], "unitConfig": {"DefaultDependencies": False},
            "serviceConfig": {"Type": "oneshot", "RemainAfterExit": True,
                              # bash builtins only: the initrd has no touch
                              "ExecStart": f"/bin/sh -c '{check}: > /run/nsbt-ran-%n'"}}


CRED_SETTINGS = {
    "alpha": {"initrdRequiredBy": ["nsbt-consumer.service"], "credential": True, "writeFile": False},
    "beta": {"initrdRequiredBy": ["nsbt-consumer.service"], "credential": True},
    "missing": {"initrdRequiredBy": ["nsbt-blocked.service"], "credential": True, "writeFile": False},
    "missing-file": {"initrdRequiredBy": ["nsbt-blocked-file.service"]},
}
CRED_SERVICES = {
    "nsbt-consumer": _consumer("test -s %d/alpha && test -s %d/beta && "),
    "nsbt-blocked": _consumer(""),
    "nsbt-blocked-file": _consumer(""),
    "nsbt-unlisted": dict(_consumer(""), requires=["netsecrets-credentials.socket"],
                          after=["netsecrets-credentials.socket"],
                          serviceConfig=dict(_consumer("")["serviceConfig"],
                                             LoadCredential=[f"alpha:{CRED_SOCKET}"])),
}
CONSUMERS = [f"{n}.service" for n in CRED_SERVICES]

# netsecrets.client settings of each machine the scenarios boot (units.nix
# adds the rest of a NixOS configuration). The fetch deadline is a module
# option, so scenarios with different deadlines boot different machines.
SITE = {"server": GUEST_SERVER, "port": GUEST_PORT, "request_secrets": SECRET_NAMES,
        "encryptionKeyFile": HOST_KEY_SRC, "verbose": True}
# Scenario 9's template: placeholders as nix/modules/placeholder.nix makes them (the module's
# evaluation-time check refuses any other), alpha used twice.
def placeholder(name):
    return f"<netsecrets:{name}:{hashlib.sha256(('netsecrets-placeholder:' + name).encode()).hexdigest()}>"


TEMPLATE_NAME = "app.conf"
TEMPLATE_TEXT = f"a = {placeholder('alpha')}\nb = {placeholder('beta')}\nagain = {placeholder('alpha')}\n"
RENDERED = f"/run/netsecrets/rendered/{TEMPLATE_NAME}"
TEMPLATE_UNIT = f"netsecrets-template-{TEMPLATE_NAME}.service"
# Scenario 10: a running unit the template's restartUnits names; each run appends a line.
MARKER_UNIT = "nsbt-marker.service"
MARKER_FILE = "/run/nsbt-marker"

# Scenario 11: alpha is initrdOnly, for nsbt-luks (a stand-in for systemd-cryptsetup, which
# leaves a marker only if the key file is there); nsbt-switch then stops alpha's fetch unit, as
# starting initrd-switch-root.target does (the unit Conflicts= with it; tests/nixos-eval/check.py
# checks that): the key must be gone, beta (stage 2 may use it) must stay.
INITRD_ONLY_FILE = f"{STAGE1_DIR}/initrd-only/alpha/alpha"
INITRD_ONLY_SERVICES = {
    "nsbt-luks": _consumer(f"test -s {INITRD_ONLY_FILE} && "),
    "nsbt-switch": {"wantedBy": ["initrd.target"], "unitConfig": {"DefaultDependencies": False},
                    "after": ["nsbt-luks.service", "netsecrets-client.service"],
                    "serviceConfig": {"Type": "oneshot", "RemainAfterExit": True,
                                      "ExecStart": "/usr/bin/systemctl stop netsecrets-secret-alpha.service"}},
}

CONFIGS = {
    # password from boot.initrd.secrets (passwordFile), stage-1 fetch
    "file": dict(SITE, enableInitrd=True, passwordFile=HOST_PASSWORD_SRC, timeout=60),
    # password typed on the console, stage-1 fetch
    "prompt": dict(SITE, enableInitrd=True, enableInitrdPassword=True, timeout=30),
    "prompt-short": dict(SITE, enableInitrd=True, enableInitrdPassword=True, timeout=6),
    # password typed on the console in stage 1 for the stage-2 fetch only
    "prompt-stage2": dict(SITE, enableInitrdPassword=True, timeout=30),
    # the stage-2 fetch of alpha restarts nsbt-restarted.service (restartUnits)
    "actions": dict(SITE, enableInitrdPassword=True, timeout=30,
                    secrets={"alpha": {"restartUnits": ["nsbt-restarted.service"]}},
                    initrdServices={"nsbt-restarted": {
                        "wantedBy": ["initrd.target"], "unitConfig": {"DefaultDependencies": False},
                        "serviceConfig": {"Type": "oneshot", "RemainAfterExit": True,
                                          "ExecStart": "/bin/sh -c 'echo started >> /run/nsbt-restarts'"}}}),
    # a template rendered by the stage-2 unit (sandbox, chown, change action)
    "template-stage2": dict(SITE, enableInitrdPassword=True, timeout=30,
                            templates={TEMPLATE_NAME: {"content": TEMPLATE_TEXT, "owner": "65534", "group": "65534",
                                                       "mode": "0440", "restartUnits": [MARKER_UNIT]}}),
    # a template rendered in stage 1 from the stage-1 secrets
    "template": dict(SITE, enableInitrd=True, passwordFile=HOST_PASSWORD_SRC, timeout=60,
                     templates={TEMPLATE_NAME: {"content": TEMPLATE_TEXT, "initrd": True, "mode": "0440"}}),
    # stage-1 services that use secrets (initrdRequiredBy, credential)
    "credentials": dict(SITE, enableInitrd=True, passwordFile=HOST_PASSWORD_SRC, timeout=6,
                        request_secrets=CRED_SECRETS, secrets=CRED_SETTINGS, initrdServices=CRED_SERVICES),
    # a stage-1-only secret (a LUKS key): there for its consumer, gone when its unit stops
    "initrd-only": dict(SITE, enableInitrd=True, passwordFile=HOST_PASSWORD_SRC, timeout=60,
                        secrets={"alpha": {"initrdOnly": True, "initrdRequiredBy": ["nsbt-luks.service"]}},
                        initrdServices=INITRD_ONLY_SERVICES),
}


# ---------------------------------------------------------------- evaluation

def evaluate(ctx, names):
    """The units the client module renders for each machine, from one real NixOS evaluation each
    (initrd/boot-test/units.nix). A machine whose settings give a NixOS warning fails too:
    they are the documented setups."""
    try:
        evals = nixeval.evaluate(ctx["work"], {n: CONFIGS[n] for n in names}, log=log)
    except nixeval.EvalError as e:
        raise TestError(str(e)) from e
    for cfg, ev in sorted(evals.items()):
        ev["stage2Password"] = stage2_password_path(ev)
        for w in ev["warnings"]:
            log(f"NixOS warning for machine {cfg!r}: {' '.join(w.split())}")
    return evals


def stage2_password_path(ev):
    """Where stage 2 reads the password: the --password-file of the rendered stage-2 fetch unit,
    followed through its LoadCredential= when it names a credential (%d/<id>)."""
    # The first secret's unit; a machine whose first secret has no file (scenario 7's
    # writeFile = false) has none, and the next one's says the same.
    unit = next((u for u in FETCH_UNITS + sorted(ev["stage2"]) if u in ev["stage2"]
                 and u.startswith("netsecrets-secret-")), FETCH_UNITS[0])
    text = ev["stage2"].get(unit)
    if text is None:
        raise TestError(f"the module renders no stage-2 {FETCH_UNITS[0]}")
    m = re.search(r"^ExecStart=.*?\"--password-file\" (\"[^\"]*\"|\S+)", text, re.M)
    if not m:
        raise TestError(f"stage-2 {unit}: no --password-file in ExecStart")
    arg = m.group(1).strip('"')
    if arg.startswith("%d/"):
        cred = arg[3:]
        c = re.search(rf"^LoadCredential={re.escape(cred)}:(\S+)$", text, re.M)
        if not c:
            raise TestError(f"stage-2 {FETCH_UNITS[0]}: --password-file {arg} but no LoadCredential={cred}:...")
        return c.group(1)
    return arg

