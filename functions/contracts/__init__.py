"""The formats the functions exchange, typed once: producers build these models, consumers parse them.

`docs/CONTRACTS.md` describes the same shapes in prose; tests/functions/contracts checks the two agree.
Nothing here does I/O: a function package imports only `functions.common` and `functions.contracts`.
"""
