//! Readiness for systemd (`Type=notify`): one datagram with `READY=1` to the AF_UNIX socket
//! `$NOTIFY_SOCKET` names (a path, or `@name` for an abstract address), as sd_notify(3) does,
//! without libsystemd. Without `NOTIFY_SOCKET` nothing happens; a failure is a log line, never
//! an error (the service works either way; systemd then times the start out and says so).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

use crate::sys::log;

/// Sends `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET`, if set. True when it was sent.
pub fn notify(state: &str) -> bool {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    match send(target.as_bytes(), state.as_bytes()) {
        Ok(()) => true,
        Err(e) => {
            log::line(&format!(
                "warning: cannot tell systemd {state:?} through NOTIFY_SOCKET: {e}"
            ));
            false
        }
    }
}

fn send(target: &[u8], msg: &[u8]) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let sent = match target {
        [b'@', name @ ..] => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(msg, &addr)?
        }
        [b'/', ..] => sock.send_to(msg, std::ffi::OsStr::from_bytes(target))?,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "only a path or an @abstract address is supported",
            ))
        }
    };
    if sent != msg.len() {
        return Err(std::io::Error::other("short datagram"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_abstract_addresses() {
        let dir = std::env::temp_dir().join(format!("netsecrets-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str().as_bytes(), b"READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("netsecrets-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx2 = UnixDatagram::bind_addr(&addr).unwrap();
        send(format!("@{name}").as_bytes(), b"READY=1").unwrap();
        let n = rx2.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        assert!(send(b"vsock:2:1", b"READY=1").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
