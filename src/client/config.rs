//! The client's configuration: the connection half of `send`, `credentials` and `ask-password
//! --verify-secret` turned into a checked [`ClientConfig`] (servers in order, the codec, the
//! protocol, the deadline). The password is the caller's: `keys.rs` reads it for `send` and
//! `credentials`, the prompt types it for `ask-password`.

use std::time::Duration;

use crate::cli::FetchArgs;
use crate::error::{Error, Result};
use crate::keys;
use crate::wire::bound::Protocol;
use crate::wire::crypto::Codec;

/// Default total deadline of the client, retries included.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the client needs to talk to the servers, checked.
pub struct ClientConfig {
    /// Primary first, then the fallbacks, all on `port`.
    pub servers: Vec<String>,
    pub port: u16,
    pub password: Vec<u8>,
    pub codec: Codec,
    /// Protocol 2 whenever there is a key, unless `--protocol 1`; protocol 1 in plaintext.
    pub protocol: Protocol,
    pub timeout: Duration,
    pub verbose: bool,
}

/// The connection half of a client configuration (used by `send`, `credentials` and
/// `ask-password --verify-secret`).
pub fn client(args: &FetchArgs, password: Vec<u8>) -> Result<ClientConfig> {
    let servers: Vec<String> = args
        .net
        .server
        .iter()
        .chain(args.fallbacks.iter())
        .cloned()
        .collect();
    let codec = keys::codec(&args.net.key, true)?;
    let protocol = match (args.protocol, &codec) {
        (Some(Protocol::V2), Codec::Plain) => {
            return Err(Error::usage(
                "--protocol 2 needs an encryption key (--encryption-key-file); in plaintext only protocol 1 exists",
            ))
        }
        (_, Codec::Plain) | (Some(Protocol::V1), _) => Protocol::V1,
        (_, Codec::Aes(_)) => Protocol::V2,
    };
    Ok(ClientConfig {
        servers,
        port: args.net.port,
        password,
        codec,
        protocol,
        timeout: args.net.timeout.unwrap_or(CLIENT_TIMEOUT),
        verbose: args.net.verbose,
    })
}
