//! Kubernetes resource quantities by meaning: `0.5`, `500m` and `5e-1` are
//! one value, and so are `1Gi` and `1024Mi`. The API server stores a quantity
//! in its canonical spelling, not the one it was sent, so comparing spellings
//! would see a difference that is not there.

/// The value of `text` in nano-units (the API server's precision; finer
/// values round up, as it rounds them), or `None` if it is not a quantity
/// or too large to hold.
pub fn nanos(text: &str) -> Option<i128> {
    let (number, suffix) = split(text)?;
    let (negative, digits) = match number.as_bytes().first()? {
        b'-' => (true, &number[1..]),
        b'+' => (false, &number[1..]),
        _ => (false, number),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // mantissa * 10^-scale is the number as written.
    let mut mantissa: i128 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(i128::from(b - b'0'))?;
    }
    let scale = i32::try_from(fraction.len()).ok()?;
    let (mut value, exponent) = match multiplier(suffix)? {
        Multiplier::Binary(power) => (mantissa.checked_mul(1_i128.checked_shl(power)?)?, 0),
        Multiplier::Decimal(exponent) => (mantissa, exponent),
    };
    // value * 10^(exponent - scale + 9) nano-units.
    let shift = exponent - scale + 9;
    if shift >= 0 {
        value = value.checked_mul(10_i128.checked_pow(u32::try_from(shift).ok()?)?)?;
    } else {
        let divisor = 10_i128.checked_pow(u32::try_from(-shift).ok()?)?;
        value = value / divisor + i128::from(value % divisor != 0);
    }
    Some(if negative { -value } else { value })
}

enum Multiplier {
    /// 2^n
    Binary(u32),
    /// 10^n
    Decimal(i32),
}

/// Splits `1.5Gi` into `1.5` and `Gi`, and `5e-1` into `5` and `e-1`.
fn split(text: &str) -> Option<(&str, &str)> {
    let end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i == 0)))
        .map_or(text.len(), |(i, _)| i);
    Some(text.split_at(end))
}

fn multiplier(suffix: &str) -> Option<Multiplier> {
    let binary = |n| Some(Multiplier::Binary(n));
    let decimal = |n| Some(Multiplier::Decimal(n));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            decimal(exponent.parse().ok()?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_value_is_that_value() {
        let same = [
            &["0.5", "500m", "5e-1", "500000u", ".5", "0.50"][..],
            &["1", "1000m", "1e0", "0.001k", "+1"],
            &["1Gi", "1024Mi", "1048576Ki", "1073741824"],
            &["1.5Gi", "1536Mi"],
            &["129e6", "129M", "129000000", "129000k"],
            &["0", "0m", "0Gi", "-0"],
            &["100m", "0.1"],
            &["1E3", "1e3", "1k", "1000"],
        ];
        for group in same {
            let values: Vec<_> = group.iter().map(|q| nanos(q)).collect();
            assert!(values[0].is_some(), "{group:?}");
            assert!(
                values.iter().all(|v| *v == values[0]),
                "{group:?}: {values:?}"
            );
        }
        assert_ne!(nanos("1Gi"), nanos("1G"));
        assert_ne!(nanos("128974848"), nanos("129e6"));
        assert_eq!(nanos("1n"), Some(1));
        assert_eq!(
            nanos("0.1n"),
            Some(1),
            "below a nano rounds up, like the API server"
        );
        assert_eq!(nanos("-2"), Some(-2_000_000_000));
    }

    #[test]
    fn anything_else_is_not_a_quantity() {
        for text in [
            "", "m", "Gi", "1.2.3", "1 Gi", "1gi", "1e", "e3", "abc", "50%", "1x", "1Gib",
        ] {
            assert_eq!(nanos(text), None, "{text}");
        }
        assert_eq!(nanos("1e40"), None, "too large to hold");
    }
}
