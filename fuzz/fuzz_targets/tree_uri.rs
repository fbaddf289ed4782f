//! Fuzz target: URI and pattern parsing must never panic, and an accepted URI must
//! display to text that parses back to the same URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnidm_tree::{TreeUri, UriLimits, UriPattern};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = UriPattern::parse(s);
    let limits = UriLimits {
        max_depth: 1024,
        max_segment_len: 4096,
        max_total_len: 1 << 20,
    };
    if let Ok(uri) = TreeUri::parse_with(s, &limits) {
        let text = uri.to_string();
        // Escaping can lengthen the text past the total-length limit; only then may
        // the displayed form be rejected.
        if text.len() <= limits.max_total_len {
            assert_eq!(TreeUri::parse_with(&text, &limits).ok(), Some(uri.clone()));
        }
        if let Some(parent) = uri.parent() {
            assert!(parent.is_ancestor_of(&uri));
        }
    }
});
