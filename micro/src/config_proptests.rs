//! Property tests of the Go duration parser the configuration uses
//! ([`parse_go_duration`]): durations written as Go writes them read back exactly,
//! whatever their size; durations spelled in parts (`1h2.5m`, `.5s`, `+3ms`) read
//! as the sum of their parts; values beyond what a `Duration` holds and arbitrary
//! text are refused with `None`, never a panic. Each property runs [`CASES`]
//! generated cases.

use std::time::Duration;

use super::parse_go_duration;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;

/// Generated cases per property.
const CASES: u32 = 100_000;

fn config() -> Config {
    Config {
        cases: CASES,
        // a failure is kept as a unit test, not in a file beside the source
        failure_persistence: None,
        ..Config::default()
    }
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// `d` as Go's `time.Duration.String` writes it (`1h2m3.5s`, `1.5ms`, `0s`),
/// extended to the seconds a `Duration` holds beyond Go's 292 years.
fn go_format(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    // the number `v / div` with the fraction's trailing zeros trimmed
    let decimal = |v: u128, div: u128| {
        let (int, rem) = (v / div, v % div);
        if rem == 0 {
            return int.to_string();
        }
        let width = div.ilog10() as usize;
        format!("{int}.{}", format!("{rem:0width$}").trim_end_matches('0'))
    };
    if ns < NANOS_PER_SEC {
        let (unit, div) = match ns {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", decimal(ns, div));
    }
    let secs = ns / NANOS_PER_SEC;
    let (h, m) = (secs / 3600, secs % 3600 / 60);
    let s_ns = ns - (h * 3600 + m * 60) * NANOS_PER_SEC;
    match (h, m) {
        (0, 0) => format!("{}s", decimal(s_ns, NANOS_PER_SEC)),
        (0, _) => format!("{m}m{}s", decimal(s_ns, NANOS_PER_SEC)),
        _ => format!("{h}h{m}m{}s", decimal(s_ns, NANOS_PER_SEC)),
    }
}

/// Strings of `len` decimal digits (cheaper to generate than a
/// regular expression in a debug build).
fn digits(len: std::ops::Range<usize>) -> impl Strategy<Value = String> + Clone {
    let chars: Vec<char> = ('0'..='9').collect();
    prop::collection::vec(select(chars), len).prop_map(String::from_iter)
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        // Go's range: any int64 of nanoseconds
        (0..=i64::MAX as u64).prop_map(Duration::from_nanos),
        // under a second: the ns, µs and ms forms
        (0u64..1_000_000_000).prop_map(Duration::from_nanos),
        // whole units, as configurations write them
        (
            0u64..100_000,
            select(&[1u64, 1_000, 1_000_000, 1_000_000_000, 60_000_000_000][..])
        )
            .prop_map(|(n, unit)| Duration::from_nanos(n * unit)),
        // anything a Duration holds
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        Just(Duration::MAX),
    ]
}

/// Nanoseconds per unit, with every spelling Go accepts.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", NANOS_PER_SEC),
    ("m", 60 * NANOS_PER_SEC),
    ("h", 3600 * NANOS_PER_SEC),
];

/// One part of a duration: integer digits, fraction digits (`None`: no point),
/// and the unit. Either digit string may be empty, not both.
fn part() -> impl Strategy<Value = (String, Option<String>, usize)> {
    (
        prop_oneof![4 => digits(0..5), 1 => digits(0..31)],
        prop::option::of(digits(0..13)),
        0..UNITS.len(),
    )
        .prop_filter("a digit", |(int, frac, _)| {
            !int.is_empty() || frac.as_ref().is_some_and(|f| !f.is_empty())
        })
}

/// What the parts add up to, in nanoseconds (fractions of a nanosecond dropped,
/// as Go drops them); `None` past `u128`.
fn sum(parts: &[(String, Option<String>, usize)]) -> Option<u128> {
    let mut total: u128 = 0;
    for (int, frac, unit) in parts {
        let scale = UNITS[*unit].1;
        let int: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let frac = frac.as_deref().unwrap_or("");
        let f: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        let part = int.checked_mul(scale)? + f * scale / 10u128.pow(frac.len() as u32);
        total = total.checked_add(part)?;
    }
    Some(total)
}

fn to_duration(ns: u128) -> Option<Duration> {
    let secs = u64::try_from(ns / NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, (ns % NANOS_PER_SEC) as u32))
}

proptest! {
    #![proptest_config(config())]

    /// What Go writes reads back exactly, with any spelling of microseconds and
    /// white space around it.
    #[test]
    fn go_formatted_durations_round_trip(
        d in duration(),
        micro in select(&["µs", "μs", "us"][..]),
        pad in select(&["", " ", "\t", " \n"][..]),
    ) {
        let text = go_format(d).replace("µs", micro);
        prop_assert_eq!(parse_go_duration(&format!("{pad}{text}{pad}")), Some(d), "{}", text);
    }

    /// A duration in parts is the sum of its parts, or `None` when the sum is
    /// more than a `Duration` holds (huge values are refused, not a panic).
    #[test]
    fn parts_add_up(parts in prop::collection::vec(part(), 1..5), plus in any::<bool>()) {
        let mut text = String::from(if plus { "+" } else { "" });
        for (int, frac, unit) in &parts {
            text.push_str(int);
            if let Some(f) = frac {
                text.push('.');
                text.push_str(f);
            }
            text.push_str(UNITS[*unit].0);
        }
        let want = sum(&parts).and_then(to_duration);
        prop_assert_eq!(parse_go_duration(&text), want, "{}", text);
    }

    /// A bare number is seconds.
    #[test]
    fn bare_numbers_are_seconds(int in digits(1..13), frac in prop::option::of(digits(1..10))) {
        let text = match &frac {
            Some(f) => format!("{int}.{f}"),
            None => int.clone(),
        };
        let parts = [(int, frac, 5)];
        prop_assert_eq!(parse_go_duration(&text), sum(&parts).and_then(to_duration), "{}", text);
    }

    /// Arbitrary text, duration-shaped garbage and huge numbers: an answer, never
    /// a panic; a negative duration is never read.
    #[test]
    fn garbage_never_panics(
        text in prop_oneof![
            prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
            prop::collection::vec(
                select(&["1", "0", "9", ".", "-", "+", "e", "E", "h", "m", "s", "ms", "µ",
                         "μs", "us", "ns", "inf", "NaN", " ", "99999999999999999999"][..]),
                0..16,
            )
            .prop_map(|t| t.concat()),
            (digits(20..401), select(&["", "h", "s", "ns", ".5h", "e300", "e-400"][..]))
                .prop_map(|(n, u)| format!("{n}{u}")),
        ],
    ) {
        let _ = parse_go_duration(&text);
        prop_assert_eq!(parse_go_duration(&format!("-{}", text.trim_start())).filter(|d| !d.is_zero()), None);
    }
}
