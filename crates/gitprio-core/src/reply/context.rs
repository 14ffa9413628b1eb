//! The reply of `gitprio context`.

use schemars::JsonSchema;
use serde::Serialize;

use crate::context::Bundle;
use crate::source::Origin;

/// `gitprio context <id> --json`: where the queue was read, then the bundle's fields.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ContextReply {
    pub source: Origin,
    #[serde(flatten)]
    pub bundle: Bundle,
}
