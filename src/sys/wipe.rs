//! Clearing memory that held a password or a secret once it is no longer needed, so that it
//! does not linger in freed heap pages (a core dump, a later bug reading uninitialised memory).

/// Overwrites `buf` with zeros with volatile writes the compiler may not drop as dead stores.
pub fn wipe(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // SAFETY: `b` is a valid, aligned, exclusive reference to one byte.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// A byte buffer wiped when dropped, on every path out of its scope (`?` included).
pub struct Wiped(pub Vec<u8>);

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn wipes_every_byte() {
        let mut v = b"hunter2".to_vec();
        super::wipe(&mut v);
        assert_eq!(v, [0; 7]);
    }
}
