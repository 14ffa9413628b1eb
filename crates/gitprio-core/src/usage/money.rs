//! Dollar amounts as gitprio writes them in JSON: rounded to a millionth of a dollar.
//!
//! Costs are sums of token counts times prices per million tokens, and binary floats
//! turn such a sum into `0.5837999999999999`. Rounding where an amount is written, not
//! where it is added, keeps sums exact to the float and every output free of that noise.

use serde::Serializer;

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
