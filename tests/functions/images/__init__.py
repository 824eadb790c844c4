"""Tests of the images function (functions/images)."""
