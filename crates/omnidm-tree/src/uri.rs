//! OMA DM management-tree URIs (TND §5 "The Management Tree", §7.3 property
//! addressing; DM Protocol 1.2 §6.1 and TNDS `?list=`).
//!
//! A [`TreeUri`] is parsed, validated and normalized: `./A/B`, `A/B` and `./A/B/`
//! are the same URI and all display as `./A/B`; the root is `.`. Segments are
//! stored unescaped; `/`, `%` and `?` inside a node name travel escaped as `%2F`,
//! `%25` and `%3F`.

use std::fmt;
use std::str::FromStr;

use crate::error::{UriError, UriLimit};

/// Size limits applied when parsing or extending a [`TreeUri`].
///
/// They mirror what a device announces in `./DevDetail/URI/MaxDepth`, `MaxSegLen` and
/// `MaxTotLen` (DM StdObj 1.2 §5.3); the defaults are generous for real devices while
/// bounding the work done on hostile input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriLimits {
    /// Maximum number of segments below the root.
    pub max_depth: usize,
    /// Maximum length of one unescaped segment, in bytes.
    pub max_segment_len: usize,
    /// Maximum length of the whole URI as text (including any `?` suffix), in bytes.
    pub max_total_len: usize,
}

impl Default for UriLimits {
    fn default() -> Self {
        UriLimits {
            max_depth: 32,
            max_segment_len: 64,
            max_total_len: 1024,
        }
    }
}

/// Which listing a `?list=` suffix asks for (DM Protocol 1.2 §6.5.7 Get, TNDS §8).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ListKind {
    /// `?list=Struct`: the structure without values.
    Struct,
    /// `?list=StructData`: the structure with leaf values.
    StructData,
    /// `?list=TNDS` (possibly followed by `+Prop` selections, kept verbatim).
    Tnds(Option<String>),
}

/// A node property addressed with `?prop=` (TND §7.3, §7.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Property {
    /// Access control list.
    Acl,
    /// Value format.
    Format,
    /// Node name.
    Name,
    /// Value size in bytes.
    Size,
    /// Human readable title.
    Title,
    /// Last modification time stamp.
    TStamp,
    /// MIME type or MO identifier.
    Type,
    /// Version number.
    VerNo,
}

impl Property {
    /// All properties, in TND §7.7 order.
    pub const ALL: [Property; 8] = [
        Property::Acl,
        Property::Format,
        Property::Name,
        Property::Size,
        Property::Title,
        Property::TStamp,
        Property::Type,
        Property::VerNo,
    ];

    /// The canonical wire name (`ACL`, `Format`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Property::Acl => "ACL",
            Property::Format => "Format",
            Property::Name => "Name",
            Property::Size => "Size",
            Property::Title => "Title",
            Property::TStamp => "TStamp",
            Property::Type => "Type",
            Property::VerNo => "VerNo",
        }
    }

    /// Parses a property name, case-insensitively (liberal: devices vary in case).
    pub fn parse(s: &str) -> Option<Property> {
        Property::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `?…` suffix of a URI.
///
/// `ListKind` is not `Copy` because `?list=TNDS+…` keeps its selection text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UriQuery {
    /// `?list=…`
    List(ListKind),
    /// `?prop=…`
    Prop(Property),
}

impl UriQuery {
    fn parse(q: &str) -> Result<UriQuery, UriError> {
        let bad = || UriError::BadQuery(q.to_owned());
        let (key, value) = q.split_once('=').ok_or_else(bad)?;
        if key.eq_ignore_ascii_case("prop") {
            return Property::parse(value).map(UriQuery::Prop).ok_or_else(bad);
        }
        if !key.eq_ignore_ascii_case("list") {
            return Err(bad());
        }
        if value.eq_ignore_ascii_case("Struct") {
            Ok(UriQuery::List(ListKind::Struct))
        } else if value.eq_ignore_ascii_case("StructData") {
            Ok(UriQuery::List(ListKind::StructData))
        } else {
            let (head, rest) = match value.split_once('+') {
                Some((h, r)) => (h, Some(r)),
                None => (value, None),
            };
            if !head.eq_ignore_ascii_case("TNDS") {
                return Err(bad());
            }
            match rest {
                None => Ok(UriQuery::List(ListKind::Tnds(None))),
                Some(r)
                    if !r.is_empty()
                        && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+') =>
                {
                    Ok(UriQuery::List(ListKind::Tnds(Some(r.to_owned()))))
                }
                Some(_) => Err(bad()),
            }
        }
    }
}

impl fmt::Display for UriQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriQuery::Prop(p) => write!(f, "prop={p}"),
            UriQuery::List(ListKind::Struct) => f.write_str("list=Struct"),
            UriQuery::List(ListKind::StructData) => f.write_str("list=StructData"),
            UriQuery::List(ListKind::Tnds(None)) => f.write_str("list=TNDS"),
            UriQuery::List(ListKind::Tnds(Some(sel))) => write!(f, "list=TNDS+{sel}"),
        }
    }
}

/// A parsed, validated and normalized management-tree URI.
///
/// Equality, ordering and hashing are on the normalized form, so `A/B` equals `./A/B`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TreeUri {
    /// Unescaped node names below the root, outermost first; empty for `.`.
    segments: Vec<String>,
    /// The `?list=` / `?prop=` suffix, if any.
    query: Option<UriQuery>,
}

/// Decodes the three escapes this crate produces; any other `%` stays literal
/// (liberal: a device's `%41` is a node name containing `%41`).
fn unescape_segment(raw: &str) -> String {
    if !raw.contains('%') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let decoded = match after.as_bytes() {
            [b'2', b'F' | b'f', ..] => Some('/'),
            [b'2', b'5', ..] => Some('%'),
            [b'3', b'F' | b'f', ..] => Some('?'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[2..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn escaped_len(seg: &str) -> usize {
    seg.len()
        + 2 * seg
            .bytes()
            .filter(|b| matches!(b, b'/' | b'%' | b'?'))
            .count()
}

fn write_escaped(f: &mut fmt::Formatter<'_>, seg: &str) -> fmt::Result {
    let mut start = 0;
    for (i, b) in seg.bytes().enumerate() {
        let esc = match b {
            b'/' => "%2F",
            b'%' => "%25",
            b'?' => "%3F",
            _ => continue,
        };
        f.write_str(&seg[start..i])?;
        f.write_str(esc)?;
        start = i + 1;
    }
    f.write_str(&seg[start..])
}

/// Checks one unescaped node name against the segment rules.
fn check_segment(seg: &str, index: usize, limits: &UriLimits) -> Result<(), UriError> {
    if seg.is_empty() {
        return Err(UriError::EmptySegment { index });
    }
    if seg == "." || seg == ".." {
        return Err(UriError::DotSegment {
            segment: seg.to_owned(),
            index,
        });
    }
    if let Some(ch) = seg.chars().find(|c| c.is_control()) {
        return Err(UriError::InvalidChar { ch, index });
    }
    if seg.len() > limits.max_segment_len {
        return Err(UriError::LimitExceeded {
            limit: UriLimit::SegmentLength,
            max: limits.max_segment_len,
            actual: seg.len(),
        });
    }
    Ok(())
}

impl TreeUri {
    /// The root node `.`.
    pub fn root() -> TreeUri {
        TreeUri::default()
    }

    /// Parses with [`UriLimits::default`].
    pub fn parse(s: &str) -> Result<TreeUri, UriError> {
        TreeUri::parse_with(s, &UriLimits::default())
    }

    /// Parses `s` (`.`, `./A/B`, `A/B`, optionally `?list=…`/`?prop=…`) under `limits`.
    ///
    /// Liberal where real devices are sloppy: one trailing `/` is dropped
    /// (`./DevInfo/`), and `./` alone is the root. Strict where it matters:
    /// empty segments, `.`/`..` segments, control characters and exceeded limits
    /// are errors (TND §5).
    pub fn parse_with(s: &str, limits: &UriLimits) -> Result<TreeUri, UriError> {
        if s.len() > limits.max_total_len {
            return Err(UriError::LimitExceeded {
                limit: UriLimit::TotalLength,
                max: limits.max_total_len,
                actual: s.len(),
            });
        }
        if s.is_empty() {
            return Err(UriError::Empty);
        }
        let (path, query) = match s.split_once('?') {
            Some((p, q)) => (p, Some(UriQuery::parse(q)?)),
            None => (s, None),
        };
        if path.starts_with('/') {
            return Err(UriError::LeadingSlash);
        }
        let rel = match path {
            "." | "./" => {
                return Ok(TreeUri {
                    segments: Vec::new(),
                    query,
                });
            }
            p => p.strip_prefix("./").unwrap_or(p),
        };
        if rel.is_empty() {
            return Err(UriError::Empty);
        }
        // Liberal: one trailing '/' is tolerated (`./DevInfo/`), TND §5 notwithstanding.
        let path = match rel.strip_suffix('/') {
            Some("") => return Err(UriError::EmptySegment { index: 0 }),
            Some(r) => r,
            None => rel,
        };
        let mut segments = Vec::new();
        for (index, raw) in path.split('/').enumerate() {
            if index >= limits.max_depth {
                return Err(UriError::LimitExceeded {
                    limit: UriLimit::Depth,
                    max: limits.max_depth,
                    actual: path.split('/').count(),
                });
            }
            let seg = unescape_segment(raw);
            check_segment(&seg, index, limits)?;
            segments.push(seg);
        }
        Ok(TreeUri { segments, query })
    }

    /// Builds a URI from unescaped node names, checked under `limits`.
    pub fn from_segments<I, S>(segments: I, limits: &UriLimits) -> Result<TreeUri, UriError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut uri = TreeUri::root();
        for s in segments {
            uri = uri.join_with(s, limits)?;
        }
        Ok(uri)
    }

    /// True for `.` (with or without a query).
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// Number of segments below the root (0 for `.`).
    pub fn depth(&self) -> usize {
        self.segments.len()
    }

    /// The unescaped node names, outermost first.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.segments.iter().map(String::as_str)
    }

    /// The unescaped node name at `index`.
    pub fn segment(&self, index: usize) -> Option<&str> {
        self.segments.get(index).map(String::as_str)
    }

    /// The last node name; `None` for the root.
    pub fn name(&self) -> Option<&str> {
        self.segments.last().map(String::as_str)
    }

    /// The `?…` suffix.
    pub fn query(&self) -> Option<&UriQuery> {
        self.query.as_ref()
    }

    /// This URI with `query` as its suffix.
    pub fn with_query(mut self, query: Option<UriQuery>) -> TreeUri {
        self.query = query;
        self
    }

    /// The node this URI addresses, without any `?…` suffix.
    pub fn without_query(&self) -> TreeUri {
        TreeUri {
            segments: self.segments.clone(),
            query: None,
        }
    }

    /// The parent node (query dropped); `None` for the root.
    pub fn parent(&self) -> Option<TreeUri> {
        let (_, init) = self.segments.split_last()?;
        Some(TreeUri {
            segments: init.to_vec(),
            query: None,
        })
    }

    /// Appends one unescaped child name, checked under [`UriLimits::default`].
    /// The query is dropped.
    pub fn join(&self, child: impl Into<String>) -> Result<TreeUri, UriError> {
        self.join_with(child, &UriLimits::default())
    }

    /// Appends one unescaped child name, checked under `limits`. The query is dropped.
    pub fn join_with(
        &self,
        child: impl Into<String>,
        limits: &UriLimits,
    ) -> Result<TreeUri, UriError> {
        let child = child.into();
        let index = self.segments.len();
        check_segment(&child, index, limits)?;
        if index + 1 > limits.max_depth {
            return Err(UriError::LimitExceeded {
                limit: UriLimit::Depth,
                max: limits.max_depth,
                actual: index + 1,
            });
        }
        let mut segments = Vec::with_capacity(index + 1);
        segments.extend_from_slice(&self.segments);
        segments.push(child);
        let uri = TreeUri {
            segments,
            query: None,
        };
        let len = uri.text_len();
        if len > limits.max_total_len {
            return Err(UriError::LimitExceeded {
                limit: UriLimit::TotalLength,
                max: limits.max_total_len,
                actual: len,
            });
        }
        Ok(uri)
    }

    /// Length of the displayed form in bytes (without the query).
    pub fn text_len(&self) -> usize {
        if self.segments.is_empty() {
            return 1;
        }
        self.segments
            .iter()
            .map(|s| escaped_len(s) + 1)
            .sum::<usize>()
            + 1
    }

    /// True if `prefix` is this node or one of its ancestors (queries ignored).
    pub fn starts_with(&self, prefix: &TreeUri) -> bool {
        self.segments.starts_with(&prefix.segments)
    }

    /// True if this node is a strict ancestor of `other` (queries ignored).
    pub fn is_ancestor_of(&self, other: &TreeUri) -> bool {
        other.segments.len() > self.segments.len() && other.starts_with(self)
    }

    /// The path in the relative form some devices prefer (`A/B`, `.` for the root),
    /// without the query.
    pub fn to_relative_string(&self) -> String {
        let s = self.without_query().to_string();
        match s.strip_prefix("./") {
            Some(rest) => rest.to_owned(),
            None => s,
        }
    }
}

impl fmt::Display for TreeUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(".")?;
        for seg in &self.segments {
            f.write_str("/")?;
            write_escaped(f, seg)?;
        }
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

impl FromStr for TreeUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TreeUri::parse(s)
    }
}

/// One segment of a [`UriPattern`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PatternSegment {
    /// Matches exactly this node name.
    Literal(String),
    /// `*`: matches any one node name.
    AnyOne,
}

/// A URI pattern for access grants: `./DevInfo/Mod` (exactly that node),
/// `./DevInfo/*` (each direct child, one segment), `./Vendor/App42/**`
/// (`./Vendor/App42` itself and everything below it).
///
/// `*` may appear in any segment position; `**` only last. Queries on the matched
/// URI are ignored: a grant on a node covers its properties.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UriPattern {
    /// Segment matchers, outermost first (without the trailing `**`).
    segments: Vec<PatternSegment>,
    /// Whether the pattern ended with `**`.
    subtree: bool,
}

impl UriPattern {
    /// Parses a pattern under [`UriLimits::default`].
    pub fn parse(s: &str) -> Result<UriPattern, UriError> {
        let limits = UriLimits::default();
        if s.contains('?') {
            return Err(UriError::BadQuery(s.to_owned()));
        }
        // Parse as a URI first: the wildcards are valid node-name characters,
        // so all structural checks (empty segments, `..`, limits) apply unchanged.
        let uri = TreeUri::parse_with(s, &limits)?;
        let n = uri.segments.len();
        let mut segments = Vec::with_capacity(n);
        let mut subtree = false;
        for (i, seg) in uri.segments.into_iter().enumerate() {
            match seg.as_str() {
                "**" if i + 1 == n => subtree = true,
                "**" => return Err(UriError::MisplacedSubtreeWildcard),
                "*" => segments.push(PatternSegment::AnyOne),
                _ => segments.push(PatternSegment::Literal(seg)),
            }
        }
        Ok(UriPattern { segments, subtree })
    }

    /// A pattern matching exactly `uri` (and, with `subtree`, everything below it).
    pub fn from_uri(uri: &TreeUri, subtree: bool) -> UriPattern {
        UriPattern {
            segments: uri
                .segments
                .iter()
                .map(|s| PatternSegment::Literal(s.clone()))
                .collect(),
            subtree,
        }
    }

    /// True if the pattern ends with `**`.
    pub fn is_subtree(&self) -> bool {
        self.subtree
    }

    /// Does this pattern match `uri` and every node below it? True only for a `**` pattern
    /// whose literal part is a prefix of `uri`: what a subtree listing (`?list=…`) rooted at
    /// `uri` can return is then covered node by node.
    pub fn matches_subtree(&self, uri: &TreeUri) -> bool {
        self.subtree && self.matches(uri)
    }

    /// Does `uri` fall under this pattern?
    pub fn matches(&self, uri: &TreeUri) -> bool {
        let n = self.segments.len();
        if uri.segments.len() < n || (!self.subtree && uri.segments.len() != n) {
            return false;
        }
        self.segments
            .iter()
            .zip(&uri.segments)
            .all(|(p, s)| match p {
                PatternSegment::AnyOne => true,
                PatternSegment::Literal(l) => l == s,
            })
    }
}

impl fmt::Display for UriPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(".")?;
        for seg in &self.segments {
            f.write_str("/")?;
            match seg {
                PatternSegment::AnyOne => f.write_str("*")?,
                PatternSegment::Literal(l) => write_escaped(f, l)?,
            }
        }
        if self.subtree {
            f.write_str("/**")?;
        }
        Ok(())
    }
}

impl FromStr for UriPattern {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UriPattern::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn u(s: &str) -> TreeUri {
        TreeUri::parse(s).unwrap()
    }

    #[test]
    fn forms_normalize() {
        assert_eq!(u("./DevInfo/Mod"), u("DevInfo/Mod"));
        assert_eq!(u("./DevInfo/"), u("./DevInfo"));
        assert_eq!(u("./DevInfo/Mod").to_string(), "./DevInfo/Mod");
        assert_eq!(u("DevInfo/Mod").to_relative_string(), "DevInfo/Mod");
        assert!(u(".").is_root());
        assert!(u("./").is_root());
        assert_eq!(u(".").to_string(), ".");
        assert_eq!(u("./FUMO/fw1/State").depth(), 3);
        assert_eq!(u("./FUMO/fw1/State").name(), Some("State"));
        assert_eq!(u("./FUMO/fw1/State").segment(1), Some("fw1"));
    }

    #[test]
    fn rejects_bad_shapes() {
        assert_eq!(TreeUri::parse(""), Err(UriError::Empty));
        assert_eq!(TreeUri::parse("/A"), Err(UriError::LeadingSlash));
        assert_eq!(
            TreeUri::parse("./A//B"),
            Err(UriError::EmptySegment { index: 1 })
        );
        assert!(matches!(
            TreeUri::parse("./A/../B"),
            Err(UriError::DotSegment { .. })
        ));
        assert!(matches!(
            TreeUri::parse("A/./B"),
            Err(UriError::DotSegment { .. })
        ));
        assert!(TreeUri::parse(".//").is_err());
        assert!(TreeUri::parse("./A//").is_err());
        assert!(TreeUri::parse("./A\u{1}").is_err());
        assert!(TreeUri::parse("?prop=ACL").is_err());
    }

    #[test]
    fn limits_are_named() {
        let limits = UriLimits {
            max_depth: 2,
            max_segment_len: 4,
            max_total_len: 20,
        };
        let err = |s| TreeUri::parse_with(s, &limits).unwrap_err();
        assert!(matches!(
            err("./A/B/C"),
            UriError::LimitExceeded {
                limit: UriLimit::Depth,
                max: 2,
                actual: 3
            }
        ));
        assert!(matches!(
            err("./ABCDE"),
            UriError::LimitExceeded {
                limit: UriLimit::SegmentLength,
                ..
            }
        ));
        assert!(matches!(
            err("./A/B/C/D/E/F/G/H/I/J/K"),
            UriError::LimitExceeded {
                limit: UriLimit::TotalLength,
                ..
            }
        ));
        assert!(err("./ABCDE").to_string().contains("max_segment_len"));
        let deep = TreeUri::parse_with("./A/B", &limits).unwrap();
        assert!(matches!(
            deep.join_with("C", &limits),
            Err(UriError::LimitExceeded {
                limit: UriLimit::Depth,
                ..
            })
        ));
    }

    #[test]
    fn escaping() {
        let x = u("./Vendor/a%2Fb/c%25d/e%3Ff/%41");
        assert_eq!(x.segment(1), Some("a/b"));
        assert_eq!(x.segment(2), Some("c%d"));
        assert_eq!(x.segment(3), Some("e?f"));
        assert_eq!(x.segment(4), Some("%41"));
        assert_eq!(x.to_string(), "./Vendor/a%2Fb/c%25d/e%3Ff/%2541");
        assert_eq!(u(&x.to_string()), x);
        let j = u("./A").join("x/y").unwrap();
        assert_eq!(j.to_string(), "./A/x%2Fy");
        assert_eq!(j.depth(), 2);
    }

    #[test]
    fn queries() {
        let q = u("./DMAcc/xyzInc?prop=ACL");
        assert_eq!(q.query(), Some(&UriQuery::Prop(Property::Acl)));
        assert_eq!(q.to_string(), "./DMAcc/xyzInc?prop=ACL");
        assert_eq!(u("DMAcc?prop=tstamp").to_string(), "./DMAcc?prop=TStamp");
        assert_eq!(
            u(".?list=Struct").query(),
            Some(&UriQuery::List(ListKind::Struct))
        );
        assert_eq!(
            u("./FUMO?list=StructData").query(),
            Some(&UriQuery::List(ListKind::StructData))
        );
        let t = u("./FUMO?list=TNDS+ACL+Value");
        assert_eq!(
            t.query(),
            Some(&UriQuery::List(ListKind::Tnds(Some("ACL+Value".into()))))
        );
        assert_eq!(u(&t.to_string()), t);
        assert!(TreeUri::parse("./A?prop=Owner").is_err());
        assert!(TreeUri::parse("./A?foo=bar").is_err());
        assert!(TreeUri::parse("./A?list=Everything").is_err());
        assert_eq!(q.without_query(), u("./DMAcc/xyzInc"));
    }

    #[test]
    fn relations() {
        let fumo = u("./FUMO");
        let state = u("./FUMO/fw1/State");
        assert!(state.starts_with(&fumo));
        assert!(state.starts_with(&state));
        assert!(fumo.is_ancestor_of(&state));
        assert!(!state.is_ancestor_of(&state));
        assert!(TreeUri::root().is_ancestor_of(&fumo));
        assert!(!u("./FUMOX").starts_with(&fumo));
        assert_eq!(state.parent().unwrap(), u("./FUMO/fw1"));
        assert_eq!(fumo.parent().unwrap(), TreeUri::root());
        assert_eq!(TreeUri::root().parent(), None);
        assert_eq!(
            TreeUri::from_segments(["FUMO", "fw1", "State"], &UriLimits::default()).unwrap(),
            state
        );
        assert!(fumo.join("").is_err());
        assert!(fumo.join("..").is_err());
    }

    #[test]
    fn patterns() {
        let one = UriPattern::parse("./DevInfo/*").unwrap();
        assert!(one.matches(&u("./DevInfo/Mod")));
        assert!(!one.matches(&u("./DevInfo")));
        assert!(!one.matches(&u("./DevInfo/Ext/X")));
        let sub = UriPattern::parse("./Vendor/App42/**").unwrap();
        assert!(sub.is_subtree());
        assert!(sub.matches(&u("./Vendor/App42")));
        assert!(sub.matches(&u("./Vendor/App42/a/b/c?prop=ACL")));
        assert!(!sub.matches(&u("./Vendor/App43/a")));
        let mid = UriPattern::parse("./FUMO/*/State").unwrap();
        assert!(mid.matches(&u("./FUMO/fw1/State")));
        assert!(!mid.matches(&u("./FUMO/fw1/PkgName")));
        let exact = UriPattern::parse("./DevInfo/Mod").unwrap();
        assert!(exact.matches(&u("DevInfo/Mod")));
        assert!(!exact.matches(&u("./DevInfo/Man")));
        assert!(UriPattern::parse("./**").unwrap().matches(&TreeUri::root()));
        assert_eq!(
            UriPattern::parse("./A/**/B"),
            Err(UriError::MisplacedSubtreeWildcard)
        );
        assert_eq!(sub.to_string(), "./Vendor/App42/**");
        assert_eq!(mid.to_string(), "./FUMO/*/State");
        assert!(UriPattern::from_uri(&u("./A"), true).matches(&u("./A/B")));
    }

    #[test]
    fn subtree_matches_need_a_subtree_pattern() {
        let sub = UriPattern::parse("./DevInfo/**").unwrap();
        assert!(sub.matches_subtree(&u("./DevInfo/Ext")));
        assert!(sub.matches_subtree(&u("./DevInfo")));
        assert!(!sub.matches_subtree(&u("./DevDetail")));
        assert!(!sub.matches_subtree(&TreeUri::root()));
        let children = UriPattern::parse("./DevInfo/*").unwrap();
        assert!(children.matches(&u("./DevInfo/Ext")));
        assert!(!children.matches_subtree(&u("./DevInfo/Ext")));
        let wild = UriPattern::parse("./DMAcc/*/**").unwrap();
        assert!(wild.matches_subtree(&u("./DMAcc/srv1")));
        assert!(!wild.matches_subtree(&u("./DMAcc")));
    }
}
