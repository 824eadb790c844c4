"""The webhooks function: job outcomes fanned out to their owners' endpoints, delivered signed, retried, SSRF-safe."""
