//! What travels between workers: records as bytes, one [`Chunk`] per destination and input
//! batch. Within a process timely moves chunks by pointer; between processes bincode
//! writes each byte buffer with one length and one copy (no per-record serde).

use serde::de::{Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A byte buffer that serializes as one `bytes` item (bincode: a length and a copy),
/// where `Vec<u8>` would serialize byte by byte.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte buffer")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Bytes, A::Error> {
                let mut v = Vec::new();
                while let Some(b) = a.next_element()? {
                    v.push(b);
                }
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// Records from worker `src` for worker `dest`: `n` keys of `key_size` bytes and, for
/// operations with values, `n` values of `value_size` bytes. Replies use the same type,
/// with the answers in `vals`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Chunk {
    pub(crate) dest: u32,
    pub(crate) src: u32,
    /// The sender's batch number: chunks of one batch share it, and sorting a timestamp's
    /// chunks by `(src, seq)` gives every worker the same order.
    pub(crate) seq: u64,
    pub(crate) key_size: u32,
    pub(crate) value_size: u32,
    pub(crate) n: u32,
    pub(crate) keys: Bytes,
    pub(crate) vals: Bytes,
    /// False on a reply whose batch failed on the shard (its error is on that worker).
    pub(crate) ok: bool,
}
