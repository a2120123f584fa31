//! `nsbench`: benchmark tooling for netsecrets. Not part of the test suite.
//!
//! Subcommands (all started by `bench/run`; the orchestrator starts the others as processes):
//! - `all`   — the orchestrator: starts servers, drives them, samples /proc, prints the tables.
//! - `floor` — the floor server: accept, read one frame, answer a fixed value; no checks, no log.
//! - `load`  — C concurrent clients speaking the wire protocol (`--protocol 1|2`) for T seconds;
//!   prints one RESULT line.
//! - `hold`  — holds N slow connections open (2 header bytes, then silence), reconnecting when the
//!   server closes them; prints one RESULT line.
//! - `storm` — the boot storm (`bench/storm`, storm.rs): 1 000 clients in network namespaces.
//! - `render` — template rendering times (`bench/render`, render.rs).

#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

mod floor;
mod hold;
mod load;
mod net;
mod orch;
mod proc;
mod render;
mod storm;

use std::collections::HashMap;
use std::process::exit;

/// `--name value` flags into a map; bare words are an error.
pub struct Args {
    map: HashMap<String, String>,
}

impl Args {
    pub fn parse(raw: &[String]) -> Args {
        let mut map = HashMap::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            let Some(name) = a.strip_prefix("--") else {
                die(&format!("unexpected argument {a:?}"));
            };
            if let Some((k, v)) = name.split_once('=') {
                map.insert(k.to_string(), v.to_string());
            } else if name == "quick" || name == "help" || name == "smoke" {
                map.insert(name.to_string(), "1".to_string());
            } else {
                let v = it
                    .next()
                    .unwrap_or_else(|| die(&format!("--{name} needs a value")));
                map.insert(name.to_string(), v.clone());
            }
        }
        Args { map }
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(String::as_str)
    }

    pub fn has(&self, k: &str) -> bool {
        self.map.contains_key(k)
    }

    pub fn str(&self, k: &str, default: &str) -> String {
        self.get(k).unwrap_or(default).to_string()
    }

    pub fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        match self.get(k) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die(&format!("--{k}: bad number {v:?}"))),
        }
    }

    pub fn need(&self, k: &str) -> String {
        self.get(k)
            .unwrap_or_else(|| die(&format!("--{k} is required")))
            .to_string()
    }
}

pub fn die(msg: &str) -> ! {
    eprintln!("nsbench: {msg}");
    exit(2)
}

/// The value the servers hold for secret `name` (and the floor answers for every request).
pub fn value_for(name: &str) -> Vec<u8> {
    format!("{name}=0123456789abcdef0123456789abcdef").into_bytes()
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let Some(cmd) = argv.get(1) else {
        die("usage: nsbench all|floor|load|hold [--flags]  (normally started by bench/run)");
    };
    let args = Args::parse(&argv[2..]);
    net::raise_nofile();
    match cmd.as_str() {
        "all" => orch::run(&args),
        "floor" => floor::run(&args),
        "load" => load::run(&args),
        "hold" => hold::run(&args),
        "probe" => load::probe(&args),
        "storm" => storm::run(&args),
        "render" => render::run(&args),
        other => die(&format!("unknown subcommand {other:?}")),
    }
}
