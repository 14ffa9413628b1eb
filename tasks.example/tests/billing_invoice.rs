use acme_shop::billing::invoice::{total_cents, Line};

#[test]
fn total_sums_lines_with_tax() {
    let lines = [Line { quantity: 2, unit_cents: 1_000, tax_rate_bp: 2_000 }];
    assert_eq!(total_cents(&lines), 2_400);
}
