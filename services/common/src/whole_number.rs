//! Integers in request bodies. JSON has one kind of number, and JSON Schema's
//! `integer` (what the documents say these fields are) is any number without
//! a fractional part, so `3.0` is the integer 3; serde's `i64` refuses it.
//! Clients whose JSON writer prints whole floats that way (Python's does)
//! would otherwise get a 422 for a request the document allows.
//!
//! `#[serde(deserialize_with = "whole_number::deserialize")]` on an `i64`,
//! `#[serde(default, deserialize_with = "whole_number::option")]` on an
//! `Option<i64>`.

use serde::de::{self, Deserializer, Unexpected, Visitor};
use std::fmt;

struct WholeNumber;

impl Visitor<'_> for WholeNumber {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        // 2^63 is exact in f64; anything in [-2^63, 2^63) converts exactly.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
            Ok(v as i64)
        } else {
            Err(E::invalid_type(Unexpected::Float(v), &self))
        }
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(WholeNumber)
}

/// An optional integer: `null` (or, with `#[serde(default)]`, absence) is `None`.
pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct Optional;
    impl<'de> Visitor<'de> for Optional {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            deserialize(d).map(Some)
        }
    }
    deserializer.deserialize_option(Optional)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::deserialize")]
        n: i64,
        #[serde(default, deserialize_with = "super::option")]
        m: Option<i64>,
    }

    fn parse(json: &str) -> Result<(i64, Option<i64>), String> {
        serde_json::from_str::<Body>(json)
            .map(|b| (b.n, b.m))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers_and_nothing_else_is() {
        assert_eq!(parse(r#"{"n": 3}"#), Ok((3, None)));
        assert_eq!(parse(r#"{"n": 3.0, "m": -2.0}"#), Ok((3, Some(-2))));
        assert_eq!(parse(r#"{"n": 1e3, "m": null}"#), Ok((1000, None)));
        assert_eq!(
            parse(r#"{"n": -9223372036854775808}"#),
            Ok((i64::MIN, None))
        );
        for bad in [
            r#"{"n": 3.5}"#,
            r#"{"n": "3"}"#,
            r#"{"n": 9223372036854775808}"#,
            r#"{"n": 1e19}"#,
            r#"{"n": 1, "m": 0.5}"#,
            r#"{"n": null}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
