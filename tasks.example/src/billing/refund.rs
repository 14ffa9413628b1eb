use crate::billing::BillingError;

/// A refund against an issued invoice, in cents.
#[derive(Debug, Clone)]
pub struct Refund {
    pub invoice_id: i64,
    pub amount_cents: i64,
    pub reason: String,
}

pub fn create_refund(_refund: &Refund) -> Result<(), BillingError> {
    Err(BillingError::NotImplemented)
}
