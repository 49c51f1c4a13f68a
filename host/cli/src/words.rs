//! Counts, rates and durations as every summary writes them: thousands
//! separators always (`14,285`), singular for one (`1 task`, `1
//! connection`), whole units per second (`1,646 tasks/s`), milliseconds
//! to the microsecond (`4.124`, not `4.1235159999999995`).

use std::time::Duration;

/// `n` with a comma between each group of three digits.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// `n` and the noun for it: `1 task`, `2 tasks`, `1,000 tasks`.
pub(crate) fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// `n` things in `elapsed`, per second, whole: `1,646 tasks/s`, `1 task/s`.
pub(crate) fn rate(n: u64, elapsed: Duration, one: &str, many: &str) -> String {
    let seconds = elapsed.as_secs_f64();
    let per_second = if seconds > 0.0 {
        (n as f64 / seconds).round() as u64
    } else {
        0
    };
    format!("{}/s", count(per_second, one, many))
}

/// `duration` in milliseconds, to the microsecond (`4.124`, not
/// `4.1235159999999995`): the nearest float to a whole number of
/// microseconds over 1000 prints as those digits.
pub(crate) fn millis(duration: Duration) -> f64 {
    let micros = (duration.as_nanos().saturating_add(500) / 1000).min(u128::from(u64::MAX));
    micros as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (3_974, "3,974"),
            (1_234_567, "1,234,567"),
        ];
        for (n, text) in cases {
            assert_eq!(thousands(n), text);
        }
    }

    #[test]
    fn counts_and_rates_say_one_in_the_singular() {
        assert_eq!(count(1, "task", "tasks"), "1 task");
        assert_eq!(count(0, "task", "tasks"), "0 tasks");
        assert_eq!(count(14_285, "task", "tasks"), "14,285 tasks");
        assert_eq!(count(1, "batch", "batches"), "1 batch");
        let second = Duration::from_secs(1);
        assert_eq!(rate(1, second, "task", "tasks"), "1 task/s");
        assert_eq!(rate(85_715, second, "task", "tasks"), "85,715 tasks/s");
        assert_eq!(rate(5, Duration::ZERO, "task", "tasks"), "0 tasks/s");
    }

    #[test]
    fn milliseconds_have_no_float_noise() {
        let noisy = Duration::from_nanos(4_123_515);
        let json = |d| serde_json::json!(millis(d)).to_string();
        assert_eq!(json(noisy), "4.124");
        assert_eq!(json(Duration::from_millis(12)), "12.0");
        assert_eq!(json(Duration::from_nanos(4_123_499)), "4.123");
        assert_eq!(json(Duration::ZERO), "0.0");
    }
}
