//! List prices per model, and what a run's tokens cost at them.
//!
//! Costs are estimates at list price, computed at report time: the bundled table
//! below, overridden per model by `.tasks/prices.yaml`. A model with no price is
//! never costed as zero: its cost is unknown and reports say so.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::UsageRecord;
use super::money::Cost;

/// Where the bundled prices come from, and when they were taken.
pub const PRICE_SNAPSHOT: &str = "LiteLLM model_prices_and_context_window.json as embedded by ccusage 696fa2df (2026-05-19) and models.dev via ccusage 5816e640 (2026-06-13)";

/// The date of the newest source in [`PRICE_SNAPSHOT`]: costs are list prices as of then.
pub const PRICE_SNAPSHOT_DATE: &str = "2026-06-13";

/// Dollars per million tokens of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// A 5-minute cache write; default 1.25 × input.
    #[serde(default)]
    pub cache_write_5m: Option<f64>,
    /// A 1-hour cache write; default 2 × input.
    #[serde(default)]
    pub cache_write_1h: Option<f64>,
    /// A cache read; default: the input price (no discount known).
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Multiplier for requests run in fast mode.
    #[serde(default)]
    pub fast_multiplier: Option<f64>,
    /// The prices of a request whose prompt (input and cache tokens) is over
    /// [`LONG_CONTEXT_TOKENS`], where the provider charges more for long context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above_200k: Option<LongContext>,
}

impl Price {
    /// The first of its rates that is not a finite, non-negative number of dollars, with
    /// its name: the one check of every price file's entries.
    fn first_invalid(&self) -> Option<(&'static str, f64)> {
        let long = self.above_200k;
        [
            ("input", Some(self.input)),
            ("output", Some(self.output)),
            ("cache_write_5m", self.cache_write_5m),
            ("cache_write_1h", self.cache_write_1h),
            ("cache_read", self.cache_read),
            ("fast_multiplier", self.fast_multiplier),
            ("above_200k.input", long.map(|long| long.input)),
            ("above_200k.output", long.map(|long| long.output)),
            (
                "above_200k.cache_write_5m",
                long.and_then(|long| long.cache_write_5m),
            ),
            (
                "above_200k.cache_read",
                long.and_then(|long| long.cache_read),
            ),
        ]
        .into_iter()
        .find_map(|(kind, value)| {
            value
                .filter(|value| !value.is_finite() || *value < 0.0)
                .map(|value| (kind, value))
        })
    }
}

/// Why a rate of a price file is refused.
fn not_dollars(kind: &str, value: f64) -> String {
    format!("{kind} is {value}, not dollars per million tokens (a price is 0 or more)")
}

/// A request whose prompt is over this many tokens is a long-context one.
pub const LONG_CONTEXT_TOKENS: u64 = 200_000;

/// Dollars per million tokens of a long-context request: every token of it, as Anthropic
/// (Sonnet 4 and 4.5 with the 1M context) and Google (Gemini 2.5 Pro) bill such a request.
/// ccusage charges only the part of each kind above 200k at these rates, which reads a
/// 300k-token prompt as cheaper than its bill.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContext {
    pub input: f64,
    pub output: f64,
    /// A 5-minute cache write; default 1.25 × input.
    #[serde(default)]
    pub cache_write_5m: Option<f64>,
    /// A cache read; default: the input price.
    #[serde(default)]
    pub cache_read: Option<f64>,
}

const fn price(
    input: f64,
    output: f64,
    cache_write_5m: Option<f64>,
    cache_read: Option<f64>,
) -> Price {
    Price {
        input,
        output,
        cache_write_5m,
        cache_write_1h: None,
        cache_read,
        fast_multiplier: None,
        above_200k: None,
    }
}

const fn fast(mut price: Price, multiplier: f64) -> Price {
    price.fast_multiplier = Some(multiplier);
    price
}

const fn long_context(
    mut price: Price,
    input: f64,
    output: f64,
    cache_write_5m: f64,
    cache_read: f64,
) -> Price {
    price.above_200k = Some(LongContext {
        input,
        output,
        cache_write_5m: Some(cache_write_5m),
        cache_read: Some(cache_read),
    });
    price
}

/// The bundled table: model family → price. Longer names are matched first.
const BUNDLED: &[(&str, Price)] = &[
    (
        "claude-opus-4-8",
        fast(price(5.0, 25.0, Some(6.25), Some(0.50)), 2.0),
    ),
    (
        "claude-opus-4-7",
        fast(price(5.0, 25.0, Some(6.25), Some(0.50)), 6.0),
    ),
    (
        "claude-opus-4-6",
        fast(price(5.0, 25.0, Some(6.25), Some(0.50)), 6.0),
    ),
    ("claude-opus-4-5", price(5.0, 25.0, Some(6.25), Some(0.50))),
    (
        "claude-opus-4-1",
        price(15.0, 75.0, Some(18.75), Some(1.50)),
    ),
    ("claude-opus-4", price(15.0, 75.0, Some(18.75), Some(1.50))),
    (
        "claude-sonnet-4-6",
        price(3.0, 15.0, Some(3.75), Some(0.30)),
    ),
    (
        "claude-sonnet-4-5",
        long_context(
            price(3.0, 15.0, Some(3.75), Some(0.30)),
            6.0,
            22.50,
            7.50,
            0.60,
        ),
    ),
    (
        "claude-sonnet-4",
        long_context(
            price(3.0, 15.0, Some(3.75), Some(0.30)),
            6.0,
            22.50,
            7.50,
            0.60,
        ),
    ),
    ("claude-haiku-4-5", price(1.0, 5.0, Some(1.25), Some(0.10))),
    ("claude-fable-5", price(10.0, 50.0, Some(12.50), Some(1.00))),
    ("gpt-5.5", fast(price(5.0, 30.0, None, Some(0.50)), 2.5)),
    ("gpt-5.4-mini", price(0.75, 4.50, None, Some(0.075))),
    ("gpt-5.4", fast(price(2.50, 15.0, None, Some(0.25)), 2.0)),
    (
        "gpt-5.3-codex",
        fast(price(1.75, 14.0, None, Some(0.175)), 2.0),
    ),
    ("gpt-5.2-codex", price(1.75, 14.0, None, Some(0.175))),
    ("gpt-5.2", price(1.75, 14.0, None, Some(0.175))),
    ("gpt-5.1-codex", price(1.25, 10.0, None, Some(0.125))),
    ("gpt-5.1", price(1.25, 10.0, None, Some(0.125))),
    ("gpt-5-codex", price(1.25, 10.0, None, Some(0.125))),
    ("gpt-5-mini", price(0.25, 2.0, None, Some(0.025))),
    ("gpt-5-nano", price(0.05, 0.40, None, Some(0.005))),
    ("gpt-5-pro", price(15.0, 120.0, None, None)),
    ("gpt-5", price(1.25, 10.0, None, Some(0.125))),
    // Older models agent CLIs still run on: the providers' list prices, as LiteLLM carries them.
    (
        "claude-3-7-sonnet",
        price(3.0, 15.0, Some(3.75), Some(0.30)),
    ),
    (
        "claude-3-5-sonnet",
        price(3.0, 15.0, Some(3.75), Some(0.30)),
    ),
    ("claude-3-5-haiku", price(0.80, 4.0, Some(1.0), Some(0.08))),
    ("claude-3-opus", price(15.0, 75.0, Some(18.75), Some(1.50))),
    ("claude-3-haiku", price(0.25, 1.25, Some(0.30), Some(0.03))),
    ("o3-pro", price(20.0, 80.0, None, None)),
    ("o3-mini", price(1.10, 4.40, None, Some(0.55))),
    ("o3", price(2.0, 8.0, None, Some(0.50))),
    ("o4-mini", price(1.10, 4.40, None, Some(0.275))),
    ("gpt-4.1-mini", price(0.40, 1.60, None, Some(0.10))),
    ("gpt-4.1-nano", price(0.10, 0.40, None, Some(0.025))),
    ("gpt-4.1", price(2.0, 8.0, None, Some(0.50))),
    ("gpt-4o-mini", price(0.15, 0.60, None, Some(0.075))),
    ("gpt-4o", price(2.50, 10.0, None, Some(1.25))),
    // Gemini: Google's list prices, as LiteLLM carries them (over 200k prompt tokens: above_200k).
    (
        "gemini-2.5-pro",
        long_context(price(1.25, 10.0, None, Some(0.125)), 2.50, 15.0, 2.50, 0.25),
    ),
    ("gemini-2.5-flash-lite", price(0.10, 0.40, None, Some(0.01))),
    ("gemini-2.5-flash", price(0.30, 2.50, None, Some(0.03))),
];

/// What `.tasks/prices.yaml` gives: the prices read, and why the rest was not.
#[derive(Clone, Debug, Default)]
pub struct ReadOverrides {
    /// Model name → price in $ per million tokens.
    pub prices: BTreeMap<String, Price>,
    /// Why an entry (or the whole file) was not read, located by line when it can be.
    pub problems: Vec<String>,
}

/// What a `LiteLLM` price file gives: the prices read, and the entries refused.
#[derive(Clone, Debug, Default)]
pub struct LiteLlmPrices {
    /// Model name → price in $ per million tokens.
    pub prices: BTreeMap<String, Price>,
    /// ``"`model`: why"`` for each entry whose prices are not numbers of dollars.
    pub refused: Vec<String>,
}

/// The prices in force: the bundled table and the repository's overrides.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    overrides: BTreeMap<String, Price>,
}

impl PriceTable {
    /// Returns the bundled table with `overrides` (model name → price) on top.
    pub fn new(overrides: BTreeMap<String, Price>) -> PriceTable {
        PriceTable { overrides }
    }

    /// Parses `.tasks/prices.yaml`: a map from model name to `{input, output, ...}` in $ per 1M tokens.
    pub fn parse_overrides(text: &str) -> Result<BTreeMap<String, Price>, String> {
        if text.trim().is_empty() {
            return Ok(BTreeMap::new());
        }
        // Without the snippet: the message is one line that names where (line, column).
        let prices: BTreeMap<String, Price> =
            serde_saphyr::from_str_with_options(text, crate::config::yaml_options())
                .map_err(|error| error.to_string())?;
        for (model, price) in &prices {
            if let Some((kind, value)) = price.first_invalid() {
                return Err(format!("`{model}`: {}", not_dollars(kind, value)));
            }
        }
        Ok(prices)
    }

    /// Reads `.tasks/prices.yaml` as far as it can: the entries it can read, and for each
    /// one it cannot (a price that is not a number of dollars, an unknown key, the whole file
    /// when its YAML is broken), why, located by line. One teammate's typo then costs only
    /// the models it names their bundled price, with a warning, in every view alike.
    pub fn read_overrides(text: &str) -> ReadOverrides {
        let mut read = ReadOverrides::default();
        if text.trim().is_empty() {
            return read;
        }
        let entries: std::collections::HashMap<serde_saphyr::Spanned<String>, serde_json::Value> =
            match serde_saphyr::from_str_with_options(text, crate::config::yaml_options()) {
                Ok(entries) => entries,
                Err(error) => {
                    read.problems.push(format!(
                        "is not read: {error} (a map of model to prices is expected); the bundled prices are used"
                    ));
                    return read;
                }
            };
        let mut entries: Vec<_> = entries.into_iter().collect();
        entries.sort_by_key(|(name, _)| name.referenced.line());
        for (name, value) in entries {
            let line = name.referenced.line();
            match serde_json::from_value::<Price>(value) {
                Ok(price) => match price.first_invalid() {
                    None => {
                        read.prices.insert(name.value, price);
                    }
                    Some((kind, value)) => read.problems.push(format!(
                        "line {line}: `{}`: {}; its bundled price is used",
                        name.value,
                        not_dollars(kind, value)
                    )),
                },
                Err(error) => read.problems.push(format!(
                    "line {line}: `{}`: {error}; its bundled price is used",
                    name.value
                )),
            }
        }
        read
    }

    /// Parses `LiteLLM`'s `model_prices_and_context_window.json` (or a file of that shape,
    /// such as ccusage's embedded snapshot): model name → `input_cost_per_token`,
    /// `output_cost_per_token`, `cache_creation_input_token_cost`, `cache_read_input_token_cost`
    /// in dollars per token, and their `*_above_200k_tokens` variants. Entries without input and output prices (embeddings, images,
    /// the `sample_spec` example) are left out. Gives the prices in $ per million tokens, and
    /// the entries refused because a price in them is not a number of dollars, each as
    /// ``"`model`: why"``: a user's hand edit should not vanish without a word.
    pub fn parse_litellm(text: &str) -> Result<LiteLlmPrices, String> {
        const FIELDS: [&str; 8] = [
            "input_cost_per_token",
            "output_cost_per_token",
            "cache_creation_input_token_cost",
            "cache_read_input_token_cost",
            "input_cost_per_token_above_200k_tokens",
            "output_cost_per_token_above_200k_tokens",
            "cache_creation_input_token_cost_above_200k_tokens",
            "cache_read_input_token_cost_above_200k_tokens",
        ];
        let entries: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|error| error.to_string())?;
        let mut parsed = LiteLlmPrices::default();
        for (name, value) in entries {
            if name == "sample_spec" {
                continue;
            }
            let Some(entry) = value.as_object() else {
                parsed
                    .refused
                    .push(format!("`{name}`: not an object of prices"));
                continue;
            };
            let mut per_million = [None; 8];
            let mut refused = None;
            for (slot, field) in per_million.iter_mut().zip(FIELDS) {
                match entry.get(field) {
                    None | Some(serde_json::Value::Null) => {}
                    Some(serde_json::Value::Number(number))
                        if number.as_f64().is_some_and(|dollars| dollars >= 0.0) =>
                    {
                        *slot = number.as_f64().map(|dollars| dollars * 1_000_000.0);
                    }
                    Some(other) => {
                        refused = Some(format!(
                            "`{name}`: {field} is {other}, not a number of dollars per token"
                        ));
                        break;
                    }
                }
            }
            if let Some(why) = refused {
                parsed.refused.push(why);
                continue;
            }
            let [
                Some(input),
                Some(output),
                cache_write_5m,
                cache_read,
                long_input,
                long_output,
                long_write,
                long_read,
            ] = per_million
            else {
                continue;
            };
            let mut price = price(input, output, cache_write_5m, cache_read);
            if let (Some(input), Some(output)) = (long_input, long_output) {
                price.above_200k = Some(LongContext {
                    input,
                    output,
                    cache_write_5m: long_write,
                    cache_read: long_read,
                });
            }
            parsed.prices.insert(name, price);
        }
        Ok(parsed)
    }

    /// Returns the price of `model`: an override by exact name, else the bundled family.
    ///
    /// Provider prefixes (`us.anthropic.`, `openai/`), date suffixes (`-20250514`) and
    /// version tags (`-v1`, `:0`) are ignored when matching the bundled table.
    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some(price) = self.overrides.get(model) {
            return Some(*price);
        }
        let name = normalize(model);
        if let Some(price) = self.overrides.get(&name) {
            return Some(*price);
        }
        BUNDLED
            .iter()
            .filter(|(family, _)| {
                name == *family
                    || name
                        .strip_prefix(family)
                        .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('@'))
            })
            .max_by_key(|(family, _)| family.len())
            .map(|(_, price)| *price)
    }

    /// Returns the models of `records` that have no price, each with the tokens it spent.
    pub fn unpriced<'record>(
        &self,
        records: impl IntoIterator<Item = &'record UsageRecord>,
    ) -> BTreeMap<String, u64> {
        let mut unpriced = BTreeMap::new();
        for record in records {
            if self.price(&record.model).is_none() {
                *unpriced.entry(record.model.clone()).or_default() += record.total_tokens();
            }
        }
        unpriced
    }

    /// Returns the cost of `records`: the dollars of those priced, and the tokens of those
    /// whose model has no price.
    pub fn total<'record>(&self, records: impl IntoIterator<Item = &'record UsageRecord>) -> Cost {
        let mut total = Cost::default();
        for record in records {
            match self.cost(record) {
                Some(usd) => total.usd += usd,
                None => total.unpriced_tokens += record.total_tokens(),
            }
        }
        total
    }

    /// Returns the cost of `record` in dollars, or `None` when its model has no price.
    pub fn cost(&self, record: &UsageRecord) -> Option<f64> {
        let price = self.price(&record.model)?;
        #[expect(
            clippy::cast_precision_loss,
            reason = "token counts stay far below 2^52"
        )]
        let tokens = |count: u64| count as f64 / 1_000_000.0;
        // A record of several requests (an hour of the unattributed store, a session's
        // totals from an agent's output) is judged by its mean prompt: its sum would price
        // ten 150k-token prompts as one long one.
        let prompt =
            (record.input + record.cache_write_5m + record.cache_write_1h + record.cache_read)
                / u64::from(record.requests.max(1));
        // (input, output, 5-minute write, 1-hour write, read) in $ per million tokens.
        let rates = match price.above_200k {
            Some(long) if prompt > LONG_CONTEXT_TOKENS => (
                long.input,
                long.output,
                long.cache_write_5m.unwrap_or(long.input * 1.25),
                long.input * 2.0,
                long.cache_read.unwrap_or(long.input),
            ),
            _ => (
                price.input,
                price.output,
                price.cache_write_5m.unwrap_or(price.input * 1.25),
                price.cache_write_1h.unwrap_or(price.input * 2.0),
                price.cache_read.unwrap_or(price.input),
            ),
        };
        let cost = tokens(record.input) * rates.0
            + tokens(record.output) * rates.1
            + tokens(record.cache_write_5m) * rates.2
            + tokens(record.cache_write_1h) * rates.3
            + tokens(record.cache_read) * rates.4;
        let multiplier = if record.speed.as_deref() == Some("fast") {
            price.fast_multiplier.unwrap_or(1.0)
        } else {
            1.0
        };
        Some(cost * multiplier)
    }
}

/// Strips what providers add around a model family name.
fn normalize(model: &str) -> String {
    let mut name = model.trim().to_ascii_lowercase();
    if let Some((_, rest)) = name.rsplit_once('/') {
        name = rest.to_owned();
    }
    for prefix in ["us.", "eu.", "au.", "apac.", "global."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            name = rest.to_owned();
        }
    }
    for vendor in ["anthropic.", "openai."] {
        if let Some(rest) = name.strip_prefix(vendor) {
            name = rest.to_owned();
        }
    }
    if let Some((base, _)) = name.split_once(':') {
        name = base.to_owned();
    }
    if let Some(base) = name.strip_suffix("-v1") {
        name = base.to_owned();
    }
    // A trailing date: -20250514.
    if let Some((base, date)) = name.rsplit_once('-')
        && date.len() == 8
        && date.bytes().all(|byte| byte.is_ascii_digit())
    {
        name = base.to_owned();
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(model: &str) -> UsageRecord {
        UsageRecord {
            model: model.to_owned(),
            input: 1_000_000,
            output: 1_000_000,
            cache_write_5m: 1_000_000,
            cache_write_1h: 1_000_000,
            cache_read: 1_000_000,
            ..UsageRecord::default()
        }
    }

    /// A teammate's typo in one entry costs only that model its override, with the line
    /// named; broken YAML costs the file, with its position; a negative price is refused.
    #[test]
    fn overrides_are_read_entry_by_entry_and_each_problem_is_located() {
        let read = PriceTable::read_overrides(
            "claude-sonnet-4-5: {input: abc, output: 15}\nhouse: {input: 1, output: 2}\ncheap: {input: -5, output: 1}\n",
        );
        assert_eq!(read.prices.keys().collect::<Vec<_>>(), ["house"]);
        assert_eq!(read.problems.len(), 2, "{:?}", read.problems);
        assert!(
            read.problems[0].starts_with("line 1: `claude-sonnet-4-5`: ")
                && read.problems[0].ends_with("; its bundled price is used"),
            "{:?}",
            read.problems
        );
        assert!(
            read.problems[1].starts_with("line 3: `cheap`: input is -5, not dollars"),
            "{:?}",
            read.problems
        );
        let broken = PriceTable::read_overrides("a: {input: 1\n  b: [\n");
        assert!(broken.prices.is_empty());
        assert!(
            broken.problems[0].starts_with("is not read: ") && broken.problems[0].contains("line "),
            "{:?}",
            broken.problems
        );
        assert!(PriceTable::read_overrides("  \n").problems.is_empty());
    }

    #[test]
    fn known_models_with_provider_and_date_decorations() {
        let table = PriceTable::default();
        for model in [
            "claude-sonnet-4-5",
            "claude-sonnet-4-5-20250929",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic/claude-sonnet-4-5",
        ] {
            let cost = table.cost(&record(model)).unwrap();
            // A 4M-token prompt, over 200k: the long-context rates,
            // 6 + 22.50 + 7.50 + 12 (1h = 2 × input) + 0.60.
            assert!((cost - 48.6).abs() < 1e-9, "{model}: {cost}");
        }
        let input = |model: &str| table.price(model).unwrap().input;
        assert!((input("claude-opus-4-1-20250805") - 15.0).abs() < 1e-9);
        assert!((input("claude-opus-4-6") - 5.0).abs() < 1e-9);
        assert!((input("gpt-5.4-mini") - 0.75).abs() < 1e-9);
        assert!((table.price("gpt-5-codex").unwrap().output - 10.0).abs() < 1e-9);
    }

    #[test]
    fn unknown_models_have_no_cost_and_overrides_win() {
        let table = PriceTable::default();
        assert_eq!(table.cost(&record("local-llama-70b")), None);
        let overrides = PriceTable::parse_overrides(
            "local-llama-70b: {input: 0.5, output: 1.0, cache_read: 0.1}\nclaude-sonnet-4-5: {input: 1, output: 2}\n",
        )
        .unwrap();
        let table = PriceTable::new(overrides);
        // 0.5 + 1 + 0.625 + 1 + 0.1
        assert!((table.cost(&record("local-llama-70b")).unwrap() - 3.225).abs() < 1e-9);
        assert!((table.price("claude-sonnet-4-5").unwrap().input - 1.0).abs() < 1e-9);
        assert!(PriceTable::parse_overrides("x: {input: 1, output: 2, bogus: 3}").is_err());
    }

    #[test]
    fn a_litellm_file_refreshes_the_table() {
        let text = r#"{"sample_spec": {"input_cost_per_token": 0},
            "new-model-9": {"input_cost_per_token": 2e-6, "output_cost_per_token": 8e-6, "cache_read_input_token_cost": 2e-7},
            "text-embedding-3": {"input_cost_per_token": 1e-8},
            "claude-sonnet-4-5": {"input_cost_per_token": 4e-6, "output_cost_per_token": 1.6e-5}}"#;
        let prices = PriceTable::parse_litellm(text).unwrap().prices;
        assert_eq!(prices.len(), 2);
        let table = PriceTable::new(prices);
        assert!((table.price("new-model-9").unwrap().input - 2.0).abs() < 1e-9);
        assert!((table.price("new-model-9").unwrap().cache_read.unwrap() - 0.2).abs() < 1e-9);
        assert!((table.price("claude-sonnet-4-5-20250929").unwrap().input - 4.0).abs() < 1e-9);
        assert!(PriceTable::parse_litellm("not json").is_err());
    }

    #[test]
    fn a_litellm_entry_whose_price_is_not_a_number_is_named() {
        let text = r#"{"claude-mystery-9": {"input_cost_per_token": "x", "output_cost_per_token": 1e-6},
            "minus-1": {"input_cost_per_token": -1e-6, "output_cost_per_token": 1e-6},
            "odd": 3,
            "new-model-9": {"input_cost_per_token": 2e-6, "output_cost_per_token": 8e-6}}"#;
        let parsed = PriceTable::parse_litellm(text).unwrap();
        assert_eq!(parsed.prices.keys().collect::<Vec<_>>(), ["new-model-9"]);
        assert_eq!(
            parsed.refused,
            [
                "`claude-mystery-9`: input_cost_per_token is \"x\", not a number of dollars per token",
                "`minus-1`: input_cost_per_token is -1e-6, not a number of dollars per token",
                "`odd`: not an object of prices",
            ]
        );
    }

    #[test]
    fn gemini_models_that_ccusage_prices_are_priced() {
        let table = PriceTable::default();
        for model in [
            "gemini-2.5-pro",
            "gemini-2.5-flash",
            "models/gemini-2.5-pro",
        ] {
            assert!(table.price(model).is_some(), "{model}");
        }
        assert!((table.price("gemini-2.5-pro").unwrap().output - 10.0).abs() < 1e-9);
    }

    #[test]
    fn a_long_context_request_is_priced_whole_at_the_long_context_rates() {
        let table = PriceTable::default();
        let request = |model: &str, input, cache_read| UsageRecord {
            model: model.to_owned(),
            input,
            cache_read,
            output: 1_000,
            ..UsageRecord::default()
        };
        let cost = |record: &UsageRecord| table.cost(record).unwrap();
        // Gemini 2.5 Pro, a 300k prompt: $2.50 and $15 per million for all of it.
        assert!((cost(&request("gemini-2.5-pro", 300_000, 0)) - 0.765).abs() < 1e-9);
        // Sonnet 4.5, 1k input + 299k cache read: $6, $0.60 and $22.50 per million.
        let sonnet = request("claude-sonnet-4-5-20250929", 1_000, 299_000);
        assert!((cost(&sonnet) - (0.006 + 0.1794 + 0.0225)).abs() < 1e-9);
        // At 200k exactly, the base rates.
        let base = request("claude-sonnet-4-5", 1_000, 199_000);
        assert!((cost(&base) - (0.003 + 0.0597 + 0.015)).abs() < 1e-9);
        // Ten requests of 150k summed in one record (an hour of the unattributed store):
        // each is under 200k, so the base rates.
        let hour = UsageRecord {
            requests: 10,
            ..request("claude-sonnet-4-5", 10_000, 1_490_000)
        };
        assert!((cost(&hour) - (0.03 + 0.447 + 0.015)).abs() < 1e-9);
        // A LiteLLM file carries the long-context rates too.
        let file = r#"{"long-9": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
            "input_cost_per_token_above_200k_tokens": 3e-6, "output_cost_per_token_above_200k_tokens": 4e-6}}"#;
        let table = PriceTable::new(PriceTable::parse_litellm(file).unwrap().prices);
        let long = table.cost(&request("long-9", 300_000, 0)).unwrap();
        assert!((long - (0.9 + 0.004)).abs() < 1e-9);
    }

    #[test]
    fn older_models_agents_still_run_on_are_priced() {
        let table = PriceTable::default();
        let input = |model: &str| table.price(model).map(|price| price.input);
        assert_eq!(input("o3"), Some(2.0));
        assert_eq!(input("o3-2025-04-16"), Some(2.0));
        assert_eq!(input("o3-mini"), Some(1.10));
        assert_eq!(input("o4-mini"), Some(1.10));
        assert_eq!(input("gpt-4.1"), Some(2.0));
        assert_eq!(input("gpt-4.1-mini"), Some(0.40));
        assert_eq!(input("gpt-4o"), Some(2.50));
        assert_eq!(input("gpt-4o-mini"), Some(0.15));
        assert_eq!(input("claude-3-7-sonnet-20250219"), Some(3.0));
        assert_eq!(input("claude-3-5-haiku-20241022"), Some(0.80));
    }

    #[test]
    fn a_negative_price_in_the_repository_file_is_refused() {
        assert_eq!(
            PriceTable::parse_overrides("m: {input: -5, output: 2}").unwrap_err(),
            "`m`: input is -5, not dollars per million tokens (a price is 0 or more)"
        );
        assert!(PriceTable::parse_overrides("m: {input: 0, output: 2}").is_ok());
        let long = PriceTable::parse_overrides(
            "m: {input: 3, output: 15, above_200k: {input: 6, output: 22.5}}",
        )
        .unwrap();
        assert!((long["m"].above_200k.unwrap().output - 22.5).abs() < 1e-9);
        assert!(
            PriceTable::parse_overrides(
                "m: {input: 3, output: 15, above_200k: {input: -6, output: 1}}"
            )
            .unwrap_err()
            .contains("above_200k.input is -6")
        );
        // `.tasks/prices.yaml`, read entry by entry, applies the same check.
        let read = PriceTable::read_overrides(
            "m: {input: 3, output: 15, above_200k: {input: -6, output: 1}}\nok: {input: 1, output: 2}",
        );
        assert_eq!(read.prices.keys().collect::<Vec<_>>(), ["ok"]);
        assert_eq!(
            read.problems,
            [
                "line 1: `m`: above_200k.input is -6, not dollars per million tokens (a price is 0 or more); its bundled price is used"
            ]
        );
        assert!(PriceTable::parse_overrides("m: {input: .inf, output: 2}").is_err());
    }

    #[test]
    fn fast_mode_multiplies() {
        let table = PriceTable::default();
        let mut fast = record("claude-opus-4-6");
        let normal = table.cost(&fast).unwrap();
        fast.speed = Some("fast".to_owned());
        assert!((table.cost(&fast).unwrap() - normal * 6.0).abs() < 1e-9);
    }
}
