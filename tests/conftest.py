"""Loaded before any test module of any suite is collected."""

from __future__ import annotations

import os

# Powertools reads the metrics namespace when functions/common/observability.py is first imported, which a test module
# does at collection, before any fixture runs; the Lambda runtime sets the variable before the import, so this does too.
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MediaPipelineTest")
