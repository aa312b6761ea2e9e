"""Settlement: batch over closed journal segments into invoices and reconciliation reports."""
