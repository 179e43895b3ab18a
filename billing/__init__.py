"""Usage billing: accounts, contracts, usage, invoices and reports (to come)."""
