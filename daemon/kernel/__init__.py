"""The kernel every floor may import: errors, the clock and the protocol-neutral reading model.

It imports nothing else of meterd and no third-party package, so collectors/ and billing/
stand on it alone (docs/adr/0006-floors.md).
"""
