"""`python -m local`: the commands (up, demo, status, token, upload, smoke, check-artifacts, webhooks listen) and the
client pieces they share."""
