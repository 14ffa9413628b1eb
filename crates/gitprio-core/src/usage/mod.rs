//! Token usage: what each run (one lease generation) of a task spent, where it came from, and totals.
//!
//! Token buckets follow Anthropic's semantics whatever the source: `input` excludes
//! cached tokens, `cache_read` and the cache writes are separate, `output` includes
//! reasoning (also counted apart in `reasoning`). Importers convert other shapes
//! (Codex and Gemini count cached tokens inside input) into this one.

pub mod attribute;
pub mod import;
mod index;
pub(crate) mod ledger;
pub mod money;
mod outbox;
mod price;
pub mod report;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use ledger::counted;
pub use ledger::{
    Delivered, Delivery, Ledger, LedgerError, Outcome, Run, RunMeta, USAGE_PREFIX, Written,
    merge_records, usage_ref,
};
pub use price::{
    LiteLlmPrices, PRICE_SNAPSHOT, PRICE_SNAPSHOT_DATE, Price, PriceTable, ReadOverrides,
};

/// One API request's usage (or one manual entry), with the key that deduplicates it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Identifies the request across copies: `claude:<message id>:<request id>`,
    /// `codex:<session>:<timestamp>:<total>`, `manual:<nonce>`. Two records with one key are one request.
    pub key: String,
    /// Which log or tool the record came from: `claude`, `codex`, `gemini`, `manual`.
    pub source: String,
    /// The agent CLI's session (or thread) id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// Input tokens not read from or written to the cache.
    #[serde(default)]
    pub input: u64,
    /// Output tokens, reasoning included.
    #[serde(default)]
    pub output: u64,
    #[serde(default)]
    pub cache_write_5m: u64,
    #[serde(default)]
    pub cache_write_1h: u64,
    #[serde(default)]
    pub cache_read: u64,
    /// Reasoning (thinking) tokens, where the source tells them apart; already inside `output`.
    #[serde(default)]
    pub reasoning: u64,
    /// API requests this record stands for (1 for a log record).
    #[serde(default = "one")]
    pub requests: u32,
    /// A subagent's or sidechain's request (Claude `isSidechain`, Codex subagent threads).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sidechain: bool,
    /// `fast` when the request ran in a priced-up fast mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<String>,
    /// The working directory and git branch of the agent, when the log tells them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Gemini CLI's `projectHash`, the SHA-256 (hex) of the directory it ran in: its
    /// records name no directory otherwise. Used to match a run's worktree; the ledger
    /// does not keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_hash: Option<String>,
}

fn one() -> u32 {
    1
}

impl UsageRecord {
    /// Every input token the request was billed for: uncached, cache writes and cache reads.
    pub fn prompt_tokens(&self) -> u64 {
        self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read
    }

    /// All tokens of the request: prompt and output.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens() + self.output
    }
}

/// Summed usage: tokens by kind, and the API requests they came in.
// The schema names every key and admits no other, so a misspelt key in an example of the
// docs fails `reply::schema`'s drift test; deserializing stays as lenient as before.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[schemars(deny_unknown_fields)]
pub struct Totals {
    /// Input tokens not read from or written to the cache.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Tokens written to the cache for 5 minutes.
    pub cache_write_5m: u64,
    /// Tokens written to the cache for an hour.
    pub cache_write_1h: u64,
    /// Tokens read from the cache.
    pub cache_read: u64,
    /// Reasoning (thinking) tokens, already inside `output`.
    pub reasoning: u64,
    /// API requests.
    pub requests: u64,
}

impl Totals {
    pub fn add(&mut self, record: &UsageRecord) {
        self.input += record.input;
        self.output += record.output;
        self.cache_write_5m += record.cache_write_5m;
        self.cache_write_1h += record.cache_write_1h;
        self.cache_read += record.cache_read;
        self.reasoning += record.reasoning;
        self.requests += u64::from(record.requests);
    }

    pub fn merge(&mut self, other: &Totals) {
        self.input += other.input;
        self.output += other.output;
        self.cache_write_5m += other.cache_write_5m;
        self.cache_write_1h += other.cache_write_1h;
        self.cache_read += other.cache_read;
        self.reasoning += other.reasoning;
        self.requests += other.requests;
    }

    /// All tokens: input of every kind, and output.
    pub fn tokens(&self) -> u64 {
        self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read + self.output
    }

    /// Cache reads over all input tokens; `None` when there was no input.
    pub fn cache_hit_rate(&self) -> Option<f64> {
        let prompt = self.input + self.cache_write_5m + self.cache_write_1h + self.cache_read;
        #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
        (prompt > 0).then(|| self.cache_read as f64 / prompt as f64)
    }
}

impl<'a> FromIterator<&'a UsageRecord> for Totals {
    fn from_iter<I: IntoIterator<Item = &'a UsageRecord>>(records: I) -> Self {
        let mut totals = Totals::default();
        for record in records {
            totals.add(record);
        }
        totals
    }
}
