//! Kubernetes quantities compared by value: the API server rewrites `1000m` as `1` and `1024Mi`
//! as `1Gi`, and drift detection must not mistake that for a change.

/// The value of a quantity in nano-units, or `None` when the text is not a quantity.
pub fn nanos(text: &str) -> Option<i128> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || number == "+" || number == "-" {
        return None;
    }
    let (negative, number) = match number.as_bytes()[0] {
        b'-' => (true, &number[1..]),
        b'+' => (false, &number[1..]),
        _ => (false, number),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > 9
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut value: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    value = value.checked_mul(1_000_000_000)?;
    if !fraction.is_empty() {
        let padded = format!("{fraction:0<9}");
        value = value.checked_add(padded.parse::<i128>().ok()?)?;
    }
    let scaled = match suffix {
        "" => value,
        "n" => value / 1_000_000_000,
        "u" => value / 1_000_000,
        "m" => value / 1_000,
        "k" => value.checked_mul(1_000)?,
        "M" => value.checked_mul(1_000_000)?,
        "G" => value.checked_mul(1_000_000_000)?,
        "T" => value.checked_mul(1_000_000_000_000)?,
        "P" => value.checked_mul(1_000_000_000_000_000)?,
        "E" => value.checked_mul(1_000_000_000_000_000_000)?,
        "Ki" => value.checked_mul(1 << 10)?,
        "Mi" => value.checked_mul(1 << 20)?,
        "Gi" => value.checked_mul(1 << 30)?,
        "Ti" => value.checked_mul(1 << 40)?,
        "Pi" => value.checked_mul(1 << 50)?,
        "Ei" => value.checked_mul(1 << 60)?,
        // A decimal exponent, `e3` or `e-1` (`12e-1` is `1200m`).
        exponent => {
            let power: i32 = exponent.strip_prefix(['e', 'E'])?.parse().ok()?;
            let scale = 10_i128.checked_pow(power.unsigned_abs())?;
            if power < 0 {
                value / scale
            } else {
                value.checked_mul(scale)?
            }
        }
    };
    Some(if negative { -scaled } else { scaled })
}

/// Whether two texts are the same quantity (`1000m` and `1`, `1024Mi` and `1Gi`).
pub fn same(a: &str, b: &str) -> bool {
    a == b || matches!((nanos(a), nanos(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_compare_equal() {
        assert!(same("1000m", "1"));
        assert!(same("1024Mi", "1Gi"));
        assert!(same("0.5", "500m"));
        assert!(same("1e3", "1k"));
        assert!(same("2", "2"));
        assert!(same("12e-1", "1200m"));
        assert!(same("5e-1", "500m"));
        assert!(same("1E-3", "1m"));
    }

    #[test]
    fn different_values_differ() {
        assert!(!same("1", "2"));
        assert!(!same("1Gi", "1G"));
        assert!(!same("100m", "1"));
    }

    #[test]
    fn non_quantities_are_compared_as_text() {
        assert_eq!(nanos("abc"), None);
        assert_eq!(nanos(""), None);
        assert!(!same("a", "b"));
        assert!(same("restricted", "restricted"));
    }
}
