"""Tests of the modules every function shares (functions/common/)."""
