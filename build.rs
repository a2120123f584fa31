//! The static musl release binary (`cargo static`) is linked without unwind tables
//! (link/no-eh-frame.ld says why): the release profile's `panic = "abort"` and src/sys/unwind.rs,
//! compiled into the same build, are what make them unreadable anyway. Every other build
//! (tests, debug, glibc) is linked as before. That binary's relocations are also packed
//! (`-z pack-relative-relocs`, DT_RELR: a bitmap instead of 24 bytes per pointer; musl's static-pie
//! start code, rcrt1.o, applies them from musl 1.2.4 on; the toolchain's bundled musl is newer),
//! 12 KiB less, still position-independent (ASLR kept). nix/package.nix does not include this
//! file in its source, so the Nix build links as before. (Cargo's `CARGO_CFG_PANIC` does not see the
//! profile's panic strategy, hence the profile's name.)

fn main() {
    println!("cargo:rerun-if-changed=link/no-eh-frame.ld");
    println!("cargo:rerun-if-changed=build.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let static_musl = var("CARGO_CFG_TARGET_ENV") == "musl"
        && var("CARGO_CFG_TARGET_FEATURE")
            .split(',')
            .any(|f| f == "crt-static");
    if static_musl && var("PROFILE") == "release" {
        let script = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join("link/no-eh-frame.ld");
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
