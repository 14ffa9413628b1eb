use crate::auth::session::{Session, SessionStore};
use crate::auth::AuthError;

/// Checks the credentials and opens a session.
pub fn login(store: &SessionStore, email: &str, password: &str) -> Result<Session, AuthError> {
    let account = store.account_by_email(email).ok_or(AuthError::InvalidCredentials)?;
    if !account.verify_password(password) {
        // TODO(auth-login-rate-limit): count the failure per account and per IP.
        return Err(AuthError::InvalidCredentials);
    }
    store.open_session(account.id)
}
