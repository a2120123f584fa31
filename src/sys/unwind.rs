//! An unwinder that finds no frames, for the static release binary (`panic = "abort"`).
//!
//! With `panic = "abort"` nothing in this program ever unwinds: a panic prints its message
//! and aborts. Yet the precompiled std still calls into the unwinder from two places, and so a
//! stable static binary carries all of LLVM's libunwind:
//! - the default panic hook walks the stack with `_Unwind_Backtrace` to print a backtrace
//!   (when `RUST_BACKTRACE` is set), and what it finds is symbolised by std's DWARF reader
//!   (gimli, addr2line, miniz_oxide, rustc_demangle): about 160 KiB of code;
//! - std itself was compiled with `panic = "unwind"`, so its functions have landing pads
//!   (`_Unwind_Resume`) and a personality routine (`_Unwind_Get*`, `_Unwind_Set*`).
//!
//! Defining those symbols here means the linker never takes anything from `libunwind.a`, and
//! because this `_Unwind_Backtrace` never calls its callback, link-time optimisation drops the
//! backtrace printer behind it: the binary shrinks from about 620 KiB to about 350 KiB
//! (docs/performance.md). What changes: with `RUST_BACKTRACE=1` a panic prints an empty
//! backtrace; the message, the location and the abort are the same (tests/panic-abort proves
//! it with the same release profile). The other functions are only ever called while unwinding,
//! which cannot start: there is no `_Unwind_RaiseException` in the binary. If one is called
//! anyway, it aborts rather than guess.
//!
//! Compiled only where this is sound: release builds with `panic = "abort"` for the static musl
//! target. Test builds (`panic = "unwind"`) and glibc builds keep the real unwinder.

use std::ffi::{c_int, c_void};

/// `_Unwind_Reason_Code::_URC_END_OF_STACK`.
const URC_END_OF_STACK: c_int = 5;

/// Walks no frames: the stack is reported as ending at once.
#[no_mangle]
extern "C" fn _Unwind_Backtrace(
    _trace: Option<extern "C" fn(*mut c_void, *mut c_void) -> c_int>,
    _trace_argument: *mut c_void,
) -> c_int {
    URC_END_OF_STACK
}

/// Resuming an unwind that cannot have started.
#[no_mangle]
extern "C" fn _Unwind_Resume(_exception: *mut c_void) -> ! {
    std::process::abort()
}

// Context accessors for the personality routine and the backtrace callback: neither runs,
// because no unwind and no stack walk ever hands them a context.

#[no_mangle]
extern "C" fn _Unwind_GetIP(_context: *mut c_void) -> usize {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_GetIPInfo(_context: *mut c_void, _ip_before_insn: *mut c_int) -> usize {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_GetLanguageSpecificData(_context: *mut c_void) -> *mut c_void {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_GetRegionStart(_context: *mut c_void) -> usize {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_GetTextRelBase(_context: *mut c_void) -> usize {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_GetDataRelBase(_context: *mut c_void) -> usize {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_SetGR(_context: *mut c_void, _index: c_int, _value: usize) {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_SetIP(_context: *mut c_void, _value: usize) {
    std::process::abort()
}

// Not referenced by std 1.95, but by other std versions' backtrace and panic code. Defined
// too, so that no std version pulls libunwind in beside these definitions: that would end the
// link with "multiple definition of `_Unwind_...`", loudly, never silently.

#[no_mangle]
extern "C" fn _Unwind_FindEnclosingFunction(_pc: *mut c_void) -> *mut c_void {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_GetCFA(_context: *mut c_void) -> usize {
    std::process::abort()
}

#[no_mangle]
extern "C" fn _Unwind_DeleteException(_exception: *mut c_void) {
    std::process::abort()
}
