//! cty numbers: arbitrary-precision decimals that usually fit an `i64` or `f64`.

use std::fmt;

/// The largest decimal exponent accepted in number text. cty numbers are
/// arbitrary precision, but a value like `1e1000000000` is an attack rather
/// than a configuration value.
const MAX_EXPONENT: i64 = 4096;

/// A cty number.
///
/// Terraform sends whole numbers as msgpack integers, other exactly
/// representable numbers as float64, and everything else as a decimal string;
/// all three survive a decode/encode round trip unchanged.
#[derive(Debug, Clone)]
pub enum Number {
    /// A whole number that fits an `i64`.
    Int(i64),
    /// A binary floating point number (as sent by a msgpack float).
    Float(f64),
    /// Decimal text, kept exactly (for example `18446744073709551616` or `0.1`).
    Decimal(String),
}

/// Number text that is not a decimal number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a number")]
pub struct NumberSyntaxError(pub String);

impl Number {
    /// Parses decimal text (`-12`, `3.25`, `1e3`). Whole numbers that fit an
    /// `i64` become [`Number::Int`]; everything else is kept as exact text.
    pub fn parse(text: &str) -> Result<Number, NumberSyntaxError> {
        let t = text.trim();
        if let Ok(i) = t.parse::<i64>() {
            return Ok(Number::Int(i));
        }
        let norm = normalize(t).ok_or_else(|| NumberSyntaxError(text.to_string()))?;
        if let Ok(i) = norm.parse::<i64>() {
            return Ok(Number::Int(i));
        }
        Ok(Number::Decimal(t.to_string()))
    }

    /// The value as an `i64`, if it is a whole number in range.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(*i),
            Number::Float(f) => {
                if f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64 {
                    Some(*f as i64)
                } else {
                    None
                }
            }
            Number::Decimal(s) => normalize(s).and_then(|n| n.parse().ok()),
        }
    }

    /// The value as the nearest `f64`.
    pub fn as_f64(&self) -> f64 {
        match self {
            Number::Int(i) => *i as f64,
            Number::Float(f) => *f,
            Number::Decimal(s) => s.trim().parse().unwrap_or(f64::NAN),
        }
    }

    /// Canonical decimal text: no exponent, no leading `+`, no redundant zeros.
    /// Two numbers are equal exactly when their canonical texts are equal.
    pub fn canonical(&self) -> String {
        match self {
            Number::Int(i) => i.to_string(),
            Number::Float(f) if f.is_infinite() => {
                if *f > 0.0 {
                    "+Inf".into()
                } else {
                    "-Inf".into()
                }
            }
            Number::Float(f) if f.is_nan() => "NaN".into(),
            Number::Float(f) => normalize(&format!("{f}")).unwrap_or_else(|| format!("{f}")),
            Number::Decimal(s) => normalize(s).unwrap_or_else(|| s.clone()),
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a == b,
            _ => self.canonical() == other.canonical(),
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x}"),
            Number::Decimal(s) => f.write_str(s),
        }
    }
}

impl From<i64> for Number {
    fn from(i: i64) -> Number {
        Number::Int(i)
    }
}

impl From<f64> for Number {
    fn from(f: f64) -> Number {
        if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
            Number::Int(f as i64)
        } else {
            Number::Float(f)
        }
    }
}

/// Normalises decimal text (`[+-]digits[.digits][(e|E)[+-]digits]`) to plain
/// digits without exponent or redundant zeros; `None` when it is not a number.
pub(crate) fn normalize(text: &str) -> Option<String> {
    let s = text.trim();
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => {
            let e = &rest[i + 1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 6
            {
                return None;
            }
            let v: i64 = e.parse().ok()?;
            if v.abs() > MAX_EXPONENT {
                return None;
            }
            (&rest[..i], v)
        }
        None => (rest, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut digits: String = format!("{int_part}{frac_part}");
    // Position of the decimal point within `digits`.
    let mut point = int_part.len() as i64 + exp;
    if point < 0 {
        digits.insert_str(0, &"0".repeat((-point) as usize));
        point = 0;
    }
    let point = point as usize;
    if point > digits.len() {
        let pad = point - digits.len();
        digits.push_str(&"0".repeat(pad));
    }
    let (i, f) = digits.split_at(point);
    let i = i.trim_start_matches('0');
    let f = f.trim_end_matches('0');
    let i = if i.is_empty() { "0" } else { i };
    let body = if f.is_empty() {
        i.to_string()
    } else {
        format!("{i}.{f}")
    };
    if body == "0" {
        return Some(body);
    }
    Some(if neg { format!("-{body}") } else { body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize("1e3").as_deref(), Some("1000"));
        assert_eq!(normalize("-0.0").as_deref(), Some("0"));
        assert_eq!(normalize("001.2300").as_deref(), Some("1.23"));
        assert_eq!(normalize("12.5e-3").as_deref(), Some("0.0125"));
        assert_eq!(normalize(".5").as_deref(), Some("0.5"));
        for bad in ["", "-", "1e", "abc", "1.2.3", "1e99999999", "0x10", "1 2"] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn parse_and_compare() {
        assert_eq!(Number::parse("42"), Ok(Number::Int(42)));
        assert_eq!(Number::parse("4.2e1"), Ok(Number::Int(42)));
        let big = Number::parse("18446744073709551616").expect("number");
        assert!(matches!(big, Number::Decimal(_)));
        assert_eq!(big.as_i64(), None);
        assert_eq!(Number::Float(1.5), Number::parse("1.50").expect("number"));
        assert_eq!(Number::Float(3.0), Number::Int(3));
        assert_ne!(Number::Float(0.5), Number::Int(0));
        assert!(Number::parse("x1").is_err());
    }
}
