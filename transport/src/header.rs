//! Message headers: a small map with case-insensitive names, kept in canonical form.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};

/// Headers of a [`Message`](crate::Message).
///
/// go-micro models headers as a Go `map[string]string` whose keys are the canonical
/// MIME form produced by Go's `net/http` (`micro-id` and `MICRO-ID` both become
/// `Micro-Id`). This type behaves the same way: names are compared
/// case-insensitively and stored in canonical form, each name has one value, and
/// inserting an existing name replaces its value.
///
/// It is a short vector while it is short: RPC messages carry about ten headers,
/// and a linear scan over them is faster than hashing. Past a few dozen entries it
/// adds a hash index (keyed randomly per map), so a peer that sends hundreds of
/// thousands of headers costs linear time, never quadratic.
///
/// ```
/// use micro_transport::Header;
///
/// let mut h = Header::new();
/// h.insert("micro-endpoint", "Helloworld.Call");
/// assert_eq!(h.get("Micro-Endpoint"), Some("Helloworld.Call"));
/// assert_eq!(h.iter().next(), Some(("Micro-Endpoint", "Helloworld.Call")));
/// ```
#[derive(Clone, Default)]
pub struct Header {
    /// Names are canonical; the names go-micro and HTTP use on every message are
    /// kept as static strings, so storing them allocates nothing.
    entries: Vec<(Cow<'static, str>, String)>,
    /// Positions of the entries by case-insensitive name, once there are many.
    index: Option<Box<Index>>,
}

/// Entries beyond which lookups go through the hash index.
const INDEX_AT: usize = 32;

/// Entry positions by a case-insensitive hash of the name; a bucket holds every
/// position whose name has that hash (names are compared on lookup).
#[derive(Clone, Debug, Default)]
struct Index {
    hasher: RandomState,
    buckets: HashMap<u64, Vec<usize>>,
}

impl Index {
    fn hash(&self, name: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        for b in name.bytes() {
            h.write_u8(b.to_ascii_lowercase());
        }
        h.finish()
    }

    fn build(entries: &[(Cow<'static, str>, String)]) -> Self {
        let mut ix = Index::default();
        for (i, (k, _)) in entries.iter().enumerate() {
            let h = ix.hash(k);
            ix.buckets.entry(h).or_default().push(i);
        }
        ix
    }
}

impl PartialEq for Header {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for Header {}

/// Names present on most messages, in canonical form.
const WELL_KNOWN: &[&str] = &[
    "Micro-Id",
    "Micro-Service",
    "Micro-Endpoint",
    "Micro-Method",
    "Micro-Stream",
    "Micro-Error",
    "Micro-Topic",
    "X-Micro-Id",
    "X-Micro-Service",
    "X-Micro-Endpoint",
    "X-Micro-Method",
    "X-Micro-Stream",
    "X-Micro-Error",
    "Content-Type",
    "Content-Length",
    "Accept",
    "Accept-Encoding",
    "Timeout",
    "User-Agent",
    "Host",
    "Connection",
];

/// The stored form of a name: a static string for a well-known one, else its
/// canonical form.
fn stored_name(name: &str) -> Cow<'static, str> {
    match WELL_KNOWN.iter().find(|k| k.eq_ignore_ascii_case(name)) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(canonical(name)),
    }
}

impl Header {
    /// An empty header map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty header map with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
            index: None,
        }
    }

    /// Where `name` is, compared case-insensitively.
    fn position(&self, name: &str) -> Option<usize> {
        match &self.index {
            None => self
                .entries
                .iter()
                .position(|(k, _)| k.eq_ignore_ascii_case(name)),
            Some(ix) => ix
                .buckets
                .get(&ix.hash(name))?
                .iter()
                .copied()
                .find(|&i| self.entries[i].0.eq_ignore_ascii_case(name)),
        }
    }

    /// Appends an entry known to be absent.
    fn push(&mut self, name: &str, value: String) {
        let name = stored_name(name);
        let i = self.entries.len();
        if let Some(ix) = &mut self.index {
            let h = ix.hash(&name);
            ix.buckets.entry(h).or_default().push(i);
        }
        self.entries.push((name, value));
        if self.index.is_none() && self.entries.len() > INDEX_AT {
            self.index = Some(Box::new(Index::build(&self.entries)));
        }
    }

    /// The value of `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.entries[i].1.as_str())
    }

    /// Sets `name` to `value` unless `name` is already present (the first value of
    /// a repeated header wins, as Go reads them); one lookup instead of
    /// [`contains`](Header::contains) and [`insert`](Header::insert).
    pub fn insert_if_absent(&mut self, name: &str, value: impl Into<String>) {
        if self.position(name).is_none() {
            self.push(name, value.into());
        }
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Sets `name` to `value`, replacing an existing value; the name is stored in
    /// canonical form.
    pub fn insert(&mut self, name: impl AsRef<str>, value: impl Into<String>) {
        let name = name.as_ref();
        let value = value.into();
        match self.position(name) {
            Some(i) => self.entries[i].1 = value,
            None => self.push(name, value),
        }
    }

    /// Removes `name` and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.position(name)?;
        let last = self.entries.len() - 1;
        if let Some(ix) = &mut self.index {
            let h = ix.hash(&self.entries[i].0);
            if let Some(b) = ix.buckets.get_mut(&h) {
                b.retain(|&p| p != i);
            }
            if i != last {
                let h = ix.hash(&self.entries[last].0);
                if let Some(p) = ix
                    .buckets
                    .get_mut(&h)
                    .and_then(|b| b.iter_mut().find(|p| **p == last))
                {
                    *p = i;
                }
            }
        }
        Some(self.entries.swap_remove(i).1)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as `(canonical name, value)`, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v.as_str()))
    }

    /// Removes every entry, keeping the allocation.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.index = None;
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: AsRef<str>, V: Into<String>> FromIterator<(K, V)> for Header {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut h = Header::new();
        for (k, v) in iter {
            h.insert(k, v);
        }
        h
    }
}

impl<K: AsRef<str>, V: Into<String>> Extend<(K, V)> for Header {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<'a> IntoIterator for &'a Header {
    type Item = (&'a str, &'a str);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, &'a str)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// The canonical MIME form of a header name, as Go's `textproto.CanonicalMIMEHeaderKey`
/// writes it: the first letter and every letter after a `-` upper case, the rest lower
/// case. Names holding a space or a byte that is not a token character are returned
/// unchanged, as Go does.
pub fn canonical(name: &str) -> String {
    if is_canonical(name) {
        return name.to_owned();
    }
    if !name.bytes().all(is_token_byte) {
        return name.to_owned();
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

fn is_canonical(name: &str) -> bool {
    let mut upper = true;
    for b in name.bytes() {
        if !is_token_byte(b) {
            return false;
        }
        if upper && b.is_ascii_lowercase() || !upper && b.is_ascii_uppercase() {
            return false;
        }
        upper = b == b'-';
    }
    true
}

/// Whether `b` may appear in an HTTP token (a header name, for instance).
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// RFC 9110 `tchar`: letters, digits and ``!#$%&'*+-.^_`|~``.
static TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_match_go() {
        assert_eq!(canonical("micro-id"), "Micro-Id");
        assert_eq!(canonical("MICRO-ID"), "Micro-Id");
        assert_eq!(canonical("Micro-Id"), "Micro-Id");
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("x-micro-error"), "X-Micro-Error");
        assert_eq!(canonical("timeout"), "Timeout");
        // not a token: left alone, like Go
        assert_eq!(canonical("bad name"), "bad name");
    }

    #[test]
    fn insert_replaces_case_insensitively() {
        let mut h = Header::new();
        h.insert("micro-id", "1");
        h.insert("MICRO-ID", "2");
        assert_eq!(h.len(), 1);
        assert_eq!(h.get("Micro-Id"), Some("2"));
        assert_eq!(h.remove("micro-ID"), Some("2".to_owned()));
        assert!(h.is_empty());
    }

    #[test]
    fn large_maps_behave_like_small_ones() {
        // A model: lower-cased name -> value, checked after every operation.
        let mut model = std::collections::HashMap::new();
        let mut h = Header::new();
        for i in 0..300u32 {
            let name = if i % 2 == 0 {
                format!("x-key-{i}")
            } else {
                format!("X-KEY-{i}")
            };
            h.insert(&name, i.to_string());
            model.insert(name.to_ascii_lowercase(), i.to_string());
            // re-inserting under another case replaces
            if i % 7 == 0 {
                h.insert(name.to_ascii_uppercase(), "r");
                model.insert(name.to_ascii_lowercase(), "r".into());
            }
            if i % 5 == 0 && i > 0 {
                let gone = format!("x-key-{}", i - 3);
                assert_eq!(h.remove(&gone), model.remove(&gone));
            }
            h.insert_if_absent("x-key-0", "ignored");
        }
        assert_eq!(h.len(), model.len());
        for (k, v) in &model {
            assert_eq!(h.get(k), Some(v.as_str()), "{k}");
            assert_eq!(h.get(&k.to_ascii_uppercase()), Some(v.as_str()), "{k}");
        }
        for (k, v) in h.iter() {
            assert_eq!(
                model.get(&k.to_ascii_lowercase()).map(String::as_str),
                Some(v)
            );
        }
        assert!(!h.contains("x-key-absent"));
        h.clear();
        assert!(h.is_empty() && h.get("x-key-2").is_none());
        h.insert("a", "1");
        assert_eq!(h.get("A"), Some("1"));
    }

    #[test]
    fn many_headers_are_indexed() {
        let mut h = Header::new();
        for i in 0..=INDEX_AT {
            assert!(h.index.is_none());
            h.insert_if_absent(&format!("h{i}"), "v");
        }
        assert!(
            h.index.is_some(),
            "past {INDEX_AT} entries lookups are hashed"
        );
        assert_eq!(h.get("H0"), Some("v"));
    }
}
