/// One invoice line; all amounts are cents.
#[derive(Debug, Clone)]
pub struct Line {
    pub quantity: i64,
    pub unit_cents: i64,
    pub tax_rate_bp: i64, // basis points: 2000 = 20%
}

/// The invoice total: each line rounded, then summed.
pub fn total_cents(lines: &[Line]) -> i64 {
    lines
        .iter()
        .map(|line| {
            let net = line.quantity * line.unit_cents;
            net + net * line.tax_rate_bp / 10_000 // BUG: truncates; should round half to even
        })
        .sum()
}
