//! The `retain` command-line interface.
fn main() {}
