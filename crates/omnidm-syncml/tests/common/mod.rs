//! Helpers shared by the integration tests.
#![allow(dead_code)]

use omnidm_syncml::*;

/// WBXML may carry a value as OPAQUE where XML has text (and libwbxml turns text into
/// OPAQUE/CDATA and back); compare meaning, not form.
pub fn normalize(mut m: Message) -> Message {
    fn items(items: &mut [Item]) {
        for i in items {
            if let Some(d) = &i.data {
                i.data = Some(Data::Text(d.as_text().unwrap_or_default().to_owned()));
            }
        }
    }
    fn commands(cs: &mut [Command]) {
        for c in cs {
            match c {
                Command::Add(c)
                | Command::Copy(c)
                | Command::Delete(c)
                | Command::Get(c)
                | Command::Replace(c) => items(&mut c.items),
                Command::Alert(a) => items(&mut a.items),
                Command::Exec(e) => items(std::slice::from_mut(&mut e.item)),
                Command::Atomic(c) | Command::Sequence(c) => commands(&mut c.commands),
                Command::Results(r) => items(&mut r.items),
                Command::Status(s) => items(&mut s.items),
            }
        }
    }
    commands(&mut m.body.commands);
    if let Some(c) = &mut m.header.cred {
        c.data = Data::Text(c.data.as_text().unwrap_or_default().to_owned());
    }
    m
}
