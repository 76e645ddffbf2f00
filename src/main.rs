//! The `portico` binary: parse the command line and run it.
//!
//! Its allocator is mimalloc: translation allocates and frees many small
//! objects, and glibc's malloc took about a third of the operator's CPU at
//! scale (ARCHITECTURE.md has the measurement). mimalloc is told to return
//! freed pages to the system at once: by default it waits a second and then
//! returns them only when the thread that freed them allocates again, and
//! the operator's tokio threads go idle between changes holding them (at
//! 5,000 routes: 162 MiB resident instead of 93 MiB).

use std::ffi::{c_int, c_long};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the `mi_option_t` of mimalloc v3, the version
/// `libmimalloc-sys` (pinned in Cargo.lock) builds by default: how many
/// milliseconds freed memory waits before it is returned (default 1,000).
const MI_OPTION_PURGE_DELAY: c_int = 15;

unsafe extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    fn mi_option_get(option: c_int) -> c_long;
}

fn main() -> std::process::ExitCode {
    // SAFETY: both take and return plain integers; mimalloc reads its options
    // at any time and allows them to be set at any time.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        debug_assert_eq!(mi_option_get(MI_OPTION_PURGE_DELAY), 0);
    }
    portico::cli::run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_mimallocs_purge_delay() {
        // The purge delay defaults to 1,000 ms, no option next to it does:
        // a mimalloc whose options moved fails here.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads an integer option.
            assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 1000);
        }
    }
}
