//! Fuzz target: the WBXML token reader over arbitrary input.
//!
//! Reads events until the document ends or an error occurs; the reader must never panic and
//! must terminate (every event but a synthetic End consumes input).

#![no_main]

use libfuzzer_sys::fuzz_target;
use omnidm_wbxml::{Limits, Reader};

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = Reader::new(data, Limits::default()) else {
        return;
    };
    let bound = 2 * data.len() + 2;
    for _ in 0..bound {
        match reader.next_event() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return,
        }
    }
    panic!("reader did not terminate within {bound} events");
});
