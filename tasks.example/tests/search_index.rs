use acme_shop::search::index::tokenize;

#[test]
fn splits_and_lowercases() {
    assert_eq!(tokenize("Red-Shoes 42"), ["red", "shoes", "42"]);
}
