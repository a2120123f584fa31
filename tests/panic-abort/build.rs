//! The fixture is linked as the shipped binary is (../../build.rs): without unwind tables
//! (../../link/no-eh-frame.ld), so that its panics prove that a panic still prints its message
//! and aborts without them. The control build (`--cfg fixture_real_unwinder`) keeps them: it is
//! the real unwinder to compare with.

fn main() {
    println!("cargo:rerun-if-changed=../../link/no-eh-frame.ld");
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("PROFILE") == "release"
        && !var("CARGO_ENCODED_RUSTFLAGS").contains("fixture_real_unwinder")
    {
        let script =
            std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("../../link/no-eh-frame.ld");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
