//! Placeholder replaced by the render benchmark.
fn main() {}
