//! The `netsecrets` binary: parse the command line, run the subcommand, map errors to exit codes.
//! Everything else lives in the library (`lib.rs` lists the modules).

// Unsafe code is held to a rule the compiler checks: every unsafe operation sits in its own
// `unsafe` block (also inside an `unsafe fn`), and every block says why it is sound.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io::Write;

use netsecrets::cli::{self, Command};
use netsecrets::client::{self, initrd};
use netsecrets::error::{Result, EXIT_OK};
use netsecrets::server;
use netsecrets::sys::{keygen, log};

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
        Command::Receive(args) => server::receive(args),
        Command::Send(args) => client::send(args),
        Command::Credentials(args) => client::credentials::credentials(args),
        Command::AskPassword(args) => initrd::ask_password(args),
        Command::CopyPassword(args) => initrd::copy_password(args),
        Command::Keygen(args) => keygen::keygen(args.output.as_deref(), args.password),
        Command::Render(args) => client::render(args),
        Command::Placeholder(name) => {
            println!("{}", client::template::placeholder(name.as_str()));
            Ok(())
        }
    }
}
