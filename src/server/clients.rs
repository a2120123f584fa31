//! Named clients: the `--clients-file` format, and the lookup the server runs per request
//! (which keys to try at an address, which client a password belongs to, what it may read).
//!
//! The clients file names no secret itself, only the files that hold them, so a NixOS module can
//! write it to the store. One client per line, fields separated by spaces:
//!
//! ```text
//! # name   fields (password and secrets required; key and from optional)
//! laptop   password=laptop.pw key=laptop.key from=10.0.0.7,fd00::7 secrets=wifi,backup
//! builder  password=builder.pw from=10.0.1.0/24 secrets=*
//! # rotating: the old and the new password and key are all accepted until the old go
//! nas      password=nas.pw password=nas-new.pw key=nas.key key=nas-new.key secrets=backup
//! ```
//!
//! `password=` and `key=` may be repeated (overlap rotation: the server accepts every password
//! with every key of the client); `from` and `secrets` at most once.
//!
//! `from` lists the networks the client may connect from (anywhere `--authorized-ips` allows,
//! when absent); `secrets` the names it may read, or `*` for all; `key` its own encryption key
//! file (the server's `--encryption-key-file`, or plaintext, when absent). Relative paths are
//! taken in `$CREDENTIALS_DIRECTORY` when it is set (systemd's `LoadCredential=`), else beside
//! the clients file. Reading those files is `config.rs`'s work; this file only parses and looks
//! up.
//!
//! Per request the server tries the keys of the clients allowed at the source address: at most
//! [`MAX_KEYS_PER_ADDRESS`] keys, a GCM tag check as protocol 2 and one as protocol 1 each, a
//! bound checked when the file is loaded. The keys at an address are found with one hash lookup
//! per prefix length in use (networks are indexed by their exact prefix), whatever the number of
//! clients.
//! It then finds the client by password: the password is hashed with a random salt drawn at each
//! load, and the salted digest is the key of a hash map. The time a lookup takes depends only on
//! that salted digest, which nobody outside the process can compute, so it tells an attacker
//! nothing about any password; the work is one hash and one lookup however many clients exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::wire::bound::Via;
use crate::wire::cidr::{self, Cidr, NetKey};
use crate::wire::crypto::{Codec, OpenError};

/// Most distinct encryption keys the clients allowed at any one address may have: the keys one
/// request may be tried with (two GCM tag checks each: protocol 2, then protocol 1).
pub const MAX_KEYS_PER_ADDRESS: usize = 8;
/// Longest client name.
const MAX_NAME: usize = 64;
/// Name of the client that `--password` / `--password-file` configures.
pub const DEFAULT_CLIENT: &str = "default";

/// What a client may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    All,
    Only(Vec<Vec<u8>>),
}

impl Access {
    pub fn allows(&self, name: &[u8]) -> bool {
        match self {
            Access::All => true,
            Access::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// One line of a clients file, paths as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub line: usize,
    /// At least one; more while a password is being rotated.
    pub passwords: Vec<PathBuf>,
    /// None: the server's key (or plaintext); more than one while a key is being rotated.
    pub keys: Vec<PathBuf>,
    /// Empty: from anywhere `--authorized-ips` allows.
    pub from: Vec<Cidr>,
    pub access: Access,
}

/// Parses a clients file; the error is one line, `line N: ...`.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut out: Vec<Entry> = Vec::new();
    // Names by their SHA-256: a map of the same type as `by_tag`'s shares its code in the binary
    // (about 1 KiB less); two names with one digest do not occur.
    let mut seen: HashMap<[u8; 32], usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let words = raw.split('#').next().unwrap_or_default();
        let mut words = words.split_ascii_whitespace();
        let Some(name) = words.next() else {
            continue;
        };
        let err = |msg: String| format!("line {line}: {msg}");
        if !valid_name(name) {
            // Not quoted, here and below until the line is known to be a client's: a file
            // given by mistake (a secret) must not have its words echoed into the log.
            return Err(err(format!(
                "the client name (first word) is not 1 to {MAX_NAME} letters, digits, '.', '_' or '-'"
            )));
        }
        if name == DEFAULT_CLIENT {
            return Err(err(format!(
                "the client name {DEFAULT_CLIENT:?} is reserved for --password-file"
            )));
        }
        let digest: [u8; 32] = Sha256::digest(name.as_bytes()).into();
        if let Some(first) = seen.get(&digest) {
            return Err(err(format!(
                "this client name is already defined on line {first}"
            )));
        }
        seen.insert(digest, line);
        let (mut passwords, mut keys, mut from, mut access) = (Vec::new(), Vec::new(), None, None);
        for (n, word) in words.enumerate() {
            let Some((field, value)) = word.split_once('=') else {
                return Err(err(format!(
                    "word {} is not FIELD=VALUE (password, key, from, secrets)",
                    n + 2
                )));
            };
            if !matches!(field, "password" | "key" | "from" | "secrets") {
                return Err(err(format!(
                    "word {} has an unknown field: use password, key, from or secrets",
                    n + 2
                )));
            }
            if value.is_empty() {
                return Err(err(format!("{field}= is empty")));
            }
            let twice = match field {
                "password" => {
                    passwords.push(PathBuf::from(value));
                    false
                }
                "key" => {
                    keys.push(PathBuf::from(value));
                    false
                }
                "from" => {
                    let nets = cidr::parse_list(value).map_err(|e| err(format!("from=: {e}")))?;
                    if nets.is_empty() {
                        return Err(err(format!(
                            "from={value} names no network: list addresses or networks, or leave from= out to allow what --authorized-ips allows"
                        )));
                    }
                    from.replace(nets).is_some()
                }
                "secrets" => access.replace(parse_access(value).map_err(err)?).is_some(),
                _ => {
                    return Err(err(format!(
                        "unknown field {field:?}: use password, key, from or secrets"
                    )))
                }
            };
            if twice {
                return Err(err(format!("{field}= is given twice")));
            }
        }
        if passwords.is_empty() {
            return Err(err("the client has no password=FILE".into()));
        }
        let Some(access) = access else {
            return Err(err(
                "the client has no secrets=NAMES (or secrets=* for all)".into(),
            ));
        };
        out.push(Entry {
            name: name.to_owned(),
            line,
            passwords,
            keys,
            from: from.unwrap_or_default(),
            access,
        });
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn parse_access(value: &str) -> Result<Access, String> {
    if value == "*" {
        return Ok(Access::All);
    }
    let mut names = Vec::new();
    for n in value.split(',').filter(|n| !n.is_empty()) {
        crate::wire::protocol::SecretName::try_from(n.to_owned())
            .map_err(|e| format!("secrets=: {e}"))?;
        names.push(n.as_bytes().to_vec());
    }
    Ok(Access::Only(names))
}

/// A client as the server serves it.
pub struct Client {
    pub name: String,
    /// Indexes of its codecs in [`Identities::codecs`]: more than one while rotating keys.
    codecs: Vec<usize>,
    from: Vec<Cidr>,
    pub access: Access,
}

impl Client {
    fn allowed_at(&self, ip: IpAddr) -> bool {
        cidr::allowed(&self.from, ip)
    }
}

/// Every client of one configuration, indexed for the per-request lookups. Building it is
/// O(n) hash inserts plus, for the key bound, a constant number of lookups per network (one per
/// prefix length in use); a request costs one lookup per prefix length in use, whatever the
/// number of clients.
pub struct Identities {
    salt: [u8; 32],
    clients: Vec<Client>,
    by_tag: HashMap<[u8; 32], usize>,
    /// Distinct codecs: each key once, plaintext at most once.
    codecs: Vec<Codec>,
    /// For each network some client may connect from: the codecs of the clients allowed there,
    /// each once, with the first client that has it (named in errors).
    nets: HashMap<NetKey, Vec<(usize, usize)>>,
    /// Prefix lengths in use in `nets`, IPv4 and IPv6, longest first.
    prefixes_v4: Vec<u8>,
    prefixes_v6: Vec<u8>,
    /// Codecs of the clients allowed from anywhere, each once, with a client that has it.
    anywhere: Vec<(usize, usize)>,
}

/// The codecs to try for one request, at most [`MAX_KEYS_PER_ADDRESS`] plus plaintext.
pub struct Candidates {
    idx: [usize; MAX_KEYS_PER_ADDRESS + 1],
    len: usize,
}

impl Candidates {
    fn add(&mut self, i: usize) {
        let seen = self.idx.get(..self.len).unwrap_or_default().contains(&i);
        if !seen {
            if let Some(slot) = self.idx.get_mut(self.len) {
                *slot = i;
                self.len += 1;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// How a client is built: its codecs given as indexes into the codecs passed to
/// [`Identities::new`].
pub struct Spec {
    pub name: String,
    /// At least one; each accepted.
    pub passwords: Vec<Vec<u8>>,
    /// At least one; each accepted.
    pub codecs: Vec<usize>,
    pub from: Vec<Cidr>,
    pub access: Access,
}

/// Adds `(codec, client)` to `list` unless the codec is there already.
fn add_once(list: &mut Vec<(usize, usize)>, codec: usize, client: usize) {
    if !list.iter().any(|&(c, _)| c == codec) {
        list.push((codec, client));
    }
}

impl Identities {
    /// Checks and indexes the clients: no two may share a password, and the clients allowed at
    /// any address may have at most [`MAX_KEYS_PER_ADDRESS`] distinct keys. `salt` is random.
    pub fn new(salt: [u8; 32], codecs: Vec<Codec>, specs: Vec<Spec>) -> Result<Identities, String> {
        let mut by_tag = HashMap::with_capacity(specs.len());
        let mut clients: Vec<Client> = Vec::with_capacity(specs.len());
        let mut nets: HashMap<NetKey, Vec<(usize, usize)>> = HashMap::new();
        let mut anywhere = Vec::new();
        let (mut p4, mut p6) = (Vec::new(), Vec::new());
        for (i, s) in specs.into_iter().enumerate() {
            if s.codecs.is_empty() || s.codecs.iter().any(|&c| codecs.get(c).is_none()) {
                return Err(format!("client {:?}: no such codec (a bug)", s.name));
            }
            for pw in &s.passwords {
                let tag = salted(&salt, pw);
                match by_tag.get(&tag) {
                    Some(&other) if other != i => {
                        let other: Option<&Client> = clients.get(other);
                        return Err(format!(
                            "clients {:?} and {:?} have the same password: give each client its own",
                            other.map_or("?", |c| c.name.as_str()),
                            s.name
                        ));
                    }
                    _ => {
                        by_tag.insert(tag, i);
                    }
                }
            }
            for &codec in &s.codecs {
                if s.from.is_empty() {
                    add_once(&mut anywhere, codec, i);
                }
                for net in &s.from {
                    add_once(nets.entry(net.key()).or_default(), codec, i);
                    if net.addr().is_ipv4() {
                        p4.push(net.prefix());
                    } else {
                        p6.push(net.prefix());
                    }
                }
            }
            clients.push(Client {
                name: s.name,
                codecs: s.codecs,
                from: s.from,
                access: s.access,
            });
        }
        // Longest first, each length once. A presence set of the 256 possible lengths rather
        // than a sort and dedup: the generic sort added 2.5 KiB to the binary.
        let longest_first = |v: Vec<u8>| {
            let mut present = [false; 256];
            for &len in &v {
                if let Some(p) = present.get_mut(usize::from(len)) {
                    *p = true;
                }
            }
            (0..=u8::MAX)
                .rev()
                .filter(|&len| present.get(usize::from(len)) == Some(&true))
                .collect::<Vec<u8>>()
        };
        let ids = Identities {
            salt,
            clients,
            by_tag,
            codecs,
            nets,
            prefixes_v4: longest_first(p4),
            prefixes_v6: longest_first(p6),
            anywhere,
        };
        ids.check_bound()?;
        Ok(ids)
    }

    /// The codec lists of every network containing `ip`'s network of `prefix` bits (itself
    /// included), then the clients allowed anywhere: one lookup per prefix length in use.
    fn covering(&self, ip: IpAddr, upto: u8) -> impl Iterator<Item = &(usize, usize)> {
        let prefixes = if ip.is_ipv4() {
            &self.prefixes_v4
        } else {
            &self.prefixes_v6
        };
        prefixes
            .iter()
            .filter(move |&&p| p <= upto)
            .filter_map(move |&p| self.nets.get(&NetKey::of(ip, p)))
            .flatten()
            .chain(self.anywhere.iter())
    }

    /// Every address lies in a chain of nested networks, so the most keys at any one address
    /// are the most keys whose networks cover some one network (or anywhere).
    fn check_bound(&self) -> Result<(), String> {
        let everywhere = std::iter::once((None, &self.anywhere));
        let each = self.nets.iter().map(|(k, v)| (Some(*k), v));
        for (net, list) in everywhere.chain(each) {
            // The network itself, as a `Cidr` of one of its clients, for the lookups and errors.
            let cidr = match (net, list.first()) {
                (Some(k), Some(&(_, owner))) => self
                    .clients
                    .get(owner)
                    .and_then(|c| c.from.iter().find(|n| n.key() == k).copied()),
                _ => None,
            };
            if net.is_some() && cidr.is_none() {
                continue; // cannot happen: every key in `nets` comes from a client's network
            }
            // Anywhere alone: no prefix length is at most 0 but a /0's, which covers it too.
            let (ip, upto) = cidr.map_or((IpAddr::from([0u8; 4]), 0), |n| (n.addr(), n.prefix()));
            let covering = self
                .covering(ip, upto)
                .filter(|_| cidr.is_some())
                .chain(self.anywhere.iter().filter(|_| cidr.is_none()));
            let mut keys: Vec<usize> = Vec::new();
            let mut names: Vec<&str> = Vec::new();
            for &(codec, client) in covering {
                let keyed = matches!(self.codecs.get(codec), Some(Codec::Aes(_)));
                if keyed && !keys.contains(&codec) {
                    keys.push(codec);
                    let name = self.clients.get(client).map_or("?", |c| c.name.as_str());
                    if !names.contains(&name) {
                        names.push(name);
                    }
                    if keys.len() > MAX_KEYS_PER_ADDRESS {
                        break;
                    }
                }
            }
            if keys.len() > MAX_KEYS_PER_ADDRESS {
                let at = cidr.map_or("any address".to_owned(), |n| format!("{n}"));
                return Err(format!(
                    "more than {MAX_KEYS_PER_ADDRESS} distinct keys may be used from {at} (clients {}): narrow their from= networks, or drop keys no longer in use",
                    names.join(", ")
                ));
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub fn client(&self, i: usize) -> Option<&Client> {
        self.clients.get(i)
    }

    /// The codecs of the clients allowed at `ip`, keys first.
    pub fn candidates(&self, ip: IpAddr) -> Candidates {
        let mut c = Candidates {
            idx: [0; MAX_KEYS_PER_ADDRESS + 1],
            len: 0,
        };
        let ip = cidr::canonical(ip);
        for &(i, _) in self.covering(ip, u8::MAX) {
            c.add(i);
        }
        // Plaintext last: a sealed request must not be read as a plaintext one.
        let n = c.len;
        if let Some(slice) = c.idx.get_mut(..n) {
            slice.sort_by_key(|&i| matches!(self.codecs.get(i), Some(Codec::Plain)));
        }
        c
    }

    /// Opens `payload` with the first candidate codec that accepts it, as protocol 2 or as
    /// protocol 1 ([`Codec::open_request`]); returns the plaintext, the codec's index and how
    /// the request came. Two tag checks per key at most, and no copy: a failed try leaves the
    /// payload as it was.
    pub fn open(
        &self,
        cands: &Candidates,
        mut payload: Vec<u8>,
    ) -> Result<(Vec<u8>, usize, Via), OpenError> {
        let list = cands.idx.get(..cands.len).unwrap_or_default();
        for &i in list {
            let Some(codec) = self.codecs.get(i) else {
                continue;
            };
            if let Ok(via) = codec.open_request(&mut payload) {
                return Ok((payload, i, via));
            }
        }
        Err(OpenError::BadTag)
    }

    /// The client whose password this is, if it may connect from `ip` with the codec that
    /// opened its request.
    pub fn find(&self, password: &[u8], codec: usize, ip: IpAddr) -> Option<usize> {
        let i = *self.by_tag.get(&salted(&self.salt, password))?;
        let c = self.clients.get(i)?;
        (c.codecs.contains(&codec) && c.allowed_at(ip)).then_some(i)
    }

    /// Bytes a sealed answer gains with codec `i`.
    pub fn codec(&self, i: usize) -> Option<&Codec> {
        self.codecs.get(i)
    }
}

fn salted(salt: &[u8; 32], password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::Key;

    #[test]
    fn parses_the_documented_example() {
        let text = "# comment\n\nlaptop   password=laptop.pw key=laptop.key from=10.0.0.7,fd00::7 secrets=wifi,backup\nbuilder password=/abs/b.pw from=10.0.1.0/24 secrets=* # trailing\n";
        let e = parse(text).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, "laptop");
        assert_eq!(e[0].line, 3);
        assert_eq!(e[0].keys, vec![std::path::PathBuf::from("laptop.key")]);
        assert_eq!(e[0].from.len(), 2);
        assert_eq!(
            e[0].access,
            Access::Only(vec![b"wifi".to_vec(), b"backup".to_vec()])
        );
        assert_eq!(e[1].access, Access::All);
        assert!(e[1].keys.is_empty());
        // Rotation: password= and key= repeated on one line.
        let e = parse("nas password=a.pw password=b.pw key=a.key key=b.key secrets=*\n").unwrap();
        assert_eq!(e[0].passwords.len(), 2);
        assert_eq!(e[0].keys.len(), 2);
    }

    #[test]
    fn errors_name_the_line_and_the_fix() {
        for (text, want) in [
            ("a password=p\n", "line 1: the client has no secrets=NAMES (or secrets=* for all)"),
            ("\na secrets=x\n", "line 2: the client has no password=FILE"),
            ("a password=p secrets=x\na password=q secrets=x\n", "line 2: this client name is already defined on line 1"),
            ("a password=p from=10.0.0.1 from=10.0.0.2 secrets=x\n", "line 1: from= is given twice"),
            ("a password=p from=, secrets=x\n", "line 1: from=, names no network: list addresses or networks, or leave from= out to allow what --authorized-ips allows"),
            ("a pasword=p secrets=x\n", "line 1: word 2 has an unknown field: use password, key, from or secrets"),
            ("a password secrets=x\n", "line 1: word 2 is not FIELD=VALUE (password, key, from, secrets)"),
            ("hunter2-secret\n", "line 1: the client has no password=FILE"),
            ("s3cr3t/value\n", "line 1: the client name (first word) is not 1 to 64 letters, digits, '.', '_' or '-'"),
            ("a password=p from=10.0.0.300 secrets=x\n", "line 1: from=: invalid network \"10.0.0.300\": expected an address or CIDR like 10.0.0.0/24 or fd00::/64"),
            ("default password=p secrets=x\n", "line 1: the client name \"default\" is reserved for --password-file"),
            ("a password= secrets=x\n", "line 1: password= is empty"),
        ] {
            assert_eq!(parse(text).unwrap_err(), want, "{text:?}");
        }
        assert!(parse("a password=p secrets=x/y\n")
            .unwrap_err()
            .starts_with("line 1: secrets=: "));
    }

    fn spec(name: &str, pw: &str, codec: usize, from: &str) -> Spec {
        Spec {
            name: name.into(),
            passwords: vec![pw.into()],
            codecs: vec![codec],
            from: cidr::parse_list(from).unwrap(),
            access: Access::All,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn finds_by_password_codec_and_address() {
        let codecs = vec![
            Codec::Plain,
            Codec::Aes(Key::from_str_key("a")),
            Codec::Aes(Key::from_str_key("b")),
        ];
        let ids = Identities::new(
            [7; 32],
            codecs,
            vec![
                spec("p", "pw-p", 0, ""),
                spec("a", "pw-a", 1, "10.0.0.1"),
                spec("b", "pw-b", 2, "10.0.0.0/24"),
            ],
        )
        .unwrap();
        assert_eq!(ids.find(b"pw-a", 1, ip("10.0.0.1")), Some(1));
        assert_eq!(
            ids.find(b"pw-a", 1, ip("10.0.0.2")),
            None,
            "outside its network"
        );
        assert_eq!(
            ids.find(b"pw-a", 2, ip("10.0.0.1")),
            None,
            "another client's key"
        );
        assert_eq!(ids.find(b"pw-b", 2, ip("::ffff:10.0.0.9")), Some(2));
        assert_eq!(ids.find(b"pw-p", 0, ip("192.0.2.1")), Some(0));
        assert_eq!(ids.find(b"nope", 0, ip("10.0.0.1")), None);
        let c = ids.candidates(ip("10.0.0.1"));
        assert_eq!(&c.idx[..c.len], &[1, 2, 0], "keys first, plaintext last");
        let c = ids.candidates(ip("10.0.0.9"));
        assert_eq!(&c.idx[..c.len], &[2, 0]);
        let sealed = Key::from_str_key("b").seal(b"x").unwrap();
        assert_eq!(
            ids.open(&ids.candidates(ip("10.0.0.1")), sealed.clone())
                .unwrap(),
            (b"x".to_vec(), 2, Via::V1)
        );
        // A protocol-2 request opens as one, with the same key.
        let mut sealed2 = Vec::new();
        let nonce = Key::from_str_key("b")
            .seal_parts_into(&mut sealed2, &[b"x"], crate::wire::bound::REQUEST_AAD)
            .unwrap();
        assert_eq!(
            ids.open(&ids.candidates(ip("10.0.0.1")), sealed2).unwrap(),
            (b"x".to_vec(), 2, Via::V2(nonce))
        );
        assert!(
            ids.open(&ids.candidates(ip("10.0.1.1")), sealed)
                .map(|(_, i, _)| i)
                == Ok(0),
            "only plaintext is tried there"
        );
    }

    #[test]
    fn refuses_shared_passwords_and_too_many_keys_at_one_address() {
        let e = Identities::new(
            [0; 32],
            vec![Codec::Plain],
            vec![spec("x", "same", 0, ""), spec("y", "same", 0, "")],
        )
        .err()
        .unwrap();
        assert_eq!(
            e,
            "clients \"x\" and \"y\" have the same password: give each client its own"
        );
        let many = |n: usize, from: &dyn Fn(usize) -> String| {
            let codecs = (0..n)
                .map(|i| Codec::Aes(Key::from_str_key(&i.to_string())))
                .collect();
            let specs = (0..n)
                .map(|i| spec(&format!("c{i}"), &format!("pw{i}"), i, &from(i)))
                .collect();
            Identities::new([0; 32], codecs, specs)
        };
        // One key per host: fine however many.
        assert!(many(1000, &|i| format!("10.1.{}.{}", i / 256, i % 256)).is_ok());
        // Nine keys at one address through nested networks.
        let e = many(9, &|i| format!("10.0.0.0/{}", 24 + i)).err().unwrap();
        assert!(
            e.starts_with("more than 8 distinct keys may be used from 10.0.0.0/32"),
            "{e}"
        );
        assert!(many(8, &|i| format!("10.0.0.0/{}", 24 + i)).is_ok());
        let e = many(9, &|_| String::new()).err().unwrap();
        assert!(e.contains("from any address"), "{e}");
    }
}
