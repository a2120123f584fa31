//! `netsecrets render`'s flags: the template, the output file, and the secret files that fill
//! the placeholders; the output file's owner, group, mode and change actions are the same flags
//! as `send`'s (`groups.rs`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use super::args::{Command, FileArgs, RenderArgs};
use super::help::RENDER_HELP;
use super::lex::{flag, name_eq, unknown};
use crate::error::{Error, Result};
use crate::wire::protocol::SecretName;

pub(super) fn parse_render(p: &mut lexopt::Parser) -> Result<Command> {
    let mut template = None;
    let mut output = None;
    let mut secrets: Vec<(SecretName, PathBuf)> = Vec::new();
    let mut file = FileArgs::default();
    let mut verbose = false;
    while let Some(arg) = p.next()? {
        let arg = flag(arg)?;
        if file.take(&arg, p)? {
            continue;
        }
        match arg.as_str() {
            "--template" => template = Some(PathBuf::from(p.value()?)),
            "--output" => output = Some(PathBuf::from(p.value()?)),
            "--secret" => {
                let (name, path) = name_eq(p.value()?, "--secret NAME=PATH")?;
                if secrets.iter().any(|(n, _)| n.as_str() == name.as_str()) {
                    return Err(Error::usage(format!(
                        "--secret {name}=...: given twice; give each secret once"
                    )));
                }
                if path.is_empty() {
                    return Err(Error::usage(format!("--secret {name}=: no path after '='")));
                }
                secrets.push((name, PathBuf::from(OsString::from_vec(path))));
            }
            "--verbose" => verbose = true,
            "-h" | "--help" => return Ok(Command::Help(RENDER_HELP)),
            _ => return Err(unknown(&arg)),
        }
    }
    let template = template
        .ok_or_else(|| Error::usage("missing --template PATH: the file with the placeholders"))?;
    let output = output
        .ok_or_else(|| Error::usage("missing --output PATH: where the rendered file goes"))?;
    Ok(Command::Render(RenderArgs {
        template,
        output,
        secrets,
        file,
        verbose,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Mode;

    fn parse(args: &[&str]) -> Result<Command> {
        let mut v = vec!["netsecrets", "render"];
        v.extend_from_slice(args);
        super::super::parse(v, &|_| None)
    }

    #[test]
    fn flags() {
        let Ok(Command::Render(a)) = parse(&[
            "--template",
            "/nix/store/x-t",
            "--output",
            "/run/o",
            "--secret",
            "a=/var/lib/netsecrets/a",
            "--secret",
            "b=/p=q",
            "--mode",
            "0440",
            "--owner",
            "svc",
            "--restart-unit",
            "svc.service",
            "--reload-unit",
            "web.service",
        ]) else {
            panic!("not parsed as render")
        };
        assert_eq!(a.template, PathBuf::from("/nix/store/x-t"));
        assert_eq!(a.output, PathBuf::from("/run/o"));
        assert_eq!(a.secrets.len(), 2);
        assert_eq!(a.secrets[1].0, "b");
        assert_eq!(a.secrets[1].1, PathBuf::from("/p=q"));
        assert_eq!(a.file.mode, Mode(0o440));
        assert_eq!(a.file.owner.as_deref(), Some("svc"));
        assert_eq!(a.file.actions.restart, ["svc.service"]);
        assert_eq!(a.file.actions.reload, ["web.service"]);
    }

    #[test]
    fn refused() {
        for (args, want) in [
            (&["--output", "/o"][..], "--template"),
            (&["--template", "/t"][..], "--output"),
            (
                &[
                    "--template",
                    "/t",
                    "--output",
                    "/o",
                    "--secret",
                    "a=/x",
                    "--secret",
                    "a=/y",
                ][..],
                "given twice",
            ),
            (
                &["--template", "/t", "--output", "/o", "--secret", "a="][..],
                "no path",
            ),
            (
                &["--template", "/t", "--output", "/o", "--secret", "../a=/x"][..],
                "--secret",
            ),
            (
                &["--template", "/t", "--output", "/o", "--mode", "4400"][..],
                "setuid",
            ),
            (
                &["--template", "/t", "--output", "/o", "--restart-unit", "-x"][..],
                "unit",
            ),
            (
                &["--template", "/t", "--output", "/o", "--server", "x"][..],
                "unknown flag",
            ),
        ] {
            match parse(args) {
                Err(e) => assert!(e.to_string().contains(want), "{args:?}: {e}"),
                Ok(_) => panic!("{args:?} accepted"),
            }
        }
    }
}
