//! The protocol buffers wire format, as much of it as CRIU's RPC uses: varints (int32, uint32,
//! bool, enums) and length-delimited fields (strings, nested messages), in proto2 encoding
//! (<https://protobuf.dev/programming-guides/encoding/>). Written by hand instead of generated:
//! the RPC is a dozen messages, and a generator would bring a protobuf runtime into the binary
//! for them (see `mod.rs`).

/// Wire type of a varint field.
const VARINT: u64 = 0;
/// Wire type of a 64-bit field (skipped when decoding).
const FIXED64: u64 = 1;
/// Wire type of a length-delimited field.
const LEN: u64 = 2;
/// Wire type of a 32-bit field (skipped when decoding).
const FIXED32: u64 = 5;

/// Builds one message's bytes, field by field.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn tag(&mut self, field: u32, wire: u64) {
        self.varint(u64::from(field) << 3 | wire);
    }

    /// An `int32` (or enum): negative values take ten bytes, sign-extended, as protobuf says.
    pub(crate) fn int32(&mut self, field: u32, v: i32) {
        self.tag(field, VARINT);
        self.varint(i64::from(v) as u64);
    }

    /// A `uint32`.
    pub(crate) fn uint32(&mut self, field: u32, v: u32) {
        self.tag(field, VARINT);
        self.varint(u64::from(v));
    }

    /// A `bool`.
    pub(crate) fn bool(&mut self, field: u32, v: bool) {
        self.tag(field, VARINT);
        self.varint(u64::from(v));
    }

    /// A `bool` written only when true (an unset optional bool means false to CRIU).
    pub(crate) fn flag(&mut self, field: u32, v: bool) {
        if v {
            self.bool(field, true);
        }
    }

    /// A `string` or `bytes`.
    pub(crate) fn bytes(&mut self, field: u32, v: &[u8]) {
        self.tag(field, LEN);
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    /// A `string`.
    pub(crate) fn string(&mut self, field: u32, v: &str) {
        self.bytes(field, v.as_bytes());
    }

    /// A nested message.
    pub(crate) fn message(&mut self, field: u32, build: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        build(&mut inner);
        self.bytes(field, &inner.buf);
    }

    /// The encoded message.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// One decoded field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// A varint: int32, uint32, bool, enum.
    Varint(u64),
    /// Length-delimited: a string or a nested message.
    Bytes(&'a [u8]),
    /// A fixed-width field (CRIU's RPC has none; skipped).
    Fixed,
}

impl Value<'_> {
    /// As an `int32` (protobuf truncates to the low 32 bits).
    pub(crate) fn as_i32(&self) -> Option<i32> {
        match *self {
            Value::Varint(v) => Some(v as i32),
            _ => None,
        }
    }

    /// As a `bool`.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Varint(v) => Some(v != 0),
            _ => None,
        }
    }
}

/// The message is not valid protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf at byte {offset}")]
pub struct Malformed {
    /// Where decoding stopped.
    pub offset: usize,
}

/// Iterates over a message's fields as (field number, value).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(self.malformed())?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.malformed())
    }

    fn malformed(&self) -> Malformed {
        Malformed { offset: self.pos }
    }

    fn skip(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or(self.malformed())?;
        let out = self.buf.get(self.pos..end).ok_or(self.malformed())?;
        self.pos = end;
        Ok(out)
    }

    /// The next field, `None` at the end.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, Malformed> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| self.malformed())?;
        let value = match key & 7 {
            VARINT => Value::Varint(self.varint()?),
            LEN => {
                let n = usize::try_from(self.varint()?).map_err(|_| self.malformed())?;
                Value::Bytes(self.skip(n)?)
            }
            FIXED64 => {
                self.skip(8)?;
                Value::Fixed
            }
            FIXED32 => {
                self.skip(4)?;
                Value::Fixed
            }
            _ => return Err(self.malformed()),
        };
        Ok(Some((field, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_protobuf_does() {
        // Reference bytes from the protobuf encoding guide: field 1 = 150 is 08 96 01, field 2 =
        // "testing" is 12 07 74 65 73 74 69 6e 67.
        let mut w = Writer::default();
        w.int32(1, 150);
        w.string(2, "testing");
        assert_eq!(
            w.finish(),
            [0x08, 0x96, 0x01, 0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        // A negative int32 is a ten-byte varint.
        let mut w = Writer::default();
        w.int32(1, -1);
        assert_eq!(
            w.finish(),
            [8, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1]
        );
    }

    #[test]
    fn decodes_what_it_encodes_and_skips_fixed_fields() {
        let mut w = Writer::default();
        w.int32(1, -1);
        w.message(5, |m| m.bool(2, true));
        let mut bytes = w.finish();
        bytes.extend_from_slice(&[0x31, 1, 2, 3, 4, 5, 6, 7, 8]); // field 6, fixed64
        let mut r = Reader::new(&bytes);
        let (f, v) = r.next_field().expect("test").expect("test");
        assert_eq!((f, v.as_i32()), (1, Some(-1)));
        let (f, v) = r.next_field().expect("test").expect("test");
        assert_eq!((f, v), (5, Value::Bytes(&[0x10, 1])));
        assert_eq!(r.next_field().expect("test"), Some((6, Value::Fixed)));
        assert_eq!(r.next_field().expect("test"), None);
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(Reader::new(&[0x12, 5, b'a']).next_field().is_err());
        assert!(Reader::new(&[0x08, 0x80]).next_field().is_err());
    }
}
