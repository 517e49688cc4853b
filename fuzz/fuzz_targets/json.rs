//! JSON values built from the fuzzer's bytes, for the structure-aware targets: the fuzzer
//! mutates the structure (names, types, numbers at their extremes) instead of the syntax, so
//! its inputs reach the code behind the parsers.

#![allow(dead_code)]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use serde_json::{Map, Number, Value};

/// A number, with the extremes serde_json can carry made likely.
#[derive(Arbitrary, Debug, Clone)]
pub enum Num {
    Small(i8),
    I64(i64),
    U64(u64),
    F64(f64),
    Max,
    Min,
    U64Max,
    /// 2^63: just above i64::MAX.
    AboveI64,
}

impl Num {
    pub fn value(&self) -> Value {
        match self {
            Num::Small(n) => Value::from(*n),
            Num::I64(n) => Value::from(*n),
            Num::U64(n) => Value::from(*n),
            // NaN and infinities are not JSON: serde_json makes them null.
            Num::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Num::Max => Value::from(i64::MAX),
            Num::Min => Value::from(i64::MIN),
            Num::U64Max => Value::from(u64::MAX),
            Num::AboveI64 => Value::from(1u64 << 63),
        }
    }
}

/// Any JSON value; object member names come from `names` when the index says so.
#[derive(Arbitrary, Debug, Clone)]
pub enum Json {
    Null,
    Bool(bool),
    Num(Num),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(Name, Json)>),
}

/// A member name: one the code under test looks for, or any string.
#[derive(Arbitrary, Debug, Clone)]
pub enum Name {
    Known(u8),
    Any(String),
}

impl Name {
    pub fn text(&self, names: &[&str]) -> String {
        match self {
            Name::Known(i) if !names.is_empty() => names[*i as usize % names.len()].to_owned(),
            Name::Known(_) => String::new(),
            Name::Any(s) => s.clone(),
        }
    }
}

impl Json {
    pub fn value(&self, names: &[&str]) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Num(n) => n.value(),
            Json::Str(s) => Value::String(s.clone()),
            Json::Arr(items) => Value::Array(items.iter().map(|j| j.value(names)).collect()),
            Json::Obj(members) => Value::Object(object(members, names)),
        }
    }
}

pub fn object(members: &[(Name, Json)], names: &[&str]) -> Map<String, Value> {
    members
        .iter()
        .map(|(n, j)| (n.text(names), j.value(names)))
        .collect()
}
