"""Tests of the tracker function (functions/tracker/)."""
