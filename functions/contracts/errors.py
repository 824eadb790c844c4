"""Error codes and the words that go with them, where more than one producer reports the same failure
(docs/CONTRACTS.md "Error codes on jobs"): the client reads the same code and the same sentence whichever function
found it.
"""

from __future__ import annotations

SOURCE_REPLACED_CODE = "SOURCE_REPLACED"
"""The upload is no longer the object ingest validated: it was POSTed again with the still valid upload form (the
conditional read answered 412), or, for the images and audio units, it is gone."""
SOURCE_REPLACED_MESSAGE = "the upload was replaced after it was validated"
SOURCE_MISSING_MESSAGE = "the upload is no longer available"
"""The upload is not in the uploads bucket any more (deleted, or expired by its lifecycle rule)."""
