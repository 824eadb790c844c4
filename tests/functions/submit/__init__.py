"""Tests of the MediaConvert submitter (functions/submit/)."""
