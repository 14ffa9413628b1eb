use acme_shop::auth::{login, AuthError};
use acme_shop::testing::store_with_account;

#[test]
fn wrong_password_is_rejected() {
    let store = store_with_account("ada@example.com", "correct horse");
    let result = login(&store, "ada@example.com", "wrong");
    assert!(matches!(result, Err(AuthError::InvalidCredentials)));
}
