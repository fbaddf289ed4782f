//! The omnidm binary (placeholder until the CLI lands).
fn main() {}
