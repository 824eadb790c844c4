"""IAM for the local cloud: policy evaluation, role sessions, and enforcement on API calls and deliveries."""
