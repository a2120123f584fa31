//! Templates: a text (a config file generated into the Nix store) in which placeholders stand
//! for secret values, and the one pure function that puts the values in. No I/O here: `render.rs`
//! reads the files and writes the result.
//!
//! A placeholder is `<netsecrets:NAME:HASH>`: NAME a secret name (`[A-Za-z0-9._@+-]`, 1-255
//! bytes), HASH the 64 lowercase hex digits of SHA-256(`netsecrets-placeholder:` NAME). It holds
//! nothing secret (the hash is of the name), and ordinary text does not hold it by accident. The
//! NixOS module computes the same string with `builtins.hashString "sha256"` (keep
//! [`TAG`] in sync with nix/modules/templates.nix).
//!
//! Rendering is strict and single-pass:
//! - every placeholder is replaced by the exact bytes of its secret (any bytes, a secret may be
//!   used any number of times); the values are never scanned again, so a value that itself looks
//!   like a placeholder stays as it is;
//! - anything else that starts with `<netsecrets:` (a cut placeholder, a wrong hash, a secret
//!   whose value was not given) is an error naming the line, never left in the output silently.

use sha2::{Digest, Sha256};

/// What every placeholder starts with.
pub const OPEN: &[u8] = b"<netsecrets:";
/// Hashed in front of the name. Keep in sync with nix/modules/templates.nix.
pub const TAG: &str = "netsecrets-placeholder:";
/// Hex digits of the hash.
const HASH_LEN: usize = 64;
/// Longest secret name (as the wire protocol's).
const MAX_NAME: usize = crate::wire::protocol::MAX_NAME;

/// The placeholder of secret `name`: `<netsecrets:NAME:HASH>`.
pub fn placeholder(name: &str) -> String {
    format!("<netsecrets:{name}:{}>", hash_hex(name))
}

fn hash_hex(name: &str) -> String {
    String::from_utf8_lossy(&hash_digits(name)).into_owned()
}

/// The 64 lowercase hex digits of a placeholder's hash, without an allocation (checked once
/// per placeholder).
fn hash_digits(name: &str) -> [u8; HASH_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut h = Sha256::new();
    h.update(TAG.as_bytes());
    h.update(name.as_bytes());
    let mut out = [0u8; HASH_LEN];
    for (pair, b) in out.chunks_exact_mut(2).zip(h.finalize()) {
        pair.copy_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    }
    out
}

/// One placeholder found in a template: its byte range and the secret it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'t> {
    pub start: usize,
    pub end: usize,
    pub name: &'t str,
}

/// Why a template cannot be rendered. Holds names and line numbers only, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bad {
    /// `<netsecrets:` that is not followed by `NAME:HASH>`.
    Malformed { line: usize },
    /// A well-formed placeholder whose hash is not the one of its name.
    WrongHash { line: usize, name: String },
    /// A placeholder of a secret whose value was not given.
    Unknown { line: usize, name: String },
}

impl std::fmt::Display for Bad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bad::Malformed { line } => write!(
                f,
                "line {line}: \"<netsecrets:\" that is not a whole placeholder <netsecrets:NAME:HASH> (use config.netsecrets.placeholder.NAME unchanged)"
            ),
            Bad::WrongHash { line, name } => write!(
                f,
                "line {line}: the placeholder of {name:?} has a wrong hash (not made by config.netsecrets.placeholder.{name})"
            ),
            Bad::Unknown { line, name } => write!(
                f,
                "line {line}: placeholder of secret {name:?}, whose value was not given (--secret {name}=PATH; is it in netsecrets.client.request_secrets?)"
            ),
        }
    }
}

/// The line (from 1) of byte `offset`. Counted from the start, so only for an error: rendering
/// stops at the first one, which keeps the whole scan linear in the template's length.
fn line_of(text: &[u8], offset: usize) -> usize {
    1 + text
        .get(..offset)
        .unwrap_or(text)
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'-')
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut at = from;
    loop {
        let p = at + hay.get(at..)?.iter().position(|&b| b == first)?;
        if hay.get(p..)?.starts_with(needle) {
            return Some(p);
        }
        at = p + 1;
    }
}

/// The placeholder starting at `start` (where [`OPEN`] is): its end, or why it is not one.
fn token_at(text: &[u8], start: usize) -> Result<Token<'_>, Bad> {
    let malformed = || Bad::Malformed {
        line: line_of(text, start),
    };
    let rest = text.get(start + OPEN.len()..).ok_or_else(malformed)?;
    // A name is at most MAX_NAME bytes: looking one further is enough to refuse a longer one.
    let name_len = rest
        .iter()
        .take(MAX_NAME + 1)
        .take_while(|&&b| name_byte(b))
        .count();
    let name = rest.get(..name_len).ok_or_else(malformed)?;
    if name_len == 0 || name_len > MAX_NAME || name == b"." || name == b".." {
        return Err(malformed());
    }
    let after = rest.get(name_len..).unwrap_or_default();
    let hash = after.get(1..1 + HASH_LEN).ok_or_else(malformed)?;
    let well_formed = after.first() == Some(&b':')
        && hash.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && after.get(1 + HASH_LEN) == Some(&b'>');
    if !well_formed {
        return Err(malformed());
    }
    // Only ASCII name bytes were taken: this cannot fail, but a failure is one more error.
    let name = std::str::from_utf8(name).map_err(|_| malformed())?;
    if hash != hash_digits(name) {
        return Err(Bad::WrongHash {
            line: line_of(text, start),
            name: name.to_owned(),
        });
    }
    Ok(Token {
        start,
        end: start + OPEN.len() + name_len + 1 + HASH_LEN + 1,
        name,
    })
}

/// Every placeholder of `text`, in order; the first thing that starts like one but is not one
/// is an error.
pub fn scan(text: &[u8]) -> Result<Vec<Token<'_>>, Bad> {
    let mut tokens = Vec::new();
    let mut at = 0;
    while let Some(start) = find(text, OPEN, at) {
        let t = token_at(text, start)?;
        at = t.end;
        tokens.push(t);
    }
    Ok(tokens)
}

/// The secret names `text` uses, each once, in order of first use (sorted, not searched per
/// placeholder: a template may hold hundreds of thousands).
pub fn names(text: &[u8]) -> Result<Vec<&str>, Bad> {
    let tokens = scan(text)?;
    let mut all: Vec<(&str, usize)> = tokens.iter().map(|t| t.name).zip(0..).collect();
    // By name, then position: the first entry of each name is its first use.
    heap_sort(&mut all);
    let mut first = vec![false; tokens.len()];
    let mut prev = None;
    for (name, i) in all {
        if prev != Some(name) {
            if let Some(f) = first.get_mut(i) {
                *f = true;
            }
            prev = Some(name);
        }
    }
    Ok(tokens
        .iter()
        .zip(first)
        .filter(|(_, f)| *f)
        .map(|(t, _)| t.name)
        .collect())
}

/// Sorts (name, index) pairs in place, in O(n log n) without allocating. Hand-written on
/// purpose: the standard library's generic sorts each add several KiB of code to the binary,
/// and this one type is all that is sorted here.
fn heap_sort(v: &mut [(&str, usize)]) {
    // Moves v[root] down until it is not less than its children, within v[..end].
    fn sift(v: &mut [(&str, usize)], mut root: usize, end: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && v.get(child) < v.get(child + 1) {
                child += 1;
            }
            if v.get(root) >= v.get(child) {
                return;
            }
            // root < child < end <= v.len(): both in bounds.
            v.swap(root, child);
            root = child;
        }
    }
    let n = v.len();
    for root in (0..n / 2).rev() {
        sift(v, root, n);
    }
    for end in (1..n).rev() {
        // 0 < end < n: both in bounds.
        v.swap(0, end);
        sift(v, 0, end);
    }
}

/// `text` with every placeholder replaced by its value from `values` (name, exact bytes), in
/// one pass: the values are copied, never scanned.
///
/// Linear in the template's length (plus a binary search per placeholder): the line of an
/// error is counted only for that error.
pub fn render(text: &[u8], values: &[(&str, &[u8])]) -> Result<Vec<u8>, Bad> {
    let tokens = scan(text)?;
    // The first value given for a name wins, as a search in order would find it.
    let mut sorted: Vec<(&str, usize)> = values.iter().map(|(n, _)| *n).zip(0..).collect();
    heap_sort(&mut sorted);
    sorted.dedup_by(|later, first| later.0 == first.0);
    let mut out = Vec::with_capacity(text.len());
    let mut copied = 0;
    for t in tokens {
        let value = sorted
            .binary_search_by(|(n, _)| (*n).cmp(t.name))
            .ok()
            .and_then(|i| sorted.get(i))
            .and_then(|&(_, i)| values.get(i))
            .map(|(_, v)| *v)
            .ok_or_else(|| Bad::Unknown {
                line: line_of(text, t.start),
                name: t.name.to_owned(),
            })?;
        out.extend_from_slice(text.get(copied..t.start).unwrap_or_default());
        out.extend_from_slice(value);
        copied = t.end;
    }
    out.extend_from_slice(text.get(copied..).unwrap_or_default());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_known_answer() {
        // printf 'netsecrets-placeholder:db-password' | sha256sum (coreutils), the same
        // formula the NixOS module evaluates with builtins.hashString "sha256".
        assert_eq!(
            placeholder("db-password"),
            "<netsecrets:db-password:f2259a3e79a4c8606f08f94cb86c7e421eb9ea4f2cd810eebbce818e61013235>"
        );
        assert_ne!(placeholder("a"), placeholder("b"));
    }

    #[test]
    fn several_placeholders_and_a_secret_used_twice() {
        let t = format!(
            "user = {}\npass = {}\nagain = {}\n",
            placeholder("user"),
            placeholder("pw"),
            placeholder("pw")
        );
        let out = render(
            t.as_bytes(),
            &[("pw", b"s3cret".as_slice()), ("user", b"alice")],
        )
        .unwrap();
        assert_eq!(out, b"user = alice\npass = s3cret\nagain = s3cret\n");
        assert_eq!(names(t.as_bytes()).unwrap(), ["user", "pw"]);
    }

    #[test]
    fn binary_values_and_binary_template_text() {
        let mut t = b"\x00\xff head ".to_vec();
        t.extend_from_slice(placeholder("k").as_bytes());
        t.extend_from_slice(b"\xfe tail");
        let v: Vec<u8> = (0..=255u8).collect();
        let out = render(&t, &[("k", &v)]).unwrap();
        let mut want = b"\x00\xff head ".to_vec();
        want.extend_from_slice(&v);
        want.extend_from_slice(b"\xfe tail");
        assert_eq!(out, want);
        // An empty value too.
        assert_eq!(
            render(&t, &[("k", b"")]).unwrap(),
            b"\x00\xff head \xfe tail"
        );
    }

    #[test]
    fn a_value_that_looks_like_a_placeholder_is_not_expanded() {
        let t = format!("{}|{}", placeholder("a"), placeholder("b"));
        let a = placeholder("b");
        let out = render(t.as_bytes(), &[("a", a.as_bytes()), ("b", b"B")]).unwrap();
        assert_eq!(out, format!("{}|B", placeholder("b")).as_bytes());
        // Even a value that is a broken placeholder is copied as it is.
        let out = render(t.as_bytes(), &[("a", b"<netsecrets:x"), ("b", b"B")]).unwrap();
        assert_eq!(out, b"<netsecrets:x|B");
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        for t in [
            &b""[..],
            b"plain",
            b"<netsecrets",
            b"netsecrets:x:y>",
            b"<netsecret:a:b>",
        ] {
            assert_eq!(render(t, &[]).unwrap(), t);
        }
    }

    #[test]
    fn unknown_secret_is_an_error_naming_line_and_name() {
        let t = format!("a\nb = {}\n", placeholder("other"));
        let e = render(t.as_bytes(), &[("db", b"x")]).unwrap_err();
        assert_eq!(
            e,
            Bad::Unknown {
                line: 2,
                name: "other".into()
            }
        );
        assert!(e.to_string().contains("\"other\""), "{e}");
    }

    #[test]
    fn wrong_hash_and_cut_placeholders_are_errors() {
        let good = placeholder("db");
        let wrong = good.replace(&hash_hex("db"), &hash_hex("other"));
        assert_eq!(
            render(wrong.as_bytes(), &[("db", b"x")]).unwrap_err(),
            Bad::WrongHash {
                line: 1,
                name: "db".into()
            }
        );
        let upper = good.replace(&hash_hex("db"), &hash_hex("db").to_uppercase());
        let cases = [
            good[..good.len() - 1].to_string(),       // no '>'
            good[..good.len() - 10].to_string(),      // hash cut
            format!("{}x>", &good[..good.len() - 1]), // one more hex digit... not hex
            "<netsecrets:".to_string(),
            "<netsecrets::abc>".to_string(),
            "<netsecrets:..:abc>".to_string(),
            "<netsecrets:a b:c>".to_string(),
            upper,
            format!("<netsecrets:{}:{}>", "n".repeat(256), hash_hex("x")),
        ];
        for c in cases {
            let t = format!("x\ny\n{c}");
            assert_eq!(
                render(t.as_bytes(), &[("db", b"x")]).unwrap_err(),
                Bad::Malformed { line: 3 },
                "{c}"
            );
        }
    }

    #[test]
    fn adjacent_and_edge_positions() {
        let t = format!("{}{}", placeholder("a"), placeholder("a"));
        assert_eq!(render(t.as_bytes(), &[("a", b"1")]).unwrap(), b"11");
        let n = "n".repeat(255);
        let t = placeholder(&n);
        assert_eq!(render(t.as_bytes(), &[(&n, b"v")]).unwrap(), b"v");
    }

    /// The line numbers of errors, now counted only when one is found, still name the right
    /// line after many placeholders on earlier lines (and on the same line), for each error.
    #[test]
    fn error_lines_are_right_after_many_placeholders() {
        let mut t = String::new();
        for i in 0..3000 {
            // Lines 1..=3000: two placeholders each, some lines empty in between.
            t.push_str(&format!(
                "{} = {}\n",
                placeholder("a"),
                placeholder(&format!("n{}", i % 7))
            ));
        }
        t.push_str("\n\n"); // lines 3001 and 3002
        let values: Vec<(String, Vec<u8>)> =
            (0..7).map(|i| (format!("n{i}"), vec![b'v'; i])).collect();
        let mut refs: Vec<(&str, &[u8])> = values
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        refs.push(("a", b"A"));
        let ok = render(t.as_bytes(), &refs).unwrap();
        assert_eq!(ok.iter().filter(|&&b| b == b'\n').count(), 3002);
        assert_eq!(
            names(t.as_bytes()).unwrap(),
            ["a", "n0", "n1", "n2", "n3", "n4", "n5", "n6"]
        );
        let wrong = placeholder("z").replace(&hash_hex("z"), &hash_hex("y"));
        let cases = [
            (
                format!("x {} {}", placeholder("a"), placeholder("gone")),
                Bad::Unknown {
                    line: 3003,
                    name: "gone".into(),
                },
            ),
            (
                format!("{} {wrong}", placeholder("a")),
                Bad::WrongHash {
                    line: 3003,
                    name: "z".into(),
                },
            ),
            (
                format!("{}\n\n<netsecrets:cut", placeholder("a")),
                Bad::Malformed { line: 3005 },
            ),
        ];
        for (tail, want) in cases {
            let text = format!("{t}{tail}\n{}", placeholder("a"));
            assert_eq!(render(text.as_bytes(), &refs).unwrap_err(), want, "{tail}");
        }
        // The first value given for a name is the one used, as before.
        let p = placeholder("a");
        assert_eq!(
            render(p.as_bytes(), &[("a", b"1"), ("a", b"2")]).unwrap(),
            b"1"
        );
    }

    #[test]
    fn heap_sort_sorts() {
        for n in [0usize, 1, 2, 3, 7, 64, 1000] {
            let names: Vec<String> = (0..n).map(|i| format!("n{}", (i * 7919) % 13)).collect();
            let mut v: Vec<(&str, usize)> =
                names.iter().map(String::as_str).zip((0..n).rev()).collect();
            let mut want = v.clone();
            want.sort();
            heap_sort(&mut v);
            assert_eq!(v, want, "{n}");
        }
    }

    /// Cheap fuzzing: every prefix and every one-byte change of a template either renders or
    /// errors, never panics; a rendered result never holds a placeholder of the template text
    /// (only values could bring one).
    #[test]
    fn mutations_never_panic() {
        let t = format!("k={} {}\n", placeholder("a"), placeholder("bb"));
        let tb = t.as_bytes();
        for cut in 0..=tb.len() {
            let _ = render(&tb[..cut], &[("a", b"1"), ("bb", b"2")]);
        }
        for i in 0..tb.len() {
            for b in [0u8, b'<', b':', b'>', b'a', 0xff] {
                let mut m = tb.to_vec();
                m[i] = b;
                if let Ok(out) = render(&m, &[("a", b"1"), ("bb", b"2")]) {
                    assert!(find(&out, OPEN, 0).is_none());
                }
            }
        }
    }
}
