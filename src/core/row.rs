//! Compact rows: how the engine holds rows in memory.
//!
//! A [`Row`] is one immutable, reference-counted byte string holding the row's fields in order,
//! each a field name and a value. Field names are interned once per process (a field costs one
//! byte for its name in every row); values are tagged:
//!
//! | tag | value | followed by |
//! |---|---|---|
//! | 0 / 1 / 2 | `null` / `false` / `true` | nothing |
//! | 3 | a whole number below 2^53 | zigzag varint |
//! | 4 | any other number | 8 bytes, little-endian `f64` |
//! | 5 | a string | varint length, UTF-8 |
//! | 6 | an array | varint length in bytes, the items |
//! | 7 | an object | varint length in bytes, the fields |
//!
//! A name is a varint `n`: an even `n` is the interned name `n / 2`, an odd `n` is followed by
//! `n / 2` bytes of the name itself (used once [`MAX_NAMES`] names are interned, so rows with
//! unbounded sets of keys cannot grow the name table for ever).
//!
//! Reading a field scans the row (rows are short) and returns a borrowed [`ValRef`]: no
//! allocation on the query path. JSON is only met at the edges: rows are decoded straight from
//! JSON text into this form ([`Row`]'s `Deserialize`) and written straight back to JSON text
//! (`Serialize`); `serde_json::Value` only appears where a write merges user input.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

/// A JSON object as `serde_json` holds it: what writes, the outbox and the hooks work with.
pub type Obj = Map<String, Value>;

/// How many field names are interned; later names are written out in each row.
pub const MAX_NAMES: usize = 1 << 14;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const FLOAT: u8 = 4;
const STR: u8 = 5;
const ARR: u8 = 6;
const OBJ: u8 = 7;

/// 2^53: whole numbers below it are exact in an `f64` and written as varints.
const EXACT: f64 = 9_007_199_254_740_992.0;

// ---------------------------------------------------------------------------------------------
// Field names

/// FNV-1a: field names are short, and SipHash's setup costs more than hashing them.
#[derive(Default)]
pub struct FastHash(u64);

impl Hasher for FastHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

#[derive(Default)]
struct Names {
    list: Vec<Rc<str>>,
    ids: HashMap<Rc<str>, u32, BuildHasherDefault<FastHash>>,
}

thread_local! {
    static NAMES: RefCell<Names> = RefCell::default();
}

fn intern(name: &str) -> Option<u32> {
    NAMES.with(|n| {
        let mut n = n.borrow_mut();
        if let Some(&id) = n.ids.get(name) {
            return Some(id);
        }
        if n.list.len() >= MAX_NAMES {
            return None;
        }
        let id = n.list.len() as u32;
        let name: Rc<str> = Rc::from(name);
        n.list.push(name.clone());
        n.ids.insert(name, id);
        Some(id)
    })
}

fn interned(name: &str) -> Option<u32> {
    NAMES.with(|n| n.borrow().ids.get(name).copied())
}

fn with_name<T>(id: u32, f: impl FnOnce(&str) -> T) -> T {
    NAMES.with(|n| f(n.borrow().list.get(id as usize).map_or("", |s| s)))
}

/// A field name resolved once (for a query, an `orderBy`, a primary key), so finding it in a row
/// compares small numbers instead of strings.
#[derive(Clone, Debug)]
pub struct Name {
    text: Rc<str>,
    id: Option<u32>,
}

impl Name {
    pub fn new(text: &str) -> Name {
        Name {
            text: Rc::from(text),
            id: intern(text),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn is(&self, key: KeyRef<'_>) -> bool {
        match key {
            KeyRef::Id(id) => self.id == Some(id),
            KeyRef::Text(t) => self.id.is_none() && *t == *self.text,
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.text == other.text
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        *self.text == **other
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        *self.text == *other
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A field name as a row stores it.
#[derive(Clone, Copy, Debug)]
pub enum KeyRef<'a> {
    Id(u32),
    Text(&'a str),
}

impl KeyRef<'_> {
    pub fn with<T>(self, f: impl FnOnce(&str) -> T) -> T {
        match self {
            KeyRef::Id(id) => with_name(id, f),
            KeyRef::Text(t) => f(t),
        }
    }

    pub fn to_owned(self) -> String {
        self.with(str::to_string)
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_key(buf: &mut Vec<u8>, name: &str) {
    match intern(name) {
        Some(id) => put_varint(buf, u64::from(id) << 1),
        None => {
            put_varint(buf, ((name.len() as u64) << 1) | 1);
            buf.extend_from_slice(name.as_bytes());
        }
    }
}

fn put_num(buf: &mut Vec<u8>, f: f64) {
    if f.fract() == 0.0 && f.abs() < EXACT {
        let i = f as i64;
        buf.push(INT);
        put_varint(buf, ((i << 1) ^ (i >> 63)) as u64);
    } else {
        buf.push(FLOAT);
        buf.extend_from_slice(&f.to_le_bytes());
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(STR);
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// Writes the length of what follows `at` in front of it (after the container's tag).
fn close_container(buf: &mut Vec<u8>, at: usize) {
    let mut len = Vec::with_capacity(3);
    put_varint(&mut len, (buf.len() - at) as u64);
    buf.splice(at..at, len);
}

fn put_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => buf.push(NULL),
        Value::Bool(b) => buf.push(if *b { TRUE } else { FALSE }),
        Value::Number(n) => put_num(buf, n.as_f64().unwrap_or(0.0)),
        Value::String(s) => put_str(buf, s),
        Value::Array(items) => {
            buf.push(ARR);
            let at = buf.len();
            for i in items {
                put_value(buf, i);
            }
            close_container(buf, at);
        }
        Value::Object(o) => {
            buf.push(OBJ);
            let at = buf.len();
            put_fields(buf, o);
            close_container(buf, at);
        }
    }
}

fn put_fields(buf: &mut Vec<u8>, o: &Obj) {
    for (k, v) in o {
        put_key(buf, k);
        put_value(buf, v);
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding. The bytes were written by this module, so reads do not check them beyond never
// indexing out of bounds (a missing byte reads as 0).

fn byte(b: &[u8], pos: &mut usize) -> u8 {
    let v = b.get(*pos).copied().unwrap_or(0);
    *pos += 1;
    v
}

fn varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let c = byte(b, pos);
        v |= u64::from(c & 0x7f) << shift;
        if c < 0x80 || shift > 56 {
            return v;
        }
        shift += 7;
    }
}

fn slice<'a>(b: &'a [u8], pos: &mut usize, len: usize) -> &'a [u8] {
    let start = (*pos).min(b.len());
    let end = start.saturating_add(len).min(b.len());
    *pos = end;
    &b[start..end]
}

fn read_key<'a>(b: &'a [u8], pos: &mut usize) -> KeyRef<'a> {
    let n = varint(b, pos);
    if n & 1 == 0 {
        KeyRef::Id((n >> 1) as u32)
    } else {
        let text = slice(b, pos, (n >> 1) as usize);
        KeyRef::Text(std::str::from_utf8(text).unwrap_or(""))
    }
}

fn read_value<'a>(b: &'a [u8], pos: &mut usize) -> ValRef<'a> {
    match byte(b, pos) {
        FALSE => ValRef::Bool(false),
        TRUE => ValRef::Bool(true),
        INT => {
            let z = varint(b, pos);
            ValRef::Num(((z >> 1) as i64 ^ -((z & 1) as i64)) as f64)
        }
        FLOAT => {
            let mut raw = [0u8; 8];
            let s = slice(b, pos, 8);
            raw[..s.len()].copy_from_slice(s);
            ValRef::Num(f64::from_le_bytes(raw))
        }
        STR => {
            let len = varint(b, pos) as usize;
            ValRef::Str(std::str::from_utf8(slice(b, pos, len)).unwrap_or(""))
        }
        ARR => {
            let len = varint(b, pos) as usize;
            ValRef::Arr(Items(slice(b, pos, len)))
        }
        OBJ => {
            let len = varint(b, pos) as usize;
            ValRef::Obj(Fields(slice(b, pos, len)))
        }
        _ => ValRef::Null,
    }
}

/// Moves past one value without looking at it.
fn skip_value(b: &[u8], pos: &mut usize) {
    match byte(b, pos) {
        INT => {
            varint(b, pos);
        }
        FLOAT => *pos += 8,
        STR | ARR | OBJ => {
            let len = varint(b, pos) as usize;
            *pos += len;
        }
        _ => {}
    }
}

/// A value read from a row, borrowing its bytes.
#[derive(Clone, Copy, Debug)]
pub enum ValRef<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    Arr(Items<'a>),
    Obj(Fields<'a>),
}

/// The items of an array value.
#[derive(Clone, Copy, Debug)]
pub struct Items<'a>(&'a [u8]);

/// The fields of an object value (or of a row).
#[derive(Clone, Copy, Debug)]
pub struct Fields<'a>(&'a [u8]);

/// Iterates the items of an array.
pub struct ItemIter<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for ItemIter<'a> {
    type Item = ValRef<'a>;
    fn next(&mut self) -> Option<ValRef<'a>> {
        (self.pos < self.bytes.len()).then(|| read_value(self.bytes, &mut self.pos))
    }
}

/// Iterates the fields of an object or a row.
pub struct FieldIter<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for FieldIter<'a> {
    type Item = (KeyRef<'a>, ValRef<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let k = read_key(self.bytes, &mut self.pos);
        Some((k, read_value(self.bytes, &mut self.pos)))
    }
}

impl<'a> Items<'a> {
    pub fn iter(self) -> ItemIter<'a> {
        ItemIter {
            bytes: self.0,
            pos: 0,
        }
    }
}

impl<'a> Fields<'a> {
    pub fn iter(self) -> FieldIter<'a> {
        FieldIter {
            bytes: self.0,
            pos: 0,
        }
    }

    /// The value of field `name`, if present.
    pub fn get(self, name: &Name) -> Option<ValRef<'a>> {
        let b = self.0;
        let mut pos = 0;
        while pos < b.len() {
            let k = read_key(b, &mut pos);
            if name.is(k) {
                return Some(read_value(b, &mut pos));
            }
            skip_value(b, &mut pos);
        }
        None
    }

    /// The value of field `name` by its text (for names not resolved ahead).
    pub fn get_str(self, name: &str) -> Option<ValRef<'a>> {
        let id = interned(name);
        self.iter()
            .find(|(k, _)| match k {
                KeyRef::Id(i) => Some(*i) == id,
                KeyRef::Text(t) => *t == name,
            })
            .map(|(_, v)| v)
    }

    /// Byte ranges of each field (name and value), for copying fields between rows.
    fn spans(self) -> impl Iterator<Item = (KeyRef<'a>, std::ops::Range<usize>)> {
        let b = self.0;
        let mut pos = 0;
        std::iter::from_fn(move || {
            if pos >= b.len() {
                return None;
            }
            let start = pos;
            let k = read_key(b, &mut pos);
            skip_value(b, &mut pos);
            Some((k, start..pos.min(b.len())))
        })
    }
}

impl<'a> ValRef<'a> {
    pub fn is_null(self) -> bool {
        matches!(self, ValRef::Null)
    }

    pub fn as_str(self) -> Option<&'a str> {
        match self {
            ValRef::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn to_value(self) -> Value {
        match self {
            ValRef::Null => Value::Null,
            ValRef::Bool(b) => Value::Bool(b),
            ValRef::Num(f) => num_value(f),
            ValRef::Str(s) => Value::String(s.to_string()),
            ValRef::Arr(items) => Value::Array(items.iter().map(ValRef::to_value).collect()),
            ValRef::Obj(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

/// A JSON number that stays an integer when it is one (so `1` round-trips as `1`, not `1.0`).
pub fn num_value(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < EXACT {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

impl fmt::Display for ValRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_value())
    }
}

// ---------------------------------------------------------------------------------------------
// Owned values and rows

/// One value held on its own (a query operand), in the same encoding as a row's values.
#[derive(Clone, Debug)]
pub struct Val(Box<[u8]>);

impl Val {
    pub fn new(v: &Value) -> Val {
        let mut buf = Vec::new();
        put_value(&mut buf, v);
        Val(buf.into_boxed_slice())
    }

    pub fn get(&self) -> ValRef<'_> {
        read_value(&self.0, &mut 0)
    }
}

/// A row: its fields in order, in the encoding above. Cloning is cheap (a reference count).
#[derive(Clone)]
pub struct Row(Rc<[u8]>);

impl Row {
    fn from_buf(buf: Vec<u8>) -> Row {
        Row(Rc::from(buf))
    }

    pub fn from_obj(o: &Obj) -> Row {
        let mut buf = Vec::with_capacity(64);
        put_fields(&mut buf, o);
        Row::from_buf(buf)
    }

    pub fn fields(&self) -> Fields<'_> {
        Fields(&self.0)
    }

    pub fn get(&self, name: &Name) -> Option<ValRef<'_>> {
        self.fields().get(name)
    }

    pub fn get_str(&self, name: &str) -> Option<ValRef<'_>> {
        self.fields().get_str(name)
    }

    pub fn iter(&self) -> FieldIter<'_> {
        self.fields().iter()
    }

    pub fn to_obj(&self) -> Obj {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_value()))
            .collect()
    }

    /// Identity (rows shared between tables, indexes and results are one allocation).
    pub fn ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }

    /// Only `names`, in that order (those the row has), copied byte for byte.
    pub fn project(&self, names: &[Name]) -> Row {
        let spans: Vec<(KeyRef<'_>, std::ops::Range<usize>)> = self.fields().spans().collect();
        let mut buf = Vec::with_capacity(self.0.len());
        for n in names {
            if let Some((_, r)) = spans.iter().find(|(k, _)| n.is(*k)) {
                buf.extend_from_slice(&self.0[r.clone()]);
            }
        }
        Row::from_buf(buf)
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Row) -> bool {
        self.0 == other.0 || self.to_obj() == other.to_obj()
    }
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", Value::Object(self.to_obj()))
    }
}

// ---------------------------------------------------------------------------------------------
// Serde: rows to JSON text and back, without `serde_json::Value` in between.

impl Serialize for ValRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            ValRef::Null => s.serialize_unit(),
            ValRef::Bool(b) => s.serialize_bool(b),
            ValRef::Num(f) if f.fract() == 0.0 && f.abs() < EXACT => s.serialize_i64(f as i64),
            ValRef::Num(f) => s.serialize_f64(f),
            ValRef::Str(t) => s.serialize_str(t),
            ValRef::Arr(items) => {
                let mut seq = s.serialize_seq(None)?;
                for v in items.iter() {
                    seq.serialize_element(&v)?;
                }
                seq.end()
            }
            ValRef::Obj(fields) => fields.serialize(s),
        }
    }
}

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.iter() {
            k.with(|name| map.serialize_key(name))?;
            map.serialize_value(&v)?;
        }
        map.end()
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.fields().serialize(s)
    }
}

/// Writes one value, as it is read, into the buffer.
struct ValueSeed<'b>(&'b mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.push(if v { TRUE } else { FALSE });
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        put_num(self.0, v as f64);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        put_num(self.0, v as f64);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        put_num(self.0, v);
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        put_str(self.0, v);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(NULL);
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        self.0.push(NULL);
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(ARR);
        let at = self.0.len();
        while seq.next_element_seed(ValueSeed(self.0))?.is_some() {}
        close_container(self.0, at);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.push(OBJ);
        let at = self.0.len();
        read_fields(self.0, map)?;
        close_container(self.0, at);
        Ok(())
    }
}

/// Writes one field name into the buffer.
struct KeySeed<'b>(&'b mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        put_key(self.0, v);
        Ok(())
    }
}

fn read_fields<'de, A: MapAccess<'de>>(buf: &mut Vec<u8>, mut map: A) -> Result<(), A::Error> {
    while map.next_key_seed(KeySeed(buf))?.is_some() {
        map.next_value_seed(ValueSeed(buf))?;
    }
    Ok(())
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = Row;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row (an object)")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Row, A::Error> {
        let mut buf = Vec::with_capacity(96);
        read_fields(&mut buf, map)?;
        Ok(Row::from_buf(buf))
    }
}

impl<'de> Deserialize<'de> for Row {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Row, D::Error> {
        d.deserialize_map(RowVisitor)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        Row::from_obj(v.as_object().unwrap())
    }

    #[test]
    fn round_trips_through_json_text_and_objects() {
        let v = json!({"id": "a", "n": 3, "f": 1.5, "neg": -7, "big": 1e300, "t": true,
            "z": null, "arr": [1, "x", [false], {"k": 2}], "o": {"p": {"q": []}}, "é": "ü"});
        let r = row(v.clone());
        assert_eq!(Value::Object(r.to_obj()), v);
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
        let back: Row = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.0, r.0, "one encoding for one row");
        assert!(serde_json::from_str::<Row>("[1]").is_err());
    }

    #[test]
    fn reads_fields_by_name() {
        let r = row(json!({"id": 1, "name": "Ada", "tags": ["x"]}));
        assert!(matches!(
            r.get(&Name::new("name")),
            Some(ValRef::Str("Ada"))
        ));
        assert!(matches!(r.get_str("id"), Some(ValRef::Num(n)) if n == 1.0));
        assert!(r.get(&Name::new("nope")).is_none());
        let p = r.project(&[Name::new("tags"), Name::new("id"), Name::new("zz")]);
        assert_eq!(Value::Object(p.to_obj()), json!({"tags": ["x"], "id": 1}));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|i| json!(i)),
            (-1e15f64..1e15)
                .prop_filter("JS numbers have no integral floats", |f| f.fract() != 0.0)
                .prop_map(|f| json!(f)),
            "[a-z0-9 é\"\\\\]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_object_round_trips(fields in prop::collection::btree_map("[a-f]{1,4}", json_value(), 0..6)) {
            let obj: Obj = fields.into_iter().collect();
            let r = Row::from_obj(&obj);
            prop_assert_eq!(&r.to_obj(), &obj);
            let text = serde_json::to_string(&r).unwrap();
            let back: Row = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(&back.0, &r.0);
            for (k, v) in &obj {
                let got = r.get(&Name::new(k)).map(ValRef::to_value);
                prop_assert_eq!(got.as_ref(), Some(v));
            }
        }
    }
}
