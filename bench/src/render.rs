//! `nsbench render` (`bench/render`): how long `netsecrets render` takes as templates grow.
//!
//! Templates of `key<i> = <placeholder>` lines, one placeholder per line, over 16 secrets
//! (values of 32 bytes). Measured:
//! - the whole `netsecrets render` process (read the template and the 16 secret files, render,
//!   write the output atomically) with 2 000 to 16 000 placeholders and with the largest
//!   template it accepts (16 MiB, as many placeholders as fit: a placeholder is at least 79
//!   bytes, so about 200 000);
//! - the library's pure `template::render` with 1 000 000 placeholders (about 95 MB of text: no
//!   16 MiB template can hold that many, so this is the function alone, in this process).
//!
//! `--candidate BIN` times another build (e.g. the previous commit's) beside it on the same
//! templates, up to `--candidate-max` placeholders (default 16 000: the old quadratic code
//! needs seconds there and hours at 200 000). Prints a Markdown table.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use netsecrets::client::template;

use crate::{die, Args};

const NAMES: usize = 16;
const MAX_TEMPLATE: usize = 16 << 20;

fn name(i: usize) -> String {
    format!("secret-{}", i % NAMES)
}

/// A template of `n` placeholder lines; with `fill`, as many lines as fit in `fill` bytes.
fn template_text(n: usize, fill: Option<usize>) -> (Vec<u8>, usize) {
    let ph: Vec<String> = (0..NAMES)
        .map(|i| template::placeholder(&name(i)))
        .collect();
    let mut t = Vec::new();
    let mut count = 0;
    loop {
        if fill.is_none() && count == n {
            break;
        }
        let line = format!("key{count} = {}\n", ph[count % NAMES]);
        if let Some(max) = fill {
            if t.len() + line.len() > max {
                break;
            }
        }
        t.extend_from_slice(line.as_bytes());
        count += 1;
    }
    (t, count)
}

fn value(i: usize) -> Vec<u8> {
    format!("value-of-secret-{i:02}-0123456789ab").into_bytes()
}

/// Seconds of one `netsecrets render` run (median of `reps`), or the failure.
fn run_cli(bin: &Path, dir: &Path, tpl: &Path, reps: usize) -> Result<f64, String> {
    let mut times = Vec::new();
    for _ in 0..reps {
        let out = dir.join("rendered");
        let _ = fs::remove_file(&out);
        let mut c = Command::new(bin);
        c.arg("render")
            .arg("--template")
            .arg(tpl)
            .arg("--output")
            .arg(&out);
        for i in 0..NAMES {
            c.arg("--secret").arg(format!(
                "{}={}",
                name(i),
                dir.join(format!("v{i}")).display()
            ));
        }
        let t = Instant::now();
        let o = c.output().map_err(|e| e.to_string())?;
        let took = t.elapsed().as_secs_f64();
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
        }
        times.push(took);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

pub fn run(args: &Args) {
    let bin = PathBuf::from(args.need("netsecrets"));
    let cand = args.get("candidate").map(PathBuf::from);
    let cand_max: usize = args.num("candidate-max", 16_000);
    let dir = PathBuf::from(args.need("dir"));
    fs::create_dir_all(&dir).unwrap_or_else(|e| die(&format!("{}: {e}", dir.display())));
    for i in 0..NAMES {
        fs::write(dir.join(format!("v{i}")), value(i)).unwrap_or_else(|e| die(&e.to_string()));
    }
    let mut md = String::from(
        "| template | placeholders | bytes | `netsecrets render`, whole process (s) | candidate (s) |\n|---|---:|---:|---:|---:|\n",
    );
    let cases: Vec<(String, usize, Option<usize>)> = [2_000, 4_000, 8_000, 16_000]
        .iter()
        .map(|&n| (format!("{n} placeholders"), n, None))
        .chain(std::iter::once((
            "16 MiB, the largest accepted".to_string(),
            0,
            Some(MAX_TEMPLATE),
        )))
        .collect();
    for (label, n, fill) in cases {
        let (text, count) = template_text(n, fill);
        let tpl = dir.join("template");
        fs::write(&tpl, &text).unwrap_or_else(|e| die(&e.to_string()));
        let new = run_cli(&bin, &dir, &tpl, 3);
        let show = |r: Result<f64, String>| match r {
            Ok(s) => format!("{s:.3}"),
            Err(e) => format!("failed: {e}"),
        };
        let old = match &cand {
            Some(c) if count <= cand_max => show(run_cli(c, &dir, &tpl, 1)),
            Some(_) => "not run (quadratic: too long)".into(),
            None => "-".into(),
        };
        let line = format!(
            "| {label} | {count} | {} | {} | {old} |",
            text.len(),
            show(new)
        );
        eprintln!("{line}");
        md.push_str(&line);
        md.push('\n');
    }
    // The pure function with 1 000 000 placeholders (no file can hold them: see above).
    let (text, count) = template_text(1_000_000, None);
    let values: Vec<(String, Vec<u8>)> = (0..NAMES).map(|i| (name(i), value(i))).collect();
    let refs: Vec<(&str, &[u8])> = values
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let t = Instant::now();
    let out = template::render(&text, &refs).unwrap_or_else(|e| die(&e.to_string()));
    let took: Duration = t.elapsed();
    if out.windows(12).any(|w| w == template::OPEN) {
        die("a placeholder was left in the output");
    }
    let line = format!(
        "| `template::render` alone (library, optimised build), 1 000 000 placeholders | {count} | {} | {:.3} | |",
        text.len(),
        took.as_secs_f64()
    );
    eprintln!("{line}");
    md.push_str(&line);
    md.push('\n');
    print!("{md}");
    let _ = fs::remove_dir_all(&dir);
}
