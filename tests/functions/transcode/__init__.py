"""Tests of the Lambda transcoder (functions/transcode)."""
