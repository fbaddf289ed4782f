//! Fuzz target: the TNDS reader must never panic, and whatever it accepts must
//! write out to text that reads back to the same bytes (the writer is stable).
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnidm_tree::MgmtTree;

fuzz_target!(|data: &[u8]| {
    let Ok(read) = MgmtTree::read(data) else {
        return;
    };
    let _ = read.tree.flatten().count();
    let text = read.tree.write();
    match MgmtTree::read(text.as_bytes()) {
        Ok(again) => assert_eq!(again.tree.write(), text, "writer output is not stable"),
        Err(e) => panic!("reader rejected the writer's output: {e}"),
    }
});
