//! What the program asks of the operating system, kept apart from what it decides: sockets with
//! deadlines, atomic files, log lines, and the two symbols the static binary defines itself.
//! Nothing here knows about secrets' meaning, the protocol or the command line.
//!
//! - `net.rs`         — whole-exchange deadlines on sockets; connecting within a deadline;
//!   what counts as a timeout.
//! - `input.rs`       — reading every file a flag names (secrets, passwords, keys, templates,
//!   `/etc/passwd`): regular files only, bounded, each refusal worded the same.
//! - `output.rs`      — atomic secret files with owner, group and mode; written only when
//!   the bytes, owner, group or mode changed (`save_if_changed`); the directory reached
//!   without following symlinks that others could have planted.
//! - `creds.rs`       — `systemd-creds encrypt/decrypt` run through pipes (offline cache).
//! - `systemctl.rs`   — change actions: `systemctl --no-block try-restart/...` after a write.
//! - `spawn.rs`       — starting a program (fork + exec, exec errors reported) and waiting
//!   for it by a deadline; for `creds.rs` and `systemctl.rs`.
//! - `notify.rs`      — `READY=1` to `$NOTIFY_SOCKET` (systemd `Type=notify`), no libsystemd.
//! - `console.rs`     — the password prompt on a terminal, echo off and restored on every exit
//!   (signals included) (systemd stage 1).
//! - `keygen.rs`      — `keygen`: a new random key, on stdout or in a new file.
//! - `log.rs`         — single-write log lines on stderr.
//! - `wipe.rs`        — zeroing buffers that held a password or a secret.
//! - `thread_name.rs` — the static binary's own `pthread_setname_np` (no musl `printf`).
//! - `unwind.rs`      — the static binary's do-nothing unwinder (size).
//!
//! The last two are compiled into the binary only (see `main.rs`), not into this library.

pub mod console;
pub mod creds;
pub mod input;
pub mod keygen;
pub mod log;
pub mod net;
pub mod notify;
pub mod output;
pub mod spawn;
pub mod systemctl;
pub mod wipe;
