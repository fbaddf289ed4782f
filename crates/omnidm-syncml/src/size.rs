//! The size calculator: the exact encoded size of a message, or of each command as it is added,
//! without encoding anything. The session engine uses [`MessageBudget`] to fill a message up to
//! the device's `MaxMsgSize` in one pass, with no trial encoding.
//!
//! Sizes are exact because they come from running the real emitter into counting sinks: the
//! structure is the same code path as encoding, only the bytes are not stored.

use crate::codec::Encoding;
use crate::emit;
use crate::event::Sink;
use crate::model::{Command, Header, Message};
use crate::wbxml::{self, WbxmlCounter};
use crate::xml::{self, Counter, XmlSink};

/// The exact length of `encode(message, encoding)`.
pub fn encoded_size(message: &Message, encoding: Encoding) -> usize {
    let mut budget = MessageBudget::new(&message.header, encoding, usize::MAX);
    for c in &message.body.commands {
        budget.push(c);
    }
    budget.total(message.body.final_)
}

/// A counting sink for either encoding.
#[derive(Clone)]
enum Counting {
    Xml(XmlSink<Counter>),
    Wbxml(WbxmlCounter),
}

impl Counting {
    fn len(&self) -> usize {
        match self {
            Counting::Xml(s) => s.out.0,
            Counting::Wbxml(c) => c.len,
        }
    }

    fn sink(&mut self) -> &mut dyn Sink {
        match self {
            Counting::Xml(s) => s,
            Counting::Wbxml(c) => c,
        }
    }
}

/// Fills one message up to a size limit, command by command.
///
/// ```
/// use omnidm_syncml::{Command, Encoding, Header, ItemCommand, Item, MessageBudget};
/// let header = Header::default();
/// let mut budget = MessageBudget::new(&header, Encoding::Xml, 1024);
/// let get = Command::Get(ItemCommand { cmd_id: 1, items: vec![Item::target("./DevInfo/Mod")], ..Default::default() });
/// assert!(budget.try_add(&get, true));
/// assert!(budget.total(true) <= 1024);
/// ```
#[derive(Clone)]
pub struct MessageBudget {
    counting: Counting,
    limit: usize,
}

impl MessageBudget {
    /// A budget for a message with `header`, in `encoding`, that must not exceed `limit` bytes.
    /// The header, the body's open and close tags and the root's close are already counted.
    pub fn new(header: &Header, encoding: Encoding, limit: usize) -> Self {
        let mut counting = match encoding {
            Encoding::Xml => {
                let out = Counter(xml::DECLARATION.len());
                Counting::Xml(XmlSink::new(out, xml::namespace(&header.ver_dtd), false))
            }
            Encoding::Wbxml => {
                let mut c = WbxmlCounter::new();
                c.len += wbxml::header_len(header);
                Counting::Wbxml(c)
            }
        };
        let sink = counting.sink();
        sink.start(crate::tag::Tag::SyncML);
        emit::header(sink, header);
        emit::body_start(sink);
        Self { counting, limit }
    }

    /// Counts `command` unconditionally.
    pub fn push(&mut self, command: &Command) {
        emit::command(self.counting.sink(), command);
    }

    /// Counts `command` if the message, closed with or without `Final`, still fits the limit;
    /// returns whether it was counted.
    pub fn try_add(&mut self, command: &Command, final_: bool) -> bool {
        let mut attempt = self.counting.clone();
        emit::command(attempt.sink(), command);
        if trailer(attempt.clone(), final_) > self.limit {
            return false;
        }
        self.counting = attempt;
        true
    }

    /// The size of the message so far once closed (with `Final` if `final_`).
    pub fn total(&self, final_: bool) -> usize {
        trailer(self.counting.clone(), final_)
    }

    /// Bytes still free under the limit if the message were closed with `Final`.
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.total(true))
    }
}

/// Closes a counted message and returns its total size.
fn trailer(mut counting: Counting, final_: bool) -> usize {
    let sink = counting.sink();
    emit::body_end(sink, final_);
    sink.end(crate::tag::Tag::SyncML);
    counting.len()
}
