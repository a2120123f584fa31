//! What an operator meets on the command line: every command listed (bare `netsecrets`, the
//! README's table), "did you mean" for a mistyped flag of any command, `keygen --password`
//! making a password that logs in, and `placeholder NAME` printing the template placeholder.

mod common;

use common::*;
use netsecrets::cli::{self, suggest};

fn parse_err(args: &[&str]) -> String {
    match cli::parse(
        std::iter::once("netsecrets").chain(args.iter().copied()),
        &|_| None,
    ) {
        Ok(_) => panic!("{args:?} parsed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bare_netsecrets_lists_every_command() {
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    for c in suggest::COMMANDS {
        assert!(err.contains(c), "{c} missing from {err}");
    }
    let err = stderr(&run(&["frobnicate"]));
    for c in suggest::COMMANDS {
        assert!(err.contains(c), "{c} missing from {err}");
    }
    assert!(
        stderr(&run(&["recieve"])).contains("did you mean receive?"),
        "{}",
        stderr(&run(&["recieve"]))
    );
}

#[test]
fn readme_command_table_lists_every_command() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| command |"))
        .take_while(|l| l.starts_with('|'))
        .collect();
    for c in suggest::COMMANDS {
        assert!(
            table
                .iter()
                .any(|l| l.starts_with(&format!("| `netsecrets {c}"))),
            "README's command table lacks `netsecrets {c}`"
        );
    }
}

#[test]
fn a_mistyped_flag_names_the_nearest_one() {
    let o = run(&["send", "--pasword-file", "/x"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "netsecrets: unknown flag --pasword-file: did you mean --password-file? (see --help)\n"
    );
    // Far from everything: no guess.
    assert_eq!(
        parse_err(&["send", "--frobnicate"]),
        "unknown flag --frobnicate (see --help)"
    );
}

#[test]
fn every_long_flag_of_every_command_is_suggested_when_one_letter_is_dropped() {
    let mut checked = 0;
    for c in suggest::COMMANDS {
        let known = suggest::flags_in(suggest::help_of(c).unwrap());
        for f in known.iter().filter(|f| f.starts_with("--") && f.len() > 5) {
            // Drop the fourth letter: "--password-file" -> "--pasword-file".
            let typo: String = f
                .char_indices()
                .filter(|&(i, _)| i != 4)
                .map(|(_, ch)| ch)
                .collect();
            if known.contains(&typo) {
                continue;
            }
            let e = parse_err(&[c, &typo]);
            let hint = e
                .split("did you mean ")
                .nth(1)
                .and_then(|r| r.split('?').next())
                .unwrap_or_else(|| panic!("{c} {typo}: no suggestion in {e:?}"));
            assert!(
                known.iter().any(|k| k == hint) && suggest::distance(&typo, hint) == 1,
                "{c} {typo}: suggested {hint}"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} flags checked");
}

#[test]
fn keygen_password_is_a_password_that_logs_in() {
    let d = TempDir::new("keygen-pw");
    let o = run(&["keygen", "--password"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let pw = stdout(&o);
    assert_eq!(pw.len(), 33, "{pw:?}");
    assert!(pw[..32].bytes().all(|b| b.is_ascii_hexdigit()) && pw.ends_with('\n'));
    assert_ne!(pw, stdout(&run(&["keygen", "--password"])));

    let pf = d.path("pw");
    let o = run(&["keygen", "--password", "--output", pf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(mode(&pf), 0o400);
    let kf = d.path("key");
    assert_eq!(
        run(&["keygen", "--output", kf.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let o = run(&["keygen", "--password", "--output", pf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("never overwrites a password"),
        "{}",
        stderr(&o)
    );

    // Both files, made by the binary, on both sides.
    let pf = pf.to_str().unwrap();
    let kf = kf.to_str().unwrap();
    let server = Server::start(&[
        "--password-file",
        pf,
        "--encryption-key-file",
        kf,
        "-S",
        "db=value",
    ]);
    let o = send(
        server.port,
        &[
            "--password-file",
            pf,
            "--encryption-key-file",
            kf,
            "--request_secrets",
            "db",
            "--timeout",
            "5",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "value\n");
}

#[test]
fn placeholder_prints_the_template_placeholder() {
    let o = run(&["placeholder", "db-password"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // printf 'netsecrets-placeholder:db-password' | sha256sum, as nix/modules/placeholder.nix
    // computes it (tests/nixos-eval/check.py compares with the NixOS evaluation itself).
    assert_eq!(
        stdout(&o),
        "<netsecrets:db-password:f2259a3e79a4c8606f08f94cb86c7e421eb9ea4f2cd810eebbce818e61013235>\n"
    );
    assert_eq!(
        stdout(&run(&["placeholder", "a@b+c"])),
        format!("{}\n", netsecrets::client::template::placeholder("a@b+c"))
    );
    let o = run(&["placeholder", "../x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("placeholder"), "{}", stderr(&o));
    assert_eq!(run(&["placeholder"]).status.code(), Some(2));
    assert_eq!(run(&["placeholder", "--help"]).status.code(), Some(0));
}
