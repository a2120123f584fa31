//! Panics on purpose in the way the first argument names; see tests/panic-abort/run.

use std::io::{Read, Write};

// Exactly the module the netsecrets binary compiles in, under the same condition; the
// control build (--cfg fixture_real_unwinder) leaves it out and links the real libunwind.
#[cfg(all(
    panic = "abort",
    target_env = "musl",
    target_feature = "crt-static",
    not(fixture_real_unwinder)
))]
#[path = "../../../src/sys/unwind.rs"]
mod unwind;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let how = args.get(1).map(String::as_str).unwrap_or("none");
    // Use what netsecrets uses from std (threads, sockets, files), so that the same parts of
    // std are linked in as in the real binary.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0u8; 16];
            let n = conn.read(&mut buf).unwrap_or(0);
            let _ = conn.write_all(&buf[..n]);
        }
    });
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(b"ping").unwrap();
    let mut echo = [0u8; 4];
    conn.read_exact(&mut echo).unwrap();
    server.join().unwrap();
    match how {
        "none" => println!("no panic: {}", String::from_utf8_lossy(&echo)),
        "main" => panic!("deliberate panic in main"),
        "thread" => {
            let t = std::thread::spawn(|| panic!("deliberate panic in a thread"));
            let _ = t.join();
            println!("still running after the thread panicked");
        }
        "index" => {
            // An out-of-bounds index the optimiser cannot see through.
            println!("{}", echo[args.len() + 10]);
        }
        "unwrap" => {
            let r: Result<u8, String> = Err(format!("deliberate error {}", args.len()));
            println!("{}", r.unwrap());
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
}
