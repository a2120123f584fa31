"""A small reimplementation of how sops-nix installs secrets under /run/secrets.

Only the directory handling, written from reading sops-nix's own code (Mic92/sops-nix,
pkgs/sops-install-secrets/main.go at commit 56b2406 (June 2026), and linux.go for
MountSecretFs); nothing of it is copied or needed at run time. Decryption, templates, the
ramfs mount, restarting units and user mode are left out: a secret's value is given in the
manifest, and the directory standing for /run is an ordinary directory.

What sops-install-secrets does at every activation (installSecrets):
  1. MountSecretFs: MkdirAll(secretsMountPoint /run/secrets.d, 0751) (and mounts a ramfs there);
  2. prepareSecretsDir: Readlink(symlinkPath /run/secrets); when it is a link into
     /run/secrets.d, the generation is its base name, else 0. Since commit f214c1b (January
     2025, "handle /run/secrets more gracefully if its a directory") a /run/secrets that
     exists but is not a symlink is removed with RemoveAll; before that commit, Readlink's
     error (EINVAL) ended the activation: "cannot access /run/secrets: ... invalid argument".
     Then /run/secrets.d/<generation + 1> is created (mode 0751, owner 0:keys);
  3. writeSecrets: each secret written to /run/secrets.d/<gen>/<name> (createParentDirs for
     names with "/": MkdirAll 0751), WriteFile with its mode, Chown to its owner and group;
  4. atomicSymlink(/run/secrets.d/<gen>, /run/secrets): Symlink; if that fails with EEXIST,
     a symlink made in MkdirTemp(dirname, ".secrets") is renamed over /run/secrets. Go's
     os.Rename refuses a destination that is a directory (EEXIST, before rename(2), which
     would say EISDIR);
  5. symlinkSecretsAndTemplates: a secret whose path is not /run/secrets/<name> gets a symlink
     there (createSymlink, replacing whatever else is at that path);
  6. pruneGenerations: every numbered generation <= current - keepGenerations (default 1) is
     removed (RemoveAll), so the previous generation's files disappear.
"""

import errno
import os
import shutil
import tempfile
from pathlib import Path

CURRENT = "56b2406"  # sops-nix commit read (June 2026): RemoveAll on a non-symlink /run/secrets
BEFORE_F214C1B = "before-f214c1b"  # sops-nix before January 2025: a real /run/secrets is an error


class SopsError(Exception):
    """sops-install-secrets exits non-zero with this message; its secrets are not installed."""


def _go_remove_all(path):
    """os.RemoveAll: path and everything below it; nothing there is not an error."""
    if not os.path.lexists(path):
        return
    if Path(path).is_dir() and not Path(path).is_symlink():
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _go_rename(old, new):
    """os.Rename on Unix (os/file_unix.go rename): a directory at `new` is refused with EEXIST
    before rename(2) is tried."""
    try:
        if os.path.isdir(new) and not os.path.islink(new):
            raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), new)
    except FileNotFoundError:
        pass
    os.rename(old, new)


def mount_secret_fs(mountpoint):
    """MountSecretFs (linux.go), without the ramfs mount."""
    os.makedirs(mountpoint, 0o751, exist_ok=True)


def prepare_secrets_dir(mountpoint, link_name, keys_gid, variant=CURRENT):
    """prepareSecretsDir: the directory of the next generation."""
    generation = 0
    try:
        target = os.readlink(link_name)
        if target.startswith(str(mountpoint)):
            base = os.path.basename(target)
            if not base.isdigit():
                raise SopsError(f"cannot parse {base} of {target} as a number")
            generation = int(base)
    except FileNotFoundError:
        pass
    except OSError as e:  # EINVAL: it exists but is not a symlink
        if variant == BEFORE_F214C1B:
            raise SopsError(f"cannot access {link_name}: readlink {link_name}: {e.strerror.lower()}") from e
        try:
            os.lstat(link_name)
        except OSError as e2:
            raise SopsError(f"cannot access {link_name}: {e}") from e2
        # "if `/run/secrets` exists, but is not a symlink, we need to remove it"
        _go_remove_all(link_name)
    generation += 1
    d = os.path.join(mountpoint, str(generation))
    if os.path.lexists(d):
        _go_remove_all(d)
    os.mkdir(d, 0o751)
    os.chmod(d, 0o751)  # Go's Mkdir is subject to the umask too; ramfs is mounted mode=0751
    os.chown(d, 0, keys_gid)
    return d


def write_secrets(secret_dir, secrets, keys_gid):
    """writeSecrets with createParentDirs."""
    for s in secrets:
        fp = os.path.join(secret_dir, s["name"])
        path_so_far = secret_dir
        for part in os.path.dirname(s["name"]).split("/"):
            path_so_far = os.path.join(path_so_far, part)
            os.makedirs(path_so_far, 0o751, exist_ok=True)
            os.chown(path_so_far, 0, keys_gid)
        fd = os.open(fp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, s["mode"])
        with os.fdopen(fd, "wb") as f:
            f.write(s["value"])
        os.chown(fp, s["owner"], s["group"])


def atomic_symlink(oldname, newname):
    """atomicSymlink."""
    os.makedirs(os.path.dirname(newname), 0o755, exist_ok=True)
    try:
        os.symlink(oldname, newname)
        return
    except FileExistsError:
        pass
    except OSError as e:
        raise SopsError(f"cannot update secrets symlink: {e}") from e
    d = tempfile.mkdtemp(dir=os.path.dirname(newname), prefix="." + os.path.basename(newname))
    try:
        tmp = os.path.join(d, "tmp.symlink")
        os.symlink(oldname, tmp)
        try:
            _go_rename(tmp, newname)
        except OSError as e:
            raise SopsError(f"cannot update secrets symlink: cannot rename {tmp} to {newname}: {e}") from e
    finally:
        shutil.rmtree(d, ignore_errors=True)


def create_symlink(target_file, path):
    """createSymlink (as root: SecureSymlinkChown is a symlink renamed into place)."""
    for _ in range(100):  # the Go loop retries while the link vanishes under it
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            d = tempfile.mkdtemp(dir=os.path.dirname(path))
            try:
                tmp = os.path.join(d, os.path.basename(path))
                os.symlink(target_file, tmp)
                os.lchown(tmp, 0, 0)
                _go_rename(tmp, path)
            finally:
                shutil.rmtree(d, ignore_errors=True)
            return
        if os.path.islink(path) and os.readlink(path) == target_file and st.st_uid == 0 and st.st_gid == 0:
            return
        try:
            try:
                os.remove(path)  # Go's os.Remove: unlink, or rmdir for an empty directory
            except IsADirectoryError:
                os.rmdir(path)
        except OSError as e:
            raise SopsError(f"cannot override {path}: {e}") from e
    raise SopsError(f"failed to symlink secret '{path}'")


def symlink_secrets(target_dir, secrets):
    """symlinkSecretsAndTemplates (secrets only)."""
    for s in secrets:
        target = os.path.join(target_dir, s["name"])
        if target == s["path"]:
            continue
        os.makedirs(os.path.dirname(s["path"]), exist_ok=True)
        create_symlink(target, s["path"])


def prune_generations(mountpoint, secrets_dir, keep):
    """pruneGenerations."""
    if keep == 0:
        return
    current = int(os.path.basename(secrets_dir))
    for name in os.listdir(mountpoint):
        if not name.isdigit():
            continue
        n = int(name)
        if n == current:
            continue
        if current - keep >= n:
            _go_remove_all(os.path.join(mountpoint, name))


def install_secrets(run, secrets, variant=CURRENT, keep_generations=1, keys_gid=0):
    """One activation of sops-install-secrets (installSecrets) with `run` standing for /run.
    `secrets`: [{name, value (bytes), path (None: <run>/secrets/<name>), mode, owner, group}]."""
    mountpoint = os.path.join(run, "secrets.d")
    link = os.path.join(run, "secrets")
    secrets = [dict(s, path=s.get("path") or os.path.join(link, s["name"])) for s in secrets]
    mount_secret_fs(mountpoint)
    d = prepare_secrets_dir(mountpoint, link, keys_gid, variant)
    write_secrets(d, secrets, keys_gid)
    atomic_symlink(d, link)
    symlink_secrets(link, secrets)
    prune_generations(mountpoint, d, keep_generations)
    return d
