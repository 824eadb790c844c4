"""The Powertools logger, metrics and tracer every handler uses.

Each reads its settings from the environment the program gives every function (`POWERTOOLS_SERVICE_NAME`,
`POWERTOOLS_METRICS_NAMESPACE`, `LOG_LEVEL`), so no handler configures them by hand.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
metrics = Metrics()
tracer = Tracer()
