//! Typed values shared by the protocols.
//!
//! One enum of value types covers OMA DM formats, TR-069 `xsi:type`s and LwM2M resource
//! types (specs/tr069.md §7, specs/lwm2m.md §7). Values travel as their wire text so a
//! value is stored and forwarded exactly as the device or the application gave it; typed
//! access goes through [`TypedValue::to_dm`] (and later the other adapters' equivalents).

use std::fmt;

use omnidm_tree::{Format, FormatError, NodeValue};
use serde::{Deserialize, Serialize};

/// The type of a node value, protocol-neutral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Text (DM `chr`, TR-069 `string`, LwM2M String).
    String,
    /// Signed integer (DM `int` is 32-bit; TR-069 `int`/`long`; LwM2M Integer is 64-bit).
    Int,
    /// Unsigned integer (TR-069 `unsignedInt`/`unsignedLong`, LwM2M Unsigned Integer).
    UnsignedInt,
    /// Boolean.
    Bool,
    /// Floating point (DM `float`, LwM2M Float).
    Float,
    /// Binary data carried base64-encoded (DM `b64`/`bin`, TR-069 `base64`, LwM2M Opaque).
    Base64,
    /// XML text (DM `xml`).
    Xml,
    /// Calendar date (DM `date`).
    Date,
    /// Time of day (DM `time`).
    Time,
    /// Date and time (TR-069 `dateTime`, LwM2M Time).
    DateTime,
    /// LwM2M object link `oid:iid`.
    ObjLink,
    /// Interior node; the text lists child names separated by `/`.
    Node,
    /// No value (DM `null`, LwM2M executable resource).
    Null,
}

impl ValueType {
    /// The OMA DM format for this type (`Base64` → `b64`; types DM lacks become `chr`).
    pub fn dm_format(self) -> Format {
        match self {
            ValueType::String | ValueType::DateTime | ValueType::ObjLink => Format::Chr,
            ValueType::Int | ValueType::UnsignedInt => Format::Int,
            ValueType::Bool => Format::Bool,
            ValueType::Float => Format::Float,
            ValueType::Base64 => Format::B64,
            ValueType::Xml => Format::Xml,
            ValueType::Date => Format::Date,
            ValueType::Time => Format::Time,
            ValueType::Node => Format::Node,
            ValueType::Null => Format::Null,
        }
    }

    /// The type of an OMA DM format (`bin` travels as base64 text, so it maps to `Base64`).
    pub fn from_dm_format(f: Format) -> ValueType {
        match f {
            Format::B64 | Format::Bin => ValueType::Base64,
            Format::Bool => ValueType::Bool,
            Format::Chr => ValueType::String,
            Format::Int => ValueType::Int,
            Format::Node => ValueType::Node,
            Format::Null => ValueType::Null,
            Format::Xml => ValueType::Xml,
            Format::Date => ValueType::Date,
            Format::Time => ValueType::Time,
            Format::Float => ValueType::Float,
        }
    }

    /// Stable snake_case name used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Int => "int",
            ValueType::UnsignedInt => "unsigned_int",
            ValueType::Bool => "bool",
            ValueType::Float => "float",
            ValueType::Base64 => "base64",
            ValueType::Xml => "xml",
            ValueType::Date => "date",
            ValueType::Time => "time",
            ValueType::DateTime => "date_time",
            ValueType::ObjLink => "obj_link",
            ValueType::Node => "node",
            ValueType::Null => "null",
        }
    }

    /// Inverse of [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<ValueType> {
        use ValueType::*;
        [
            String,
            Int,
            UnsignedInt,
            Bool,
            Float,
            Base64,
            Xml,
            Date,
            Time,
            DateTime,
            ObjLink,
            Node,
            Null,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value with its type, as wire text, and an optional MIME type (DM `Meta/Type`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedValue {
    /// The type.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// The value as text (base64 for binary types).
    pub data: String,
    /// MIME type, when the protocol carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

impl TypedValue {
    /// A text value.
    pub fn string(s: impl Into<String>) -> TypedValue {
        TypedValue {
            value_type: ValueType::String,
            data: s.into(),
            mime_type: None,
        }
    }

    /// An integer value.
    pub fn int(v: i64) -> TypedValue {
        TypedValue {
            value_type: ValueType::Int,
            data: v.to_string(),
            mime_type: None,
        }
    }

    /// From an OMA DM node value.
    pub fn from_dm(v: &NodeValue) -> TypedValue {
        TypedValue {
            value_type: ValueType::from_dm_format(v.wire_format()),
            data: v.to_wire().into_owned(),
            mime_type: None,
        }
    }

    /// The OMA DM node value (validates the text against the format).
    pub fn to_dm(&self) -> Result<NodeValue, FormatError> {
        NodeValue::parse(self.value_type.dm_format(), &self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dm_round_trip_and_names() {
        let v = TypedValue::int(42);
        assert_eq!(v.to_dm().unwrap(), NodeValue::Int(42));
        assert_eq!(TypedValue::from_dm(&NodeValue::Int(42)), v);
        assert_eq!(
            TypedValue::from_dm(&NodeValue::Bin(vec![1, 2])).value_type,
            ValueType::Base64
        );
        for f in Format::ALL {
            let t = ValueType::from_dm_format(f);
            assert_eq!(ValueType::parse(t.as_str()), Some(t));
        }
        let j = serde_json::to_string(&TypedValue::string("x")).unwrap();
        assert_eq!(j, r#"{"type":"string","data":"x"}"#);
    }
}
