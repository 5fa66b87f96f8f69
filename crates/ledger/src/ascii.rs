//! The two ASCII encodings of numbers and bytes that every Veritrail format shares: canonical
//! decimal `u64` (checkpoint tree sizes, receipt indices, tile levels and widths, HTTP
//! parameters) and lower-case hex (key IDs, hash display, token hashes, idempotency keys).
//!
//! One parser and one encoder each, so the canonical-encoding rule (style: "ASCII-digit
//! decimals without leading zeros or `+`, no trailing data") is decided in one place.
//!
//! ```
//! use veritrail_ledger::ascii::{DecimalError, parse_decimal, parse_hex, to_hex};
//!
//! assert_eq!(parse_decimal("1234"), Ok(1234));
//! assert_eq!(parse_decimal("0123"), Err(DecimalError::LeadingZero));
//! assert_eq!(to_hex(&[0x0a, 0xff]), "0aff");
//! assert_eq!(parse_hex::<2>("0aff"), Some([0x0a, 0xff]));
//! assert_eq!(parse_hex::<2>("0AFF"), None); // lower case only
//! ```

use core::fmt;

/// Why a string is not a canonical decimal `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecimalError {
    /// The string is empty.
    #[error("empty number")]
    Empty,
    /// A character is not an ASCII digit (this includes signs and spaces).
    #[error("not an ASCII decimal number")]
    NotDigit,
    /// The number has a leading zero (only "0" itself may start with 0).
    #[error("leading zero")]
    LeadingZero,
    /// The number does not fit in 64 bits (it is otherwise canonical).
    #[error("number does not fit in 64 bits")]
    Overflow,
}

/// Parses a canonical ASCII decimal `u64`: digits only, no sign, no leading zeros except "0".
///
/// This does not panic.
///
/// # Errors
/// The [`DecimalError`] naming the first rule broken, checked in the order empty, digits,
/// leading zero, overflow.
pub fn parse_decimal(text: &str) -> Result<u64, DecimalError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(DecimalError::Empty);
    }
    if !bytes.iter().all(u8::is_ascii_digit) {
        return Err(DecimalError::NotDigit);
    }
    if bytes.len() > 1 && bytes.first() == Some(&b'0') {
        return Err(DecimalError::LeadingZero);
    }
    bytes.iter().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(DecimalError::Overflow)
    })
}

/// Lower-case hex of `bytes`, two digits per byte.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    // Writing to a `String` cannot fail.
    let _ = write_hex(&mut out, bytes);
    out
}

/// Writes lower-case hex of `bytes` to `out` (for `Display` impls, without an allocation).
///
/// # Errors
/// Only the writer's own errors.
pub fn write_hex(out: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            // A nibble is below 16, so it is always a digit of radix 16.
            out.write_char(char::from_digit(u32::from(nibble), 16).unwrap_or('0'))?;
        }
    }
    Ok(())
}

/// Parses exactly `2 * N` lower-case hex digits into `N` bytes; `None` for any other length,
/// an upper-case digit or a non-hex character. This does not panic.
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if text.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let [high, low] = pair else { return None };
        *byte = (digit(*high)? << 4) | digit(*low)?;
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimal_rules() {
        assert_eq!(parse_decimal("0"), Ok(0));
        assert_eq!(parse_decimal("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_decimal("18446744073709551616"),
            Err(DecimalError::Overflow)
        );
        assert_eq!(parse_decimal(""), Err(DecimalError::Empty));
        assert_eq!(parse_decimal("00"), Err(DecimalError::LeadingZero));
        assert_eq!(parse_decimal("01"), Err(DecimalError::LeadingZero));
        assert_eq!(parse_decimal("0x1"), Err(DecimalError::NotDigit));
        assert_eq!(parse_decimal("+1"), Err(DecimalError::NotDigit));
        assert_eq!(parse_decimal("-1"), Err(DecimalError::NotDigit));
        assert_eq!(parse_decimal(" 1"), Err(DecimalError::NotDigit));
        assert_eq!(parse_decimal("1 "), Err(DecimalError::NotDigit));
        assert_eq!(parse_decimal("1_0"), Err(DecimalError::NotDigit));
        assert_eq!(parse_decimal("١"), Err(DecimalError::NotDigit));
    }

    #[test]
    fn hex_rules() {
        assert_eq!(to_hex(&[]), "");
        assert_eq!(to_hex(&[0, 1, 0xab, 0xff]), "0001abff");
        assert_eq!(parse_hex::<0>(""), Some([]));
        assert_eq!(parse_hex::<1>("a"), None);
        assert_eq!(parse_hex::<1>("abc"), None);
        assert_eq!(parse_hex::<1>("AB"), None);
        assert_eq!(parse_hex::<1>("g0"), None);
        assert_eq!(parse_hex::<1>("+f"), None);
        assert_eq!(parse_hex::<1>("é"), None);
    }

    proptest! {
        #[test]
        fn decimal_round_trips_and_agrees_with_std(n in any::<u64>(), text in "\\PC{0,24}") {
            prop_assert_eq!(parse_decimal(&n.to_string()), Ok(n));
            if let Ok(value) = parse_decimal(&text) {
                prop_assert_eq!(value.to_string(), text);
            }
        }

        #[test]
        fn hex_round_trips(bytes in any::<[u8; 8]>()) {
            prop_assert_eq!(parse_hex::<8>(&to_hex(&bytes)), Some(bytes));
        }
    }
}
