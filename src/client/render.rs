//! `netsecrets render`: read a template (placeholders only, e.g. from the Nix store), read the
//! values of the secrets it uses from the files `send` wrote, put them in (`template.rs`), and
//! write the result the way every secret file is written: atomically, with its owner, group and
//! mode from the start, and only when it changed (`sys/output.rs`); then the change actions
//! (`sys/systemctl.rs`). Any error leaves the old rendered file as it was.

use crate::cli::RenderArgs;
use crate::client::template;
use crate::error::{Error, Result};
use crate::sys::input::read_file;
use crate::sys::log;
use crate::sys::output;

/// Largest template, and largest secret value read (the server's `--secret-file` bound).
const MAX_TEMPLATE: usize = 16 << 20;
const MAX_VALUE: usize = 16 << 20;

pub fn render(args: RenderArgs) -> Result<()> {
    let out = args.output.display();
    let keep = format!("{out} is left as it was");
    let perms = output::file_perms(
        args.file.owner.as_deref(),
        args.file.group.as_deref(),
        args.file.mode.0,
        "the rendered file",
    )?;
    let label = format!("--template {}", args.template.display());
    let text = read_file(&args.template, MAX_TEMPLATE, &label, &|e| {
        Error::config(format!("{label}: {e}"))
    })?;
    let bad = |e: template::Bad| Error::config(format!("{label}: {e}; {keep}"));
    let names = template::names(&text).map_err(bad)?;

    // Only the secrets the template uses are read. One that is not given is left out here:
    // `template::render` then names it and its line.
    let mut values: Vec<(&str, Vec<u8>)> = Vec::with_capacity(names.len());
    for name in names {
        let Some((_, path)) = args.secrets.iter().find(|(n, _)| n.as_str() == name) else {
            continue;
        };
        let what = format!("--secret {name}={}", path.display());
        let value = read_file(path, MAX_VALUE, &what, &|e| {
            Error::failed(format!(
                "{what}: cannot read the secret (was it fetched?); {keep}"
            ))
            .with_io(e)
        })?;
        values.push((name, value));
    }
    let refs: Vec<(&str, &[u8])> = values.iter().map(|(n, v)| (*n, v.as_slice())).collect();
    let rendered = template::render(&text, &refs).map_err(bad)?;

    let saved = output::save_if_changed(&args.output, &rendered, perms)?;
    if args.verbose || saved.written() {
        log::line(&format!(
            "{out}: {} from {} ({} secret(s))",
            if saved.written() {
                "rendered"
            } else {
                "unchanged"
            },
            args.template.display(),
            refs.len()
        ));
    }
    args.file.actions.after(saved, &out.to_string());
    Ok(())
}
