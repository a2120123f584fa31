//! Typo help for the command line: the list of commands, "did you mean ...?" for an unknown
//! command or flag (the nearest known one by edit distance), and `netsecrets placeholder NAME`.
//!
//! The known flags of a subcommand are read from its `--help` text (`help.rs`), so a flag added
//! there is suggested without a second list to keep in sync.

use super::args::Command;
use super::help::{
    ASK_HELP, COPY_HELP, CREDENTIALS_HELP, KEYGEN_HELP, PLACEHOLDER_HELP, RECEIVE_HELP,
    RENDER_HELP, SEND_HELP,
};
use super::lex::{flag, unknown};
use crate::error::{Error, Result};
use crate::wire::protocol::SecretName;

/// Every command, in the order `netsecrets --help` lists them.
pub const COMMANDS: &[&str] = &[
    "receive",
    "send",
    "credentials",
    "ask-password",
    "copy-password",
    "keygen",
    "render",
    "placeholder",
];

/// "receive, send, ... or placeholder".
pub fn command_list() -> String {
    match COMMANDS.split_last() {
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The `--help` text of a command (whose flags are the known ones).
pub fn help_of(cmd: &str) -> Option<&'static str> {
    Some(match cmd {
        "receive" => RECEIVE_HELP,
        "send" => SEND_HELP,
        "credentials" => CREDENTIALS_HELP,
        "ask-password" => ASK_HELP,
        "copy-password" => COPY_HELP,
        "keygen" => KEYGEN_HELP,
        "render" => RENDER_HELP,
        "placeholder" => PLACEHOLDER_HELP,
        _ => return None,
    })
}

/// The flags a help text names: words starting with `-`, trailing punctuation cut, and
/// `--password[-file]` read as both `--password` and `--password-file`.
pub fn flags_in(help: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in help.split(|c: char| c.is_whitespace() || c == ',' || c == '|' || c == '`') {
        if !word.starts_with('-') || word.len() < 2 {
            continue;
        }
        let word = word.trim_end_matches(|c: char| !(c.is_ascii_alphanumeric() || c == ']'));
        let (base, tail) = match word.split_once('[') {
            Some((b, t)) => (b, t.trim_end_matches(']')),
            None => (word, ""),
        };
        let mut add = |f: String| {
            let ok = f.len() >= 2
                && f.bytes()
                    .skip(1)
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if ok && !out.contains(&f) {
                out.push(f);
            }
        };
        add(base.to_string());
        if tail.starts_with('-') {
            add(format!("{base}{tail}"));
        }
    }
    out
}

/// Levenshtein distance between two words, by bytes (one row of the table at a time; no
/// indexing: each cell comes from the previous row's pair of cells above it).
pub fn distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.as_bytes().iter().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        let mut left = i + 1;
        for (&cb, above) in b.iter().zip(prev.windows(2)) {
            let &[diag, up] = above else { break };
            left = (diag + usize::from(ca != cb)).min(up + 1).min(left + 1);
            cur.push(left);
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

/// The known word nearest to `word`, if it is near enough to be a typo: at most one edit in
/// four characters (two for short words).
pub fn nearest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.len().max(8)) / 4;
    known
        .into_iter()
        .map(|k| (distance(word, k), k))
        .filter(|&(d, _)| d >= 1 && d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// An "unknown flag X (see --help)" error of `cmd` gets "did you mean Y?" when a known flag is
/// near; any other error is returned as it was.
pub fn amend(err: Error, cmd: &str) -> Error {
    let text = err.to_string();
    let Some(rest) = text.strip_prefix("unknown flag ") else {
        return err;
    };
    let Some(bad) = rest.strip_suffix(" (see --help)") else {
        return err;
    };
    let Some(help) = help_of(cmd) else {
        return err;
    };
    let known = flags_in(help);
    match nearest(bad, known.iter().map(String::as_str)) {
        Some(best) => Error::usage(format!(
            "unknown flag {bad}: did you mean {best}? (see --help)"
        )),
        None => err,
    }
}

/// The error for an unknown command, with the nearest one when it looks like a typo.
pub fn unknown_command(cmd: &str) -> Error {
    let hint = match nearest(cmd, COMMANDS.iter().copied()) {
        Some(best) => format!("did you mean {best}? "),
        None => String::new(),
    };
    Error::usage(format!(
        "unknown command {cmd:?}: {hint}use {}",
        command_list()
    ))
}

/// `netsecrets placeholder NAME`: the placeholder a template holds for secret NAME.
pub fn parse_placeholder(p: &mut lexopt::Parser) -> Result<Command> {
    let mut name = None;
    while let Some(arg) = p.next()? {
        match arg {
            lexopt::Arg::Value(v) if name.is_none() => {
                let v = v
                    .into_string()
                    .map_err(|_| Error::usage("placeholder: the name is not valid UTF-8"))?;
                let n = SecretName::try_from(v)
                    .map_err(|e| Error::usage(format!("placeholder: {e}")))?;
                name = Some(n);
            }
            other => {
                let f = flag(other)?;
                if f == "-h" || f == "--help" {
                    return Ok(Command::Help(PLACEHOLDER_HELP));
                }
                return Err(unknown(&f));
            }
        }
    }
    name.map(Command::Placeholder).ok_or_else(|| {
        Error::usage(
            "placeholder: give the secret's name, like `netsecrets placeholder db-password`",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("--pasword-file", "--password-file"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("same", "same"), 0);
    }

    #[test]
    fn flags_are_read_from_the_help_texts() {
        let send = flags_in(SEND_HELP);
        for f in [
            "--password-file",
            "--request_secrets",
            "--request-secrets",
            "--file-output",
            "-h",
            "--help",
        ] {
            assert!(send.iter().any(|x| x == f), "{f} in {send:?}");
        }
        let creds = flags_in(CREDENTIALS_HELP);
        for f in [
            "--password",
            "--password-file",
            "--encryption-key-file",
            "--allow",
        ] {
            assert!(creds.iter().any(|x| x == f), "{f} in {creds:?}");
        }
        // No value placeholders or prose.
        assert!(send.iter().all(|f| f.starts_with('-')));
    }

    #[test]
    fn every_command_has_a_help_text_that_names_it() {
        for c in COMMANDS {
            let help = help_of(c).unwrap();
            assert!(help.contains(&format!("netsecrets {c}")), "{c}");
            assert!(
                super::super::help::MAIN_HELP.contains(&format!("  {c} ")),
                "{c} in MAIN_HELP"
            );
        }
    }

    #[test]
    fn nearest_only_for_typos() {
        let known = ["--password-file", "--password", "--port"];
        assert_eq!(nearest("--pasword-file", known), Some("--password-file"));
        assert_eq!(nearest("--passwordfile", known), Some("--password-file"));
        assert_eq!(nearest("--frobnicate", known), None);
        assert_eq!(
            nearest("--port", known),
            None,
            "an exact match is not a typo"
        );
        assert_eq!(
            nearest("recieve", COMMANDS.iter().copied()),
            Some("receive")
        );
    }
}
