//! Dollar amounts as gitprio writes them: in JSON rounded to a millionth of a dollar,
//! for people to the cent with `<$0.01` for what is not free but under a cent.
//!
//! Costs are sums of token counts times prices per million tokens, and binary floats
//! turn such a sum into `0.5837999999999999`. Rounding where an amount is written, not
//! where it is added, keeps sums exact to the float and every output free of that noise.

use std::fmt;

use serde::Serializer;

/// A dollar amount for people: `$1.23`, `$0.00` only when exactly zero, `<$0.01` when
/// positive but under half a cent (which `{:.2}` would print as `$0.00`, reading as free).
///
/// ccusage prints `toFixed(2)` and so shows `$0.00` for a short Haiku or Sonnet request;
/// Claude Code's `/cost` switches to four decimals under $0.50, which makes columns ragged
/// and claims a precision list-price estimates do not have. `<$0.01` keeps every figure to
/// the cent, as the bill is, and never calls spend free.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usd(pub f64);

impl fmt::Display for Usd {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let amount = self.0;
        if amount < 0.0 {
            return write!(formatter, "-{}", Usd(-amount));
        }
        // To the cent from the millionths JSON writes, half a cent up: `{:.2}` of the float
        // 0.015 (0.01499...) would print $0.01, and the text would disagree with the JSON.
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a positive amount of dollars, far below 2^63 millionths"
        )]
        let micros = (amount * 1e6).round() as u64;
        if amount > 0.0 && micros < 5_000 {
            formatter.write_str("<$0.01")
        } else {
            let cents = (micros + 5_000) / 10_000;
            write!(formatter, "${}.{:02}", cents / 100, cents % 100)
        }
    }
}

/// Writes `spent` and the `limit` it went past, for a message saying so: the limit exactly
/// as set (`$2.50`, `$0.001`), the spend to the same decimals, and both to more decimals (up to
/// six) while they would read the same. To the cent, `$0.0126` spent of `$0.01` read as
/// `$0.01 spent of $0.01`, and a `$0.001` budget as `$0.00`.
pub fn past_limit(spent: f64, limit: f64) -> (String, String) {
    const MAX_DECIMALS: usize = 6;
    let exact = (2..MAX_DECIMALS)
        .find(|&decimals| format!("{limit:.decimals$}").parse() == Ok(limit))
        .unwrap_or(MAX_DECIMALS);
    let written = |decimals: usize| {
        (
            format!("${spent:.decimals$}"),
            format!("${limit:.decimals$}"),
        )
    };
    (exact..MAX_DECIMALS)
        .map(written)
        .find(|(spent, limit)| spent != limit)
        .unwrap_or_else(|| written(MAX_DECIMALS))
}

/// What some spend costs as far as the prices know: dollars for the tokens of priced
/// models, and the tokens of models with no price, whose cost is unknown (never zero).
///
/// A sum keeps both parts: a run, a task or a day with one unpriced token still has the
/// dollars of its priced ones, and reads "at least" that.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub usd: f64,
    pub unpriced_tokens: u64,
}

impl Cost {
    /// Adds `other`'s dollars and unpriced tokens to this cost.
    pub fn add(&mut self, other: Cost) {
        self.usd += other.usd;
        self.unpriced_tokens += other.unpriced_tokens;
    }

    /// Returns the dollars when every token is priced, else `None`.
    pub fn known(self) -> Option<f64> {
        (self.unpriced_tokens == 0).then_some(self.usd)
    }
}

impl std::iter::Sum for Cost {
    fn sum<I: Iterator<Item = Cost>>(costs: I) -> Cost {
        costs.fold(Cost::default(), |mut sum, cost| {
            sum.add(cost);
            sum
        })
    }
}

/// Returns `usd` rounded to a millionth of a dollar.
pub fn round_usd(usd: f64) -> f64 {
    (usd * 1e6).round() / 1e6
}

/// Serializes a dollar amount rounded: `#[serde(serialize_with = "money::serialize")]`.
pub fn serialize<S: Serializer>(usd: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(round_usd(*usd))
}

/// Serializes an optional dollar amount rounded: `#[serde(serialize_with = "money::serialize_option")]`.
pub fn serialize_option<S: Serializer>(
    usd: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match usd {
        Some(usd) => serializer.serialize_some(&round_usd(*usd)),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Costs {
        #[serde(serialize_with = "serialize")]
        total: f64,
        #[serde(serialize_with = "serialize_option")]
        run: Option<f64>,
        #[serde(serialize_with = "serialize_option")]
        unknown: Option<f64>,
    }

    #[test]
    fn amounts_under_a_cent_never_read_as_free() {
        assert_eq!(Usd(0.0).to_string(), "$0.00");
        assert_eq!(Usd(240.0 * 3.0 / 1e6).to_string(), "<$0.01");
        assert_eq!(Usd(0.000_001).to_string(), "<$0.01");
        assert_eq!(Usd(0.004_999).to_string(), "<$0.01");
        assert_eq!(Usd(0.005).to_string(), "$0.01");
        assert_eq!(Usd(1.234).to_string(), "$1.23");
        assert_eq!(Usd(12_345.678).to_string(), "$12345.68");
        assert_eq!(Usd(-0.5).to_string(), "-$0.50");
        assert_eq!(Usd(-0.001).to_string(), "-<$0.01");
    }

    #[test]
    fn half_a_cent_rounds_up_as_money_does() {
        // Binary floats hold these a hair under the half cent.
        assert_eq!(Usd(0.015).to_string(), "$0.02");
        assert_eq!(Usd(0.165).to_string(), "$0.17");
        assert_eq!(Usd(0.135).to_string(), "$0.14");
        assert_eq!(Usd(0.075).to_string(), "$0.08");
        assert_eq!(Usd(0.014_999).to_string(), "$0.01");
        assert_eq!(Usd(2.0).to_string(), "$2.00");
    }

    #[test]
    fn a_spend_past_a_limit_never_reads_as_equal_to_it() {
        let past = |spent, limit| {
            let (spent, limit) = past_limit(spent, limit);
            format!("{spent} of {limit}")
        };
        assert_eq!(past(2.613, 2.5), "$2.61 of $2.50");
        assert_eq!(past(0.0126, 0.01), "$0.013 of $0.010");
        assert_eq!(past(0.0042, 0.001), "$0.004 of $0.001");
        assert_eq!(past(0.0042, 0.0015), "$0.0042 of $0.0015");
        assert_eq!(past(0.010_000_1, 0.01), "$0.010000 of $0.010000");
        assert_eq!(past(12.0, 10.0), "$12.00 of $10.00");
    }

    #[test]
    fn sums_of_prices_are_written_without_float_noise() {
        let total = 0.2919 + 0.2919;
        assert_eq!(total.to_string(), "0.5838");
        let noisy: f64 = [0.1, 0.2].iter().sum::<f64>() + 0.2838;
        assert_ne!(noisy.to_string(), "0.5838");
        let costs = Costs {
            total: noisy,
            run: Some(3.0 * 0.000_003 + 0.1 + 0.2),
            unknown: None,
        };
        assert_eq!(
            serde_json::to_string(&costs).unwrap(),
            r#"{"total":0.5838,"run":0.300009,"unknown":null}"#
        );
        assert!((round_usd(2.5) - 2.5).abs() < f64::EPSILON);
    }
}
