"""The contracts package against docs/CONTRACTS.md."""
