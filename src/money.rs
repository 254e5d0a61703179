//! Money as integer minor units plus an ISO 4217 currency. Never floats.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(s: &str) -> Result<Currency, String> {
        let s = s.trim();
        let b = s.as_bytes();
        if b.len() == 3 && b.iter().all(u8::is_ascii_alphabetic) {
            let mut c = [0u8; 3];
            for (i, x) in b.iter().enumerate() {
                c[i] = x.to_ascii_uppercase();
            }
            Ok(Currency(c))
        } else {
            Err(format!("{s:?} is not a three-letter currency code such as EUR"))
        }
    }

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point (ISO 4217 exponent) for the common currencies.
    pub fn exponent(&self) -> u32 {
        match self.code() {
            "JPY" | "KRW" | "ISK" | "CLP" | "VND" | "HUF_" => 0,
            "BHD" | "KWD" | "OMR" | "TND" | "JOD" => 3,
            _ => 2,
        }
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::fmt::Debug for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Debug)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    /// Parses "1299", "1,299.50", "1299.5 EUR" or "EUR 1299.50". Without a code, `default` applies.
    pub fn parse(input: &str, default: Currency) -> Result<Money, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("Enter an amount.".into());
        }
        let mut currency = default;
        let mut amount = s;
        let parts: Vec<&str> = s.split_whitespace().collect();
        if parts.len() == 2 {
            if let Ok(c) = Currency::parse(parts[1]) {
                currency = c;
                amount = parts[0];
            } else if let Ok(c) = Currency::parse(parts[0]) {
                currency = c;
                amount = parts[1];
            } else {
                return Err(format!("{s:?} is not an amount like 1299.50 EUR"));
            }
        } else if parts.len() > 2 {
            return Err(format!("{s:?} is not an amount like 1299.50 EUR"));
        }
        let exp = currency.exponent();
        let cleaned: String = amount.chars().filter(|c| *c != ',' && *c != '_').collect();
        let (neg, digits) = match cleaned.strip_prefix('-') {
            Some(rest) => (true, rest.to_string()),
            None => (false, cleaned.clone()),
        };
        let (whole, frac) = match digits.split_once('.') {
            Some((w, f)) => (w, f),
            None => (digits.as_str(), ""),
        };
        let bad = || format!("{amount:?} is not an amount like 1299.50");
        if whole.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        if frac.len() as u32 > exp {
            return Err(format!("{currency} has {exp} decimal places; {amount:?} has more"));
        }
        let scale = 10i64.pow(exp);
        let w: i64 =
            if whole.is_empty() { 0 } else { whole.parse().map_err(|_| "The amount is too large.".to_string())? };
        let mut f: i64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| bad())? };
        f *= 10i64.pow(exp - frac.len() as u32);
        let minor = w
            .checked_mul(scale)
            .and_then(|x| x.checked_add(f))
            .ok_or_else(|| "The amount is too large.".to_string())?;
        Ok(Money { minor: if neg { -minor } else { minor }, currency })
    }

    /// The amount without the currency, e.g. "1299.50".
    pub fn amount_string(&self) -> String {
        let exp = self.currency.exponent();
        if exp == 0 {
            return self.minor.to_string();
        }
        let scale = 10u64.pow(exp);
        let abs = self.minor.unsigned_abs();
        let sign = if self.minor < 0 { "-" } else { "" };
        format!("{sign}{}.{:0width$}", abs / scale, abs % scale, width = exp as usize)
    }

    /// For display: "1,299.50 EUR".
    pub fn display(&self) -> String {
        let plain = self.amount_string();
        let (sign, rest) = plain.strip_prefix('-').map(|r| ("-", r)).unwrap_or(("", &plain));
        let (whole, frac) = rest.split_once('.').map(|(w, f)| (w, Some(f))).unwrap_or((rest, None));
        let mut grouped = String::new();
        for (i, ch) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        match frac {
            Some(f) => format!("{sign}{grouped}.{f} {}", self.currency),
            None => format!("{sign}{grouped} {}", self.currency),
        }
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.amount_string(), self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur() -> Currency {
        Currency::parse("eur").expect("valid")
    }

    #[test]
    fn parses_common_forms() {
        assert_eq!(Money::parse("1299", eur()).expect("ok").minor, 129_900);
        assert_eq!(Money::parse("1,299.5", eur()).expect("ok").minor, 129_950);
        let m = Money::parse("12.34 usd", eur()).expect("ok");
        assert_eq!((m.minor, m.currency.code()), (1234, "USD"));
        assert_eq!(Money::parse("JPY 500", eur()).expect("ok").minor, 500);
        assert_eq!(Money::parse("-0.05", eur()).expect("ok").minor, -5);
    }

    #[test]
    fn rejects_bad_amounts_with_reasons() {
        assert!(Money::parse("12.345", eur()).unwrap_err().contains("2 decimal places"));
        assert!(Money::parse("abc", eur()).is_err());
        assert!(Money::parse("", eur()).is_err());
        assert!(Money::parse("99999999999999999999", eur()).is_err());
    }

    #[test]
    fn displays_grouped() {
        let m = Money::new(123_456_789, eur());
        assert_eq!(m.display(), "1,234,567.89 EUR");
        assert_eq!(m.to_string(), "1234567.89 EUR");
        assert_eq!(Money::new(-5, eur()).amount_string(), "-0.05");
    }
}
