//! AMF0, the value encoding of RTMP commands and metadata.
//!
//! Only AMF0 is spoken: every publisher and ingest in use negotiates it (objectEncoding 0).
//! Decoding is defensive: nesting is bounded and every length is checked against the input,
//! so arbitrary bytes from the network yield an error, never a panic or a huge allocation.

use bytes::{Buf, BufMut};
use thiserror::Error;

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;
const DATE: u8 = 0x0b;
const LONG_STRING: u8 = 0x0c;
const UNSUPPORTED: u8 = 0x0d;
const TYPED_OBJECT: u8 = 0x10;

/// Deepest nesting accepted from a peer: real commands nest two or three levels.
const MAX_DEPTH: usize = 32;

/// One AMF0 value.
///
/// Objects and ECMA arrays keep their properties in wire order, because some servers
/// (and humans reading captures) care about the order of `connect` fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// IEEE-754 double; AMF0 has no integer type.
    Number(f64),
    /// `true` or `false`, one byte on the wire.
    Boolean(bool),
    /// UTF-8 text; encoded as a long string when longer than 65535 bytes.
    String(String),
    /// Anonymous object (also what a typed object decodes to; the class name is dropped).
    Object(Vec<(String, Self)>),
    /// `null`, used as the command object of most calls.
    Null,
    /// `undefined`.
    Undefined,
    /// Associative array, the container of `onMetaData`.
    EcmaArray(Vec<(String, Self)>),
    /// Dense array, e.g. Enhanced RTMP's `fourCcList`.
    StrictArray(Vec<Self>),
    /// Milliseconds since the Unix epoch plus a (deprecated) time zone offset in minutes.
    Date {
        /// Milliseconds since 1970-01-01T00:00:00Z.
        millis: f64,
        /// Time zone offset, normally 0.
        time_zone: i16,
    },
    /// The "unsupported" marker some servers put in replies.
    Unsupported,
}

/// Why AMF0 bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Amf0Error {
    /// The input stopped inside a value.
    #[error("AMF0 value truncated")]
    Truncated,
    /// A type marker this decoder does not know (references, AMF3 switch, ...).
    #[error("unsupported AMF0 type marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    /// A string was not valid UTF-8.
    #[error("AMF0 string is not valid UTF-8")]
    InvalidUtf8,
    /// Nesting deeper than any real message uses.
    #[error("AMF0 values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl Value {
    /// Appends the encoding of `self` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Number(n) => {
                out.put_u8(NUMBER);
                out.put_f64(*n);
            }
            Self::Boolean(b) => {
                out.put_u8(BOOLEAN);
                out.put_u8(u8::from(*b));
            }
            Self::String(s) if s.len() > usize::from(u16::MAX) => {
                out.put_u8(LONG_STRING);
                out.put_u32(s.len() as u32);
                out.put_slice(s.as_bytes());
            }
            Self::String(s) => {
                out.put_u8(STRING);
                put_short_string(out, s);
            }
            Self::Object(props) => {
                out.put_u8(OBJECT);
                put_properties(out, props);
            }
            Self::Null => out.put_u8(NULL),
            Self::Undefined => out.put_u8(UNDEFINED),
            Self::EcmaArray(props) => {
                out.put_u8(ECMA_ARRAY);
                out.put_u32(props.len() as u32);
                put_properties(out, props);
            }
            Self::StrictArray(items) => {
                out.put_u8(STRICT_ARRAY);
                out.put_u32(items.len() as u32);
                for item in items {
                    item.encode(out);
                }
            }
            Self::Date { millis, time_zone } => {
                out.put_u8(DATE);
                out.put_f64(*millis);
                out.put_i16(*time_zone);
            }
            Self::Unsupported => out.put_u8(UNSUPPORTED),
        }
    }

    /// Decodes one value from the front of `input`, advancing it.
    pub fn decode(input: &mut &[u8]) -> Result<Self, Amf0Error> {
        decode_value(input, 0)
    }

    /// Decodes every value in `input` (a command or data message body).
    pub fn decode_all(mut input: &[u8]) -> Result<Vec<Self>, Amf0Error> {
        let mut values = Vec::new();
        while !input.is_empty() {
            values.push(Self::decode(&mut input)?);
        }
        Ok(values)
    }

    /// The string inside, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number inside, if this is a number.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The named property of an object or ECMA array.
    pub fn get(&self, name: &str) -> Option<&Self> {
        match self {
            Self::Object(props) | Self::EcmaArray(props) => {
                props.iter().find(|(k, _)| k == name).map(|(_, v)| v)
            }
            _ => None,
        }
    }
}

/// Encodes a sequence of values, the body of a command or data message.
pub fn encode_all(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    for value in values {
        value.encode(&mut out);
    }
    out
}

fn put_short_string(out: &mut Vec<u8>, s: &str) {
    let len = s.len().min(usize::from(u16::MAX));
    out.put_u16(len as u16);
    out.put_slice(&s.as_bytes()[..len]);
}

fn put_properties(out: &mut Vec<u8>, props: &[(String, Value)]) {
    for (name, value) in props {
        put_short_string(out, name);
        value.encode(out);
    }
    out.put_slice(&[0, 0, OBJECT_END]);
}

fn need(input: &[u8], n: usize) -> Result<(), Amf0Error> {
    if input.len() < n {
        Err(Amf0Error::Truncated)
    } else {
        Ok(())
    }
}

fn take_string(input: &mut &[u8], len: usize) -> Result<String, Amf0Error> {
    need(input, len)?;
    let (head, rest) = input.split_at(len);
    *input = rest;
    String::from_utf8(head.to_vec()).map_err(|_| Amf0Error::InvalidUtf8)
}

fn short_string(input: &mut &[u8]) -> Result<String, Amf0Error> {
    need(input, 2)?;
    let len = usize::from(input.get_u16());
    take_string(input, len)
}

fn properties(input: &mut &[u8], depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
    let mut props = Vec::new();
    loop {
        let name = short_string(input)?;
        need(input, 1)?;
        if name.is_empty() && input[0] == OBJECT_END {
            input.advance(1);
            return Ok(props);
        }
        let value = decode_value(input, depth + 1)?;
        props.push((name, value));
    }
}

fn decode_value(input: &mut &[u8], depth: usize) -> Result<Value, Amf0Error> {
    if depth > MAX_DEPTH {
        return Err(Amf0Error::TooDeep);
    }
    need(input, 1)?;
    let marker = input.get_u8();
    Ok(match marker {
        NUMBER => {
            need(input, 8)?;
            Value::Number(input.get_f64())
        }
        BOOLEAN => {
            need(input, 1)?;
            Value::Boolean(input.get_u8() != 0)
        }
        STRING => Value::String(short_string(input)?),
        LONG_STRING => {
            need(input, 4)?;
            let len = input.get_u32() as usize;
            Value::String(take_string(input, len)?)
        }
        OBJECT => Value::Object(properties(input, depth)?),
        TYPED_OBJECT => {
            short_string(input)?;
            Value::Object(properties(input, depth)?)
        }
        NULL => Value::Null,
        UNDEFINED => Value::Undefined,
        UNSUPPORTED => Value::Unsupported,
        ECMA_ARRAY => {
            // The count is advisory (encoders get it wrong); the end marker is what counts.
            need(input, 4)?;
            input.advance(4);
            Value::EcmaArray(properties(input, depth)?)
        }
        STRICT_ARRAY => {
            need(input, 4)?;
            let count = input.get_u32() as usize;
            // Every value takes at least one byte: a count beyond the input is a lie.
            need(input, count)?;
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                items.push(decode_value(input, depth + 1)?);
            }
            Value::StrictArray(items)
        }
        DATE => {
            need(input, 10)?;
            let millis = input.get_f64();
            let time_zone = input.get_i16();
            Value::Date { millis, time_zone }
        }
        other => return Err(Amf0Error::UnsupportedMarker(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(value: Value) {
        let mut bytes = Vec::new();
        value.encode(&mut bytes);
        let mut input = bytes.as_slice();
        assert_eq!(Value::decode(&mut input).unwrap(), value);
        assert!(input.is_empty(), "decoder left {} bytes", input.len());
    }

    #[test]
    fn every_type_round_trips() {
        round_trip(Value::Number(1935.5));
        round_trip(Value::Boolean(true));
        round_trip(Value::Boolean(false));
        round_trip(Value::String("live".into()));
        round_trip(Value::String("x".repeat(70_000)));
        round_trip(Value::Null);
        round_trip(Value::Undefined);
        round_trip(Value::Unsupported);
        round_trip(Value::Date {
            millis: 1.7e12,
            time_zone: 0,
        });
        round_trip(Value::StrictArray(vec![
            Value::String("hvc1".into()),
            Value::String("av01".into()),
        ]));
        round_trip(Value::EcmaArray(vec![
            ("width".into(), Value::Number(1280.0)),
            ("stereo".into(), Value::Boolean(true)),
        ]));
        round_trip(Value::Object(vec![
            ("app".into(), Value::String("live".into())),
            (
                "nested".into(),
                Value::Object(vec![("k".into(), Value::Null)]),
            ),
        ]));
    }

    #[test]
    fn supports_go_away_is_encoded_as_boolean_true() {
        let mut out = Vec::new();
        Value::Object(vec![("supportsGoAway".into(), Value::Boolean(true))]).encode(&mut out);
        let mut expected = vec![OBJECT, 0, 14];
        expected.extend_from_slice(b"supportsGoAway");
        expected.extend_from_slice(&[BOOLEAN, 1, 0, 0, OBJECT_END]);
        assert_eq!(out, expected);
    }

    #[test]
    fn long_string_marker_decodes() {
        let bytes = [LONG_STRING, 0, 0, 0, 2, b'o', b'k'];
        assert_eq!(
            Value::decode(&mut &bytes[..]).unwrap(),
            Value::String("ok".into())
        );
    }

    #[test]
    fn typed_object_decodes_as_object() {
        let mut bytes = vec![TYPED_OBJECT, 0, 1, b'C', 0, 1, b'a'];
        Value::Null.encode(&mut bytes);
        bytes.extend_from_slice(&[0, 0, OBJECT_END]);
        assert_eq!(
            Value::decode(&mut &bytes[..]).unwrap(),
            Value::Object(vec![("a".into(), Value::Null)])
        );
    }

    #[test]
    fn truncated_and_unknown_inputs_are_errors() {
        assert_eq!(
            Value::decode(&mut &[NUMBER, 0, 0][..]),
            Err(Amf0Error::Truncated)
        );
        assert_eq!(
            Value::decode(&mut &[0x11][..]),
            Err(Amf0Error::UnsupportedMarker(0x11))
        );
        assert_eq!(
            Value::decode(&mut &[STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff][..]),
            Err(Amf0Error::Truncated)
        );
        assert_eq!(
            Value::decode(&mut &[STRING, 0, 2, 0xff, 0xfe][..]),
            Err(Amf0Error::InvalidUtf8)
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut bytes = Vec::new();
        for _ in 0..100 {
            bytes.extend_from_slice(&[STRICT_ARRAY, 0, 0, 0, 1]);
        }
        bytes.push(NULL);
        assert_eq!(Value::decode(&mut &bytes[..]), Err(Amf0Error::TooDeep));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Value::decode_all(&bytes);
        }
    }
}
