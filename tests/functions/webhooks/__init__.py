"""Tests of the webhooks function and the webhook parts it shares with the API (signing, SSRF policy, tables)."""
