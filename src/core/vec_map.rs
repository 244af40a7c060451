//! Ordered maps and sets of a few entries (a database's models, its open live queries), kept as
//! one vector sorted by key. Each `BTreeMap` key/value type adds several kilobytes of tree code to
//! the WebAssembly module; for a handful of entries a sorted vector is as fast and adds little.
//! Iteration is in key order, as a `BTreeMap`'s is.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use std::borrow::Borrow;

#[derive(Clone, Debug, PartialEq)]
pub struct VecMap<K, V>(Vec<(K, V)>);

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap(Vec::new())
    }
}

impl<K: Ord, V> VecMap<K, V> {
    pub const fn new() -> Self {
        VecMap(Vec::new())
    }

    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    /// The value at `key`, first set to `make()` if there is none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (key, make()));
                i
            }
        };
        &mut self.0[i].1
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
}

/// A set of a few values, in order (see [`VecMap`]).
#[derive(Clone, Debug, PartialEq)]
pub struct VecSet<K>(VecMap<K, ()>);

impl<K> Default for VecSet<K> {
    fn default() -> Self {
        VecSet(VecMap::default())
    }
}

impl<K: Ord> VecSet<K> {
    pub const fn new() -> Self {
        VecSet(VecMap::new())
    }

    /// Adds `key`; whether it was new.
    pub fn insert(&mut self, key: K) -> bool {
        self.0.insert(key, ()).is_none()
    }

    pub fn contains<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.0.contains_key(key)
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &K> {
        self.0.keys()
    }
}

impl<K: Ord> Extend<K> for VecSet<K> {
    fn extend<I: IntoIterator<Item = K>>(&mut self, items: I) {
        for k in items {
            self.insert(k);
        }
    }
}

impl<K: Ord> FromIterator<K> for VecSet<K> {
    fn from_iter<I: IntoIterator<Item = K>>(items: I) -> Self {
        let mut s = VecSet::new();
        s.extend(items);
        s
    }
}

impl<K> IntoIterator for VecSet<K> {
    type Item = K;
    type IntoIter = std::iter::Map<std::vec::IntoIter<(K, ())>, fn((K, ())) -> K>;

    fn into_iter(self) -> Self::IntoIter {
        self.0 .0.into_iter().map(|(k, ())| k)
    }
}

impl<'a, K> IntoIterator for &'a VecSet<K> {
    type Item = &'a K;
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, ())>, fn(&'a (K, ())) -> &'a K>;

    fn into_iter(self) -> Self::IntoIter {
        self.0 .0.iter().map(|(k, ())| k)
    }
}

/// Read from a JSON object (keys in any order; a repeated key keeps its last value).
impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for VecMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for Entries<K, V> {
            type Value = VecMap<K, V>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut m = VecMap::new();
                while let Some((k, v)) = a.next_entry()? {
                    m.insert(k, v);
                }
                Ok(m)
            }
        }
        d.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// Read from a JSON array (in any order, repeats kept once).
impl<'de, K: Ord + Deserialize<'de>> Deserialize<'de> for VecSet<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<K>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Any sequence of inserts and removes leaves the same entries, in the same order, as a
        /// `BTreeMap` given the same sequence, with the same answers along the way.
        #[test]
        fn agrees_with_a_btree_map(ops in proptest::collection::vec((any::<bool>(), 0u8..20, any::<u16>()), 0..200)) {
            let (mut ours, mut reference) = (VecMap::new(), BTreeMap::new());
            for (put, k, v) in ops {
                if put {
                    prop_assert_eq!(ours.insert(k, v), reference.insert(k, v));
                } else {
                    prop_assert_eq!(ours.remove(&k), reference.remove(&k));
                }
                prop_assert_eq!(ours.get(&k), reference.get(&k));
                prop_assert_eq!(ours.len(), reference.len());
            }
            let got: Vec<(u8, u16)> = ours.iter().map(|(k, v)| (*k, *v)).collect();
            let want: Vec<(u8, u16)> = reference.into_iter().collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn sets_keep_one_of_each_in_order() {
        let mut s: VecSet<String> = ["b", "a", "b"].iter().map(|x| x.to_string()).collect();
        assert!(!s.insert("a".into()));
        assert!(s.insert("c".into()));
        assert!(s.contains("b"));
        assert_eq!(s.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        let mut m: VecMap<String, u32> = VecMap::new();
        *m.get_or_insert_with("x".into(), || 1) += 1;
        *m.get_or_insert_with("x".into(), || 1) += 1;
        assert_eq!(m.get("x"), Some(&3));
    }
}
