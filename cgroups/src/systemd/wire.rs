//! The D-Bus wire format, only as much as talking to systemd needs (D-Bus specification,
//! "Message Protocol": little-endian messages, the header's field array, type alignment).
//! Values are built and read by signature; there is no reflection and no async runtime.

use std::fmt;

/// A D-Bus value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Byte(u8),
    Bool(bool),
    U32(u32),
    U64(u64),
    Str(String),
    Path(String),
    Sig(String),
    /// Element signature, elements (the signature is kept for empty arrays).
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub(crate) fn str(s: &str) -> Self {
        Self::Str(s.to_string())
    }

    /// The value's signature.
    pub(crate) fn signature(&self) -> String {
        match self {
            Self::Byte(_) => "y".into(),
            Self::Bool(_) => "b".into(),
            Self::U32(_) => "u".into(),
            Self::U64(_) => "t".into(),
            Self::Str(_) => "s".into(),
            Self::Path(_) => "o".into(),
            Self::Sig(_) => "g".into(),
            Self::Array(e, _) => format!("a{e}"),
            Self::Struct(v) => format!("({})", v.iter().map(Self::signature).collect::<String>()),
            Self::Variant(_) => "v".into(),
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) | Self::Path(s) | Self::Sig(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_u32(&self) -> Option<u32> {
        match self {
            Self::U32(v) => Some(*v),
            _ => None,
        }
    }
}

/// systemd's property value syntax in `systemctl show` terms, for logs and tests.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Byte(v) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::U32(v) => write!(f, "{v}"),
            Self::U64(v) => write!(f, "{v}"),
            Self::Str(s) | Self::Path(s) | Self::Sig(s) => write!(f, "{s:?}"),
            Self::Array(_, v) | Self::Struct(v) => {
                let open = if matches!(self, Self::Array(..)) {
                    "["
                } else {
                    "("
                };
                f.write_str(open)?;
                for (i, e) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{e}")?;
                }
                f.write_str(if open == "[" { "]" } else { ")" })
            }
            Self::Variant(v) => write!(f, "{v}"),
        }
    }
}

fn align_of(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b't' | b'x' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

/// Appends values to a message buffer; offsets are from the message's first byte.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while self.buf.len() % align != 0 {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn sig(&mut self, s: &str) {
        // Signatures are at most 255 bytes (the spec's limit); ours are a few.
        self.buf.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    pub(crate) fn put(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::U32(n) => self.u32(*n),
            Value::U64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::Str(s) | Value::Path(s) => {
                self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Sig(s) => self.sig(s),
            Value::Array(elem, items) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                self.pad(align_of(elem.as_bytes().first().copied().unwrap_or(b'y')));
                let start = self.buf.len();
                for i in items {
                    self.put(i);
                }
                let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.put(f);
                }
            }
            Value::Variant(inner) => {
                self.sig(&inner.signature());
                self.put(inner);
            }
        }
    }
}

/// A malformed message from the bus.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

/// Reads values of a given signature out of a message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// `pos` is where reading starts; alignment counts from `buf`'s first byte.
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Self {
        Self { buf, pos }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    fn pad(&mut self, align: usize) {
        self.pos = self.pos.div_ceil(align) * align;
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or(Malformed("length"))?;
        let s = self.buf.get(self.pos..end).ok_or(Malformed("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, Malformed> {
        self.pad(4);
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn text(&mut self, len: usize) -> Result<String, Malformed> {
        let b = self.take(len + 1)?;
        String::from_utf8(b[..len].to_vec()).map_err(|_| Malformed("string is not UTF-8"))
    }

    /// Reads every complete type in `sig`.
    pub(crate) fn values(&mut self, sig: &str) -> Result<Vec<Value>, Malformed> {
        let mut out = Vec::new();
        let mut rest = sig.as_bytes();
        while !rest.is_empty() {
            let (one, tail) = split_type(rest)?;
            out.push(self.value(one)?);
            rest = tail;
        }
        Ok(out)
    }

    /// Reads one value of the single complete type `t`.
    fn value(&mut self, t: &[u8]) -> Result<Value, Malformed> {
        Ok(match t[0] {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => Value::Bool(self.u32()? != 0),
            b'u' | b'i' | b'h' => Value::U32(self.u32()?),
            b't' | b'x' => {
                self.pad(8);
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::U64(u64::from_le_bytes(a))
            }
            b's' | b'o' => {
                let len = self.u32()? as usize;
                let s = self.text(len)?;
                if t[0] == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => {
                let len = usize::from(self.take(1)?[0]);
                Value::Sig(self.text(len)?)
            }
            b'v' => {
                let len = usize::from(self.take(1)?[0]);
                let sig = self.text(len)?;
                let (one, tail) = split_type(sig.as_bytes())?;
                if !tail.is_empty() {
                    return Err(Malformed("variant holds more than one type"));
                }
                Value::Variant(Box::new(self.value(one)?))
            }
            b'a' => {
                let len = self.u32()? as usize;
                let elem = &t[1..];
                self.pad(align_of(elem[0]));
                let end = self.pos.checked_add(len).ok_or(Malformed("length"))?;
                if end > self.buf.len() {
                    return Err(Malformed("array past the end"));
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem)?);
                }
                let sig = String::from_utf8_lossy(elem).into_owned();
                Value::Array(sig, items)
            }
            b'(' | b'{' => {
                self.pad(8);
                let inner = &t[1..t.len() - 1];
                let sig = std::str::from_utf8(inner).map_err(|_| Malformed("signature"))?;
                Value::Struct(self.values(sig)?)
            }
            _ => return Err(Malformed("unsupported type in signature")),
        })
    }
}

/// Splits the first complete type off a signature.
fn split_type(sig: &[u8]) -> Result<(&[u8], &[u8]), Malformed> {
    let end = type_end(sig, 0)?;
    Ok(sig.split_at(end))
}

fn type_end(sig: &[u8], at: usize) -> Result<usize, Malformed> {
    match sig.get(at) {
        None => Err(Malformed("incomplete signature")),
        Some(b'a') => type_end(sig, at + 1),
        Some(&open @ (b'(' | b'{')) => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut i = at + 1;
            while sig.get(i) != Some(&close) {
                if sig.get(i).is_none() {
                    return Err(Malformed("unclosed struct in signature"));
                }
                i = type_end(sig, i)?;
            }
            Ok(i + 1)
        }
        Some(_) => Ok(at + 1),
    }
}

/// Message types (D-Bus specification, "Message Types").
pub(crate) const METHOD_CALL: u8 = 1;
pub(crate) const METHOD_RETURN: u8 = 2;
pub(crate) const ERROR: u8 = 3;
pub(crate) const SIGNAL: u8 = 4;

/// Header field codes.
const PATH: u8 = 1;
const INTERFACE: u8 = 2;
const MEMBER: u8 = 3;
const ERROR_NAME: u8 = 4;
const REPLY_SERIAL: u8 = 5;
const DESTINATION: u8 = 6;
const SIGNATURE: u8 = 8;

/// A method call to marshal.
pub(crate) struct Call<'a> {
    pub(crate) destination: &'a str,
    pub(crate) path: &'a str,
    pub(crate) interface: &'a str,
    pub(crate) member: &'a str,
    pub(crate) args: &'a [Value],
}

impl Call<'_> {
    /// The whole message: fixed header, header fields, padding, body.
    pub(crate) fn marshal(&self, serial: u32) -> Vec<u8> {
        let mut body = Writer::default();
        for a in self.args {
            body.put(a);
        }
        let sig: String = self.args.iter().map(Value::signature).collect();
        let field = |code: u8, v: Value| {
            Value::Struct(vec![Value::Byte(code), Value::Variant(Box::new(v))])
        };
        let mut fields = vec![
            field(PATH, Value::Path(self.path.into())),
            field(INTERFACE, Value::str(self.interface)),
            field(MEMBER, Value::str(self.member)),
            field(DESTINATION, Value::str(self.destination)),
        ];
        if !sig.is_empty() {
            fields.push(field(SIGNATURE, Value::Sig(sig)));
        }
        let mut w = Writer::default();
        w.buf.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
        w.u32(u32::try_from(body.buf.len()).unwrap_or(u32::MAX));
        w.u32(serial);
        w.put(&Value::Array("(yv)".into(), fields));
        w.pad(8);
        w.buf.extend_from_slice(&body.buf);
        w.buf
    }
}

/// A received message, with the header fields hako looks at.
#[derive(Debug, Default)]
pub(crate) struct Message {
    pub(crate) kind: u8,
    pub(crate) reply_serial: Option<u32>,
    pub(crate) interface: Option<String>,
    pub(crate) member: Option<String>,
    pub(crate) error_name: Option<String>,
    pub(crate) body: Vec<Value>,
}

/// The total length of the message whose first 16 bytes are `head`.
pub(crate) fn message_len(head: &[u8; 16]) -> Result<usize, Malformed> {
    if head[0] != b'l' {
        return Err(Malformed("not a little-endian message"));
    }
    let word =
        |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]) as usize;
    let (body, fields) = (word(4), word(12));
    Ok((16 + fields).div_ceil(8) * 8 + body)
}

impl Message {
    pub(crate) fn parse(buf: &[u8]) -> Result<Self, Malformed> {
        let mut r = Reader::new(buf, 0);
        let fixed = r.take(4)?;
        if fixed[0] != b'l' {
            return Err(Malformed("not a little-endian message"));
        }
        let kind = fixed[1];
        let body_len = r.u32()? as usize;
        let _serial = r.u32()?;
        let mut m = Message {
            kind,
            ..Default::default()
        };
        let mut sig = String::new();
        let [Value::Array(_, fields)] = &r.values("a(yv)")?[..] else {
            return Err(Malformed("header fields"));
        };
        for f in fields {
            let Value::Struct(pair) = f else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (pair.first(), pair.get(1))
            else {
                continue;
            };
            let text = v.as_str().map(str::to_string);
            match *code {
                REPLY_SERIAL => m.reply_serial = v.as_u32(),
                INTERFACE => m.interface = text,
                MEMBER => m.member = text,
                ERROR_NAME => m.error_name = text,
                SIGNATURE => sig = text.unwrap_or_default(),
                _ => {}
            }
        }
        r.pad(8);
        let body_start = r.pos();
        if buf.len() < body_start + body_len {
            return Err(Malformed("body truncated"));
        }
        m.body = Reader::new(&buf[..body_start + body_len], body_start).values(&sig)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Hello` to the bus daemon, serial 1, laid out by hand from the specification
    /// (fields at 8-byte boundaries, array length 109 = 125 - 16, body at 128); a real
    /// dbus-daemon accepts it (the `bus` module's test).
    const HELLO: &[u8] = b"l\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00\x6d\x00\x00\x00\
\x01\x01o\x00\x15\x00\x00\x00/org/freedesktop/DBus\x00\x00\x00\
\x02\x01s\x00\x14\x00\x00\x00org.freedesktop.DBus\x00\x00\x00\x00\
\x03\x01s\x00\x05\x00\x00\x00Hello\x00\x00\x00\
\x06\x01s\x00\x14\x00\x00\x00org.freedesktop.DBus\x00\x00\x00\x00";

    #[test]
    fn hello_matches_the_recorded_bytes() {
        let call = Call {
            destination: "org.freedesktop.DBus",
            path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus",
            member: "Hello",
            args: &[],
        };
        assert_eq!(call.marshal(1), HELLO);
        assert_eq!(
            message_len(HELLO[..16].try_into().unwrap()).unwrap(),
            HELLO.len()
        );
    }

    #[test]
    fn values_align_and_round_trip() {
        let props = Value::Array(
            "(sv)".into(),
            vec![
                Value::Struct(vec![
                    Value::str("Delegate"),
                    Value::Variant(Box::new(Value::Bool(true))),
                ]),
                Value::Struct(vec![
                    Value::str("PIDs"),
                    Value::Variant(Box::new(Value::Array("u".into(), vec![Value::U32(42)]))),
                ]),
                Value::Struct(vec![
                    Value::str("MemoryMax"),
                    Value::Variant(Box::new(Value::U64(1 << 26))),
                ]),
                Value::Struct(vec![
                    Value::str("DeviceAllow"),
                    Value::Variant(Box::new(Value::Array("(ss)".into(), vec![]))),
                ]),
            ],
        );
        let args = [
            Value::str("x.scope"),
            Value::str("replace"),
            props,
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let mut w = Writer::default();
        for a in &args {
            w.put(a);
        }
        let sig: String = args.iter().map(Value::signature).collect();
        assert_eq!(sig, "ssa(sv)a(sa(sv))");
        // "x.scope": length 7, bytes, NUL; "replace" aligned to 4 at offset 12.
        assert_eq!(&w.buf[..16], b"\x07\x00\x00\x00x.scope\x00\x07\x00\x00\x00");
        // The 64-bit MemoryMax sits on an 8-byte boundary.
        let at = w.buf.windows(9).position(|s| s == b"MemoryMax").unwrap();
        let value_at = (at + 10 + 3).div_ceil(8) * 8;
        assert_eq!(&w.buf[value_at..value_at + 8], &(1u64 << 26).to_le_bytes());
        let back = Reader::new(&w.buf, 0).values(&sig).unwrap();
        assert_eq!(back, args);
    }

    #[test]
    fn a_reply_parses() {
        // A method return, reply serial 2, body "o" = "/org/freedesktop/systemd1/job/7".
        let mut w = Writer::default();
        w.buf.extend_from_slice(&[b'l', METHOD_RETURN, 1, 1]);
        let body = {
            let mut b = Writer::default();
            b.put(&Value::Path("/org/freedesktop/systemd1/job/7".into()));
            b.buf
        };
        w.u32(body.len() as u32);
        w.u32(9);
        let f = |c, v| Value::Struct(vec![Value::Byte(c), Value::Variant(Box::new(v))]);
        w.put(&Value::Array(
            "(yv)".into(),
            vec![
                f(REPLY_SERIAL, Value::U32(2)),
                f(SIGNATURE, Value::Sig("o".into())),
            ],
        ));
        w.pad(8);
        w.buf.extend_from_slice(&body);
        let m = Message::parse(&w.buf).unwrap();
        assert_eq!(m.kind, METHOD_RETURN);
        assert_eq!(m.reply_serial, Some(2));
        assert_eq!(
            m.body,
            vec![Value::Path("/org/freedesktop/systemd1/job/7".into())]
        );
        assert_eq!(
            message_len(w.buf[..16].try_into().unwrap()).unwrap(),
            w.buf.len()
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Message::parse(b"l\x02\x00\x01\xff\xff\xff\xff").is_err());
        assert!(Reader::new(b"\x05\x00", 0).values("s").is_err());
        assert!(Reader::new(b"", 0).values("a(s").is_err());
    }
}
