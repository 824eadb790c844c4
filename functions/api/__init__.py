"""The api function: POST /uploads, GET /jobs, GET /jobs/{jobId}, GET /health behind the HTTP API."""
