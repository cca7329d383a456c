//! The Execution API server.

fn main() {}
