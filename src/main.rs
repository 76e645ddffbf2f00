//! The `portico` binary: parse the command line and run it.
//!
//! Its allocator is mimalloc: translation allocates and frees many small
//! objects, and glibc's malloc took about a third of the operator's CPU at
//! scale (ARCHITECTURE.md has the measurement).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    portico::cli::run()
}
