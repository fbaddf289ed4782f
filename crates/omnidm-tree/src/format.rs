//! Node formats, typed node values and MIME types.
//!
//! The format names come from the SyncML Meta Information `Format` element as used by
//! TND §7.7.2: `b64`, `bin`, `bool`, `chr`, `int`, `node`, `null`, `xml`, `date`,
//! `time`, `float`. Interior nodes always have format `node` (TND §3.2).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

use crate::error::FormatError;

/// The format of a node value (TND §7.7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// Base64-encoded binary data.
    B64,
    /// Binary data (raw octets; base64 only while in transit over XML, TND §7.7.2).
    Bin,
    /// Boolean, `true` or `false`.
    Bool,
    /// Text.
    Chr,
    /// 32-bit signed integer.
    Int,
    /// Interior node; its "value" is the list of child names.
    Node,
    /// No value.
    Null,
    /// XML text.
    Xml,
    /// ISO 8601 calendar date with century.
    Date,
    /// ISO 8601 time of day.
    Time,
    /// Floating-point number.
    Float,
}

impl Format {
    /// Every format, in declaration order.
    pub const ALL: [Format; 11] = [
        Format::B64,
        Format::Bin,
        Format::Bool,
        Format::Chr,
        Format::Int,
        Format::Node,
        Format::Null,
        Format::Xml,
        Format::Date,
        Format::Time,
        Format::Float,
    ];

    /// The canonical lowercase wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::B64 => "b64",
            Format::Bin => "bin",
            Format::Bool => "bool",
            Format::Chr => "chr",
            Format::Int => "int",
            Format::Node => "node",
            Format::Null => "null",
            Format::Xml => "xml",
            Format::Date => "date",
            Format::Time => "time",
            Format::Float => "float",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = FormatError;

    /// Case-insensitive, surrounding white space ignored, and a few spellings seen
    /// from real clients accepted (`string`, `integer`, `boolean`, `base64`, `binary`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Some(f) = Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(t))
        {
            return Ok(f);
        }
        const ALIASES: [(&str, Format); 6] = [
            ("string", Format::Chr),
            ("char", Format::Chr),
            ("integer", Format::Int),
            ("boolean", Format::Bool),
            ("base64", Format::B64),
            ("binary", Format::Bin),
        ];
        ALIASES
            .into_iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(t))
            .map(|(_, f)| f)
            .ok_or_else(|| FormatError::UnknownFormat(s.to_owned()))
    }
}

/// A MIME type (the `Type` property of a leaf node, TND §7.7.7.1). Defaults to
/// `text/plain`, the SyncML default when `Meta/Type` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MimeType(String);

impl MimeType {
    /// Validates the `type/subtype` shape (parameters after `;` allowed); trims
    /// surrounding white space.
    pub fn new(s: &str) -> Result<MimeType, FormatError> {
        let t = s.trim();
        let essence = t.split(';').next().unwrap_or_default().trim();
        let ok = match essence.split_once('/') {
            Some((ty, sub)) => {
                let token = |x: &str| {
                    !x.is_empty()
                        && x.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
                };
                token(ty) && token(sub)
            }
            None => false,
        };
        if ok {
            Ok(MimeType(t.to_owned()))
        } else {
            Err(FormatError::InvalidMimeType(s.to_owned()))
        }
    }

    /// The MIME type as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for MimeType {
    fn default() -> Self {
        MimeType("text/plain".to_owned())
    }
}

impl fmt::Display for MimeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MimeType {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MimeType::new(s)
    }
}

/// A typed node value.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeValue {
    /// Binary data that travels base64-encoded (decoded here).
    B64(Vec<u8>),
    /// Binary data.
    Bin(Vec<u8>),
    /// A boolean.
    Bool(bool),
    /// Text.
    Chr(String),
    /// A 32-bit signed integer (DM `int`).
    Int(i32),
    /// An interior node: the names of its children (package 1 DevInfo sends them
    /// `/`-separated).
    Node(Vec<String>),
    /// No value.
    Null,
    /// XML text, kept verbatim.
    Xml(String),
    /// An ISO 8601 date, validated, kept as sent (`2024-05-01` or `20240501`).
    Date(String),
    /// An ISO 8601 time, validated, kept as sent (`12:30:00Z`, `123000+0100`, …).
    Time(String),
    /// A floating-point number.
    Float(f64),
}

/// Base64 decoder that accepts padded and unpadded input (liberal).
const B64_LIBERAL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn decode_b64(s: &str) -> Result<Vec<u8>, FormatError> {
    // Devices and servers wrap base64 at 76 columns; strip white space first,
    // without allocating when there is none.
    let t: Cow<'_, str> = if s.bytes().any(|b| b.is_ascii_whitespace()) {
        Cow::Owned(s.chars().filter(|c| !c.is_ascii_whitespace()).collect())
    } else {
        Cow::Borrowed(s)
    };
    B64_LIBERAL
        .decode(t.as_bytes())
        .map_err(|e| FormatError::InvalidBase64(e.to_string()))
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn num(s: &str) -> Option<u32> {
    if digits(s) { s.parse().ok() } else { None }
}

/// ISO 8601 calendar date with century: `YYYY-MM-DD` or `YYYYMMDD`
/// (TND §7.7.2 via SyncML Meta Info `date`).
pub(crate) fn is_iso_date(s: &str) -> bool {
    let (y, m, d) = match s.len() {
        10 if s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' => {
            (s.get(0..4), s.get(5..7), s.get(8..10))
        }
        8 => (s.get(0..4), s.get(4..6), s.get(6..8)),
        _ => return false,
    };
    let (Some(y), Some(m), Some(d)) = (y.and_then(num), m.and_then(num), d.and_then(num)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let max = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=max).contains(&d)
}

/// ISO 8601 time of day: `hh:mm[:ss[.fff]]` or `hhmm[ss[.fff]]`, optionally `Z`
/// or `±hh[[:]mm]`. Liberal: a full `date T time` is accepted too, since devices
/// report time stamps that way.
pub(crate) fn is_iso_time(s: &str) -> bool {
    let s = match s.split_once('T') {
        Some((date, time)) => {
            if !is_iso_date(date) {
                return false;
            }
            time
        }
        None => s,
    };
    // Split off the zone designator.
    let (clock, zone) = if let Some(c) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        (c, None)
    } else if let Some(pos) = s.rfind(['+', '-']) {
        (&s[..pos], Some(&s[pos + 1..]))
    } else {
        (s, None)
    };
    if let Some(z) = zone {
        let hour = |x: Option<&str>| x.and_then(num).is_some_and(|h| h <= 14);
        let minute = |x: Option<&str>| x.and_then(num).is_some_and(|m| m < 60);
        let ok = match z.len() {
            2 => hour(Some(z)),
            4 => hour(z.get(..2)) && minute(z.get(2..)),
            5 => hour(z.get(..2)) && z.get(2..3) == Some(":") && minute(z.get(3..)),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    let (clock, frac) = match clock.split_once(['.', ',']) {
        Some((c, f)) => (c, Some(f)),
        None => (clock, None),
    };
    if frac.is_some_and(|f| !digits(f)) {
        return false;
    }
    let parts: [Option<&str>; 3] = if clock.contains(':') {
        let mut it = clock.split(':');
        let p = [it.next(), it.next(), it.next()];
        if it.next().is_some() {
            return false;
        }
        p
    } else {
        match clock.len() {
            4 => [clock.get(0..2), clock.get(2..4), None],
            6 => [clock.get(0..2), clock.get(2..4), clock.get(4..6)],
            _ => return false,
        }
    };
    let field = |p: Option<&str>, max: u32| {
        p.is_some_and(|p| p.len() == 2 && num(p).is_some_and(|v| v <= max))
    };
    let [h, m, sec] = parts;
    if !field(h, 24) || !field(m, 59) {
        return false;
    }
    match sec {
        Some(_) => field(sec, 60),
        None => frac.is_none(),
    }
}

impl NodeValue {
    /// Parses wire text in `format`.
    ///
    /// Liberal where devices differ: surrounding white space is ignored for
    /// `bool`/`int`/`float`/`date`/`time`/`b64`; `bool` accepts any case and `1`/`0`;
    /// `int` accepts a leading `+`; `float` accepts `INF`, `-INF`, `NaN`; `null`
    /// ignores any content. `chr`, `xml` and `bin` are kept verbatim.
    pub fn parse(format: Format, text: &str) -> Result<NodeValue, FormatError> {
        let t = text.trim();
        Ok(match format {
            Format::Chr => NodeValue::Chr(text.to_owned()),
            Format::Xml => NodeValue::Xml(text.to_owned()),
            Format::Bin => NodeValue::Bin(text.as_bytes().to_vec()),
            Format::B64 => NodeValue::B64(decode_b64(t)?),
            Format::Null => NodeValue::Null,
            Format::Bool => {
                if t.eq_ignore_ascii_case("true") || t == "1" {
                    NodeValue::Bool(true)
                } else if t.eq_ignore_ascii_case("false") || t == "0" {
                    NodeValue::Bool(false)
                } else {
                    return Err(FormatError::InvalidBool(text.to_owned()));
                }
            }
            Format::Int => {
                let body = t.strip_prefix(['+', '-']).unwrap_or(t);
                if !digits(body) {
                    return Err(FormatError::InvalidInt(text.to_owned()));
                }
                NodeValue::Int(
                    t.parse::<i32>()
                        .map_err(|_| FormatError::IntOutOfRange(text.to_owned()))?,
                )
            }
            Format::Float => {
                let v = if t == "INF" {
                    f64::INFINITY
                } else if t == "-INF" {
                    f64::NEG_INFINITY
                } else {
                    t.parse::<f64>()
                        .map_err(|_| FormatError::InvalidFloat(text.to_owned()))?
                };
                NodeValue::Float(v)
            }
            Format::Date => {
                if !is_iso_date(t) {
                    return Err(FormatError::InvalidDate(text.to_owned()));
                }
                NodeValue::Date(t.to_owned())
            }
            Format::Time => {
                if !is_iso_time(t) {
                    return Err(FormatError::InvalidTime(text.to_owned()));
                }
                NodeValue::Time(t.to_owned())
            }
            Format::Node => NodeValue::Node(
                text.split('/')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
        })
    }

    /// Parses an opaque value (for example WBXML `OPAQUE` data): `bin` keeps the
    /// octets as they are, every other format must be UTF-8 text.
    pub fn parse_bytes(format: Format, bytes: &[u8]) -> Result<NodeValue, FormatError> {
        match format {
            Format::Bin => Ok(NodeValue::Bin(bytes.to_vec())),
            _ => {
                let s = std::str::from_utf8(bytes).map_err(|_| FormatError::NotUtf8)?;
                NodeValue::parse(format, s)
            }
        }
    }

    /// The node format of this value.
    pub fn format(&self) -> Format {
        match self {
            NodeValue::B64(_) => Format::B64,
            NodeValue::Bin(_) => Format::Bin,
            NodeValue::Bool(_) => Format::Bool,
            NodeValue::Chr(_) => Format::Chr,
            NodeValue::Int(_) => Format::Int,
            NodeValue::Node(_) => Format::Node,
            NodeValue::Null => Format::Null,
            NodeValue::Xml(_) => Format::Xml,
            NodeValue::Date(_) => Format::Date,
            NodeValue::Time(_) => Format::Time,
            NodeValue::Float(_) => Format::Float,
        }
    }

    /// The `Meta/Format` to send with [`to_wire`](Self::to_wire) text: the value's
    /// format, except `bin`, which over XML MUST travel as `b64` (TND §7.7.2).
    pub fn wire_format(&self) -> Format {
        match self {
            NodeValue::Bin(_) => Format::B64,
            v => v.format(),
        }
    }

    /// Renders the value as wire text, to be sent with [`wire_format`](Self::wire_format).
    ///
    /// `parse(v.wire_format(), &v.to_wire()) == v` for every value except `Bin`
    /// (which comes back as `B64` with the same bytes) and `NaN`.
    pub fn to_wire(&self) -> Cow<'_, str> {
        match self {
            NodeValue::B64(b) | NodeValue::Bin(b) => {
                Cow::Owned(general_purpose::STANDARD.encode(b))
            }
            NodeValue::Bool(true) => Cow::Borrowed("true"),
            NodeValue::Bool(false) => Cow::Borrowed("false"),
            NodeValue::Chr(s) | NodeValue::Xml(s) | NodeValue::Date(s) | NodeValue::Time(s) => {
                Cow::Borrowed(s)
            }
            NodeValue::Int(i) => Cow::Owned(i.to_string()),
            NodeValue::Node(children) => Cow::Owned(children.join("/")),
            NodeValue::Null => Cow::Borrowed(""),
            NodeValue::Float(f) => {
                if f.is_nan() {
                    Cow::Borrowed("NaN")
                } else if f.is_infinite() {
                    Cow::Borrowed(if *f > 0.0 { "INF" } else { "-INF" })
                } else {
                    // Rust's shortest round-trip representation.
                    Cow::Owned(f.to_string())
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn format_names() {
        for f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>().unwrap(), f);
        }
        assert_eq!(" CHR ".parse::<Format>().unwrap(), Format::Chr);
        assert_eq!("Node".parse::<Format>().unwrap(), Format::Node);
        assert_eq!("string".parse::<Format>().unwrap(), Format::Chr);
        assert!(matches!(
            "mchr".parse::<Format>(),
            Err(FormatError::UnknownFormat(_))
        ));
    }

    #[test]
    fn scalar_values() {
        use NodeValue as V;
        assert_eq!(V::parse(Format::Bool, "true").unwrap(), V::Bool(true));
        assert_eq!(V::parse(Format::Bool, " FALSE\n").unwrap(), V::Bool(false));
        assert_eq!(V::parse(Format::Bool, "1").unwrap(), V::Bool(true));
        assert!(V::parse(Format::Bool, "yes").is_err());
        assert_eq!(V::parse(Format::Int, "10").unwrap(), V::Int(10));
        assert_eq!(V::parse(Format::Int, "+7").unwrap(), V::Int(7));
        assert_eq!(
            V::parse(Format::Int, "-2147483648").unwrap(),
            V::Int(i32::MIN)
        );
        assert!(matches!(
            V::parse(Format::Int, "2147483648"),
            Err(FormatError::IntOutOfRange(_))
        ));
        assert!(matches!(
            V::parse(Format::Int, "1.5"),
            Err(FormatError::InvalidInt(_))
        ));
        assert!(V::parse(Format::Int, "").is_err());
        assert_eq!(V::parse(Format::Float, "1.5").unwrap(), V::Float(1.5));
        assert_eq!(
            V::parse(Format::Float, "-INF").unwrap(),
            V::Float(f64::NEG_INFINITY)
        );
        assert_eq!(V::Float(f64::INFINITY).to_wire(), "INF");
        assert!(V::parse(Format::Float, "abc").is_err());
        assert_eq!(V::parse(Format::Null, "").unwrap(), V::Null);
        assert_eq!(V::parse(Format::Chr, " a ").unwrap(), V::Chr(" a ".into()));
    }

    #[test]
    fn binary_values() {
        use NodeValue as V;
        assert_eq!(
            V::parse(Format::B64, "MTIzNDU2Nzg5MDEy").unwrap(),
            V::B64(b"123456789012".to_vec())
        );
        // Wrapped and unpadded base64 are accepted.
        assert_eq!(
            V::parse(Format::B64, "aGVs\r\nbG8").unwrap(),
            V::B64(b"hello".to_vec())
        );
        assert!(V::parse(Format::B64, "!!").is_err());
        let bin = V::parse_bytes(Format::Bin, &[0, 255]).unwrap();
        assert_eq!(bin, V::Bin(vec![0, 255]));
        assert_eq!(bin.wire_format(), Format::B64);
        assert_eq!(bin.to_wire(), "AP8=");
        assert_eq!(
            V::parse_bytes(Format::Chr, &[0xff]),
            Err(FormatError::NotUtf8)
        );
    }

    #[test]
    fn dates_and_times() {
        use NodeValue as V;
        for ok in ["2024-05-01", "20240501", "2000-02-29"] {
            assert!(V::parse(Format::Date, ok).is_ok(), "{ok}");
        }
        for bad in [
            "2024-5-1",
            "1900-02-29",
            "2024-13-01",
            "2024-04-31",
            "24-05-01",
            "２０２４0501",
        ] {
            assert!(V::parse(Format::Date, bad).is_err(), "{bad}");
        }
        for ok in [
            "12:30:00",
            "123000Z",
            "12:30:00Z",
            "12:30:00+01:00",
            "123000-0500",
            "12:30:00.250Z",
            "12:30",
            "2024-05-01T10:15:30Z",
            "23:59:60Z",
        ] {
            assert!(V::parse(Format::Time, ok).is_ok(), "{ok}");
        }
        for bad in [
            "25:00:00",
            "12:60:00",
            "123",
            "12:30:00+1",
            "12:30:00+ab:cd",
            "12:3x:00",
            "12:30.5",
            "T12:30:00",
            "12:30:00+0é",
        ] {
            assert!(V::parse(Format::Time, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn node_children() {
        let v = NodeValue::parse(Format::Node, "DevId/Man/Mod/DmV/Lang").unwrap();
        assert_eq!(
            v,
            NodeValue::Node(vec![
                "DevId".into(),
                "Man".into(),
                "Mod".into(),
                "DmV".into(),
                "Lang".into()
            ])
        );
        assert_eq!(v.to_wire(), "DevId/Man/Mod/DmV/Lang");
        assert_eq!(
            NodeValue::parse(Format::Node, "").unwrap(),
            NodeValue::Node(vec![])
        );
    }

    #[test]
    fn mime_types() {
        assert_eq!(MimeType::default().as_str(), "text/plain");
        assert!(MimeType::new("application/vnd.syncml.dmtnds+xml").is_ok());
        assert!(MimeType::new("text/plain; charset=UTF-8").is_ok());
        assert!(MimeType::new("text").is_err());
        assert!(MimeType::new("text/").is_err());
        assert!(MimeType::new("te xt/plain").is_err());
    }
}
