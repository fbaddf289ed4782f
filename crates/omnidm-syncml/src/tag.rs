//! Element names of SyncML 1.2 (code page 0) and MetInf 1.2 (code page 1), with their WBXML
//! tokens (SyncML Representation Protocol 1.2 §8 / MetInf 1.2 §7 code page tables; the same
//! tables libwbxml ships). Data-synchronisation elements are listed too, so that a DS element
//! in a DM message is recognised and skipped by name rather than reported as garbage.

macro_rules! tags {
    ($( $page:literal { $( $variant:ident = $token:literal, )* } )*) => {
        /// A known SyncML or MetInf element.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum Tag { $( $( $variant, )* )* }

        /// Element names as byte-string constants, usable as `match` patterns.
        #[allow(non_upper_case_globals)]
        mod names {
            $( $( pub(super) const $variant: &[u8] = stringify!($variant).as_bytes(); )* )*
        }

        impl Tag {
            /// The element's local name, as in XML.
            pub fn name(self) -> &'static str {
                match self { $( $( Tag::$variant => stringify!($variant), )* )* }
            }

            /// The WBXML (code page, token) of the element.
            pub fn wbxml(self) -> (u8, u8) {
                match self { $( $( Tag::$variant => ($page, $token), )* )* }
            }

            /// Every known element.
            pub const ALL: &'static [Tag] = &[ $( $( Tag::$variant, )* )* ];

            /// The element with this local name (case-sensitive, as XML is). A `match` on
            /// constant byte strings, inlined: no lock, no table, no out-of-line `memcmp` per
            /// probe. This is on the XML decoder's hot path (once per start tag).
            pub fn from_name(name: &[u8]) -> Option<Tag> {
                match name {
                    $( $( names::$variant => Some(Tag::$variant), )* )*
                    _ => None,
                }
            }

            /// The element with this WBXML (code page, token).
            pub fn from_wbxml(page: u8, token: u8) -> Option<Tag> {
                match (page, token) {
                    $( $( ($page, $token) => Some(Tag::$variant), )* )*
                    _ => None,
                }
            }
        }
    };
}

tags! {
    0 {
        Add = 0x05, Alert = 0x06, Archive = 0x07, Atomic = 0x08, Chal = 0x09, Cmd = 0x0A,
        CmdID = 0x0B, CmdRef = 0x0C, Copy = 0x0D, Cred = 0x0E, Data = 0x0F, Delete = 0x10,
        Exec = 0x11, Final = 0x12, Get = 0x13, Item = 0x14, Lang = 0x15, LocName = 0x16,
        LocURI = 0x17, Map = 0x18, MapItem = 0x19, Meta = 0x1A, MsgID = 0x1B, MsgRef = 0x1C,
        NoResp = 0x1D, NoResults = 0x1E, Put = 0x1F, Replace = 0x20, RespURI = 0x21,
        Results = 0x22, Search = 0x23, Sequence = 0x24, SessionID = 0x25, SftDel = 0x26,
        Source = 0x27, SourceRef = 0x28, Status = 0x29, Sync = 0x2A, SyncBody = 0x2B,
        SyncHdr = 0x2C, SyncML = 0x2D, Target = 0x2E, TargetRef = 0x2F, VerDTD = 0x31,
        VerProto = 0x32, NumberOfChanges = 0x33, MoreData = 0x34, Field = 0x35, Filter = 0x36,
        Record = 0x37, FilterType = 0x38, SourceParent = 0x39, TargetParent = 0x3A, Move = 0x3B,
        Correlator = 0x3C,
    }
    1 {
        Anchor = 0x05, EMI = 0x06, Format = 0x07, FreeID = 0x08, FreeMem = 0x09, Last = 0x0A,
        Mark = 0x0B, MaxMsgSize = 0x0C, Mem = 0x0D, MetInf = 0x0E, Next = 0x0F,
        NextNonce = 0x10, SharedMem = 0x11, Size = 0x12, Type = 0x13, Version = 0x14,
        MaxObjSize = 0x15, FieldLevel = 0x16,
    }
}

impl Tag {
    /// True for MetInf elements, which XML writes with `xmlns="syncml:metinf"`.
    pub fn is_metinf(self) -> bool {
        self.wbxml().0 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tokens_are_bijective() {
        for page in 0..2u8 {
            for token in 0..64u8 {
                if let Some(tag) = Tag::from_wbxml(page, token) {
                    assert_eq!(tag.wbxml(), (page, token));
                    assert_eq!(Tag::from_name(tag.name().as_bytes()), Some(tag));
                }
            }
        }
        assert_eq!(Tag::SyncML.wbxml(), (0, 0x2D));
        assert_eq!(Tag::MaxObjSize.wbxml(), (1, 0x15));
        assert_eq!(Tag::from_name(b"Correlator"), Some(Tag::Correlator));
        assert_eq!(Tag::from_name(b"Nope"), None);
    }
}
