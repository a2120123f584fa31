//! The `netsecrets` binary: parse the command line, run the subcommand, map errors to exit codes.
//! Everything else lives in the library (`lib.rs` lists the modules).

use std::io::Write;
use std::path::Path;

use netsecrets::cli::{self, Command, SendArgs};
use netsecrets::client::{self, initrd};
use netsecrets::error::{Error, Result, EXIT_OK};
use netsecrets::sys::{log, output};
use netsecrets::{config, server};

// The static release binary brings its own do-nothing unwinder (see the module's comment).
#[cfg(all(panic = "abort", target_env = "musl", target_feature = "crt-static"))]
#[path = "sys/unwind.rs"]
mod unwind;

// And its own pthread_setname_np, which does not need musl's printf (see the module's comment).
#[cfg(all(target_env = "musl", target_feature = "crt-static"))]
#[path = "sys/thread_name.rs"]
mod thread_name;

fn main() {
    let env = |key: &str| std::env::var_os(key);
    let code = match cli::parse(std::env::args_os(), &env).and_then(run) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            log::line(&e.to_string());
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Help(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            Ok(())
        }
        Command::Version => {
            println!("netsecrets {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Receive(args) => {
            let server = server::Server::bind(config::server(args)?)?;
            log::line(&format!("listening on {}", server.local_addr()?));
            server.run()
        }
        Command::Send(args) => send(args),
        Command::AskPassword(args) => initrd::ask_password(args),
        Command::CopyPassword(args) => initrd::copy_password(args),
        Command::Keygen(args) => initrd::keygen(args),
    }
}

fn send(args: SendArgs) -> Result<()> {
    let perms = match &args.file_output {
        Some(_) => {
            let (uid, gid) = output::resolve_ids(
                args.owner.as_deref(),
                args.group.as_deref(),
                Path::new("/etc/passwd"),
                Path::new("/etc/group"),
            )?;
            output::Perms {
                mode: args.mode,
                uid,
                gid,
            }
        }
        None if args.owner.is_some() || args.group.is_some() => {
            return Err(Error::usage("--owner/--group need --file-output"));
        }
        None => output::Perms::mode(args.mode),
    };
    let password = config::password(args.net.password.as_ref(), true)?;
    let cfg = config::client(&args, password)?;
    let values = client::Client::new(&cfg).fetch_all(&args.names)?;
    match &args.file_output {
        Some(path) => {
            let joined = values.join(&b'\n');
            if let Some(dir) = path.parent() {
                output::ensure_dir(dir).map_err(|e| output::write_error(path, e))?;
            }
            output::write_atomic(path, &joined, perms).map_err(|e| output::write_error(path, e))?;
            if cfg.verbose {
                log::line(&format!(
                    "wrote {} secret(s) to {}",
                    values.len(),
                    path.display()
                ));
            }
            Ok(())
        }
        None => {
            let mut out = Vec::new();
            for v in &values {
                out.extend_from_slice(v);
                out.push(b'\n');
            }
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&out)
                .and_then(|_| stdout.flush())
                .map_err(|e| Error::failed("cannot write to stdout").with_io(e))
        }
    }
}
