//! The customer id → key map of an orders import's writer. Every order row of the file is looked
//! up here, so the lookup is the writer's hot path: ids of up to [`INLINE`] bytes (every id a
//! shop export uses in practice) are kept inside the table's buckets, so a lookup reads one
//! bucket instead of a bucket and then a separate heap allocation to compare the text.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

use rustc_hash::FxHashMap;

/// Ids up to this many bytes are stored inline.
const INLINE: usize = 22;

/// One customer id as a map key: inline when short, boxed otherwise.
#[derive(Clone)]
enum Id {
    Inline { len: u8, bytes: [u8; INLINE] },
    Boxed(Box<str>),
}

impl Id {
    fn new(s: &str) -> Self {
        let b = s.as_bytes();
        if b.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..b.len()].copy_from_slice(b);
            Id::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Id::Boxed(s.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes were copied whole from a `str`, so they are valid UTF-8.
            Id::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Id::Boxed(s) => s,
        }
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Id {}

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Borrow<str> for Id {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// Customer ids to their integer keys.
#[derive(Default)]
pub(crate) struct IdKeys {
    map: FxHashMap<Id, i64>,
}

impl IdKeys {
    pub(crate) fn get(&self, id: &str) -> Option<i64> {
        self.map.get(id).copied()
    }

    pub(crate) fn insert(&mut self, id: &str, key: i64) {
        self.map.insert(Id::new(id), key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_and_unicode_ids_find_their_keys_and_only_theirs() {
        let ids = [
            "",
            "1",
            "customer-000000000001",
            "customer-0000000000001",  // 22 bytes: the longest inline id
            "customer-00000000000001", // 23 bytes: boxed
            "kundin-ä-ß-東京-000000000000000000000042",
            "a\0b",
        ];
        let mut m = IdKeys::default();
        for (i, id) in ids.iter().enumerate() {
            m.insert(id, i as i64 + 1);
        }
        assert_eq!(m.len(), ids.len());
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(m.get(id), Some(i as i64 + 1), "{id:?}");
        }
        for missing in ["2", "customer-00000000000000", "a\0", "a\0b\0", "kundin-ä"] {
            assert_eq!(m.get(missing), None, "{missing:?}");
        }
        // A second insert of an id replaces its key.
        m.insert("1", 99);
        assert_eq!(m.get("1"), Some(99));
        assert_eq!(m.len(), ids.len());
    }
}
