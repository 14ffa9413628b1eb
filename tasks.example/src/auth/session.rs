/// An opaque session token and the account it belongs to.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: [u8; 32],
    pub account_id: i64,
}

/// Sessions are rows in the `sessions` table; see docs/architecture.md#sessions.
#[derive(Debug)]
pub struct SessionStore {
    pool: crate::db::Pool,
}

/// Sessions expire after this much inactivity.
pub const IDLE_TIMEOUT_DAYS: i64 = 14;
