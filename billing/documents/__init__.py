"""What billing hands to people and other systems: invoice PDF, UBL XML, usage reports, ERP CSV."""
