/// Splits product text into index tokens: lowercase, accents stripped,
/// split on anything that is not alphanumeric.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase) // TODO(search-index-tokenizer): strip accents
        .collect()
}
