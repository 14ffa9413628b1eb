//! The typed replies of the commands and use cases: what `--json`, the MCP tools and
//! `gitprio run` print and read, one `Serialize + JsonSchema` struct per reply.
//!
//! A reply's keys come out in the order its fields are declared, and every reply follows one
//! order: where the queue was read (`source`), then the subject named by id, then what is
//! said about it, and a whole task (the largest value) last. Each reply's JSON Schema is
//! checked in under `docs/schema/`, and a test holds docs/cli.md to the schemas (see
//! `schema`).

mod check;
mod context;
mod init;
pub mod lease;
mod queue;
pub mod run;
#[cfg(test)]
mod schema;
pub mod tools;
pub mod usage;

pub use check::CheckReply;
pub use context::ContextReply;
pub use init::{FileAction, InitFile, InitReply};
pub use queue::{ExplainReply, ListEntry, ListReply, NextReply, NothingReady, ShowReply};

#[cfg(test)]
mod tests {
    use super::lease::{
        ClaimReply, DoneFailedReply, DoneReply, DoneUnplannedReply, GcReply, HeartbeatReply,
        LeaseReply, NothingReadyReply, ReleaseReply, RevokeReply, StatusReply, UnparkReply,
    };
    use super::tools::{
        CompletionReply, GiveBackReply, RenewalReply, TaskHandout, UsageReportReply,
    };
    use super::usage::UsageRecordReply;
    use crate::lease::Lease;

    fn lease() -> Lease {
        Lease {
            reference: "refs/gitprio/leases/fix-login".to_owned(),
            oid: gix::ObjectId::empty_tree(gix::hash::Kind::Sha1),
            record: crate::lease::tests::record(),
        }
    }

    #[test]
    fn a_lease_reply_keeps_the_documented_key_order() {
        let value = serde_json::to_value(LeaseReply::new(&lease(), "origin")).unwrap();
        let text = serde_json::to_string(&LeaseReply::new(&lease(), "origin")).unwrap();
        let keys = [
            "ref",
            "oid",
            "state",
            "generation",
            "attempt",
            "failures",
            "holder",
            "acquired_at",
            "renewed_at",
            "expires_at",
            "reason",
            "last_error",
            "progress",
            "store",
        ];
        let positions: Vec<usize> = keys
            .iter()
            .map(|key| text.find(&format!("\"{key}\":")).unwrap())
            .collect();
        assert!(positions.is_sorted(), "{text}");
        assert_eq!(value["store"], "origin");
        assert_eq!(value["state"], "held");
    }

    #[test]
    fn every_reply_has_a_json_schema() {
        let schemas = [
            schemars::schema_for!(ClaimReply),
            schemars::schema_for!(NothingReadyReply),
            schemars::schema_for!(HeartbeatReply),
            schemars::schema_for!(ReleaseReply),
            schemars::schema_for!(DoneReply),
            schemars::schema_for!(DoneFailedReply),
            schemars::schema_for!(DoneUnplannedReply),
            schemars::schema_for!(StatusReply),
            schemars::schema_for!(GcReply),
            schemars::schema_for!(UnparkReply),
            schemars::schema_for!(RevokeReply),
            schemars::schema_for!(UsageRecordReply),
            schemars::schema_for!(TaskHandout),
            schemars::schema_for!(RenewalReply),
            schemars::schema_for!(CompletionReply),
            schemars::schema_for!(GiveBackReply),
            schemars::schema_for!(UsageReportReply),
        ];
        for schema in schemas {
            let value = schema.as_value();
            assert_eq!(value["type"], "object", "{value}");
            assert!(
                value["properties"]
                    .as_object()
                    .is_some_and(|properties| !properties.is_empty())
            );
        }
    }
}
