"""The api function: uploads, jobs and webhook endpoints behind the HTTP API, described by docs/openapi.json."""
