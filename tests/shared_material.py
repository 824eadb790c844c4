"""Where the team's read-only material lives: `../shared/` beside the checkout (a CI clone has it there too)."""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
MEDIACONVERT_FIXTURES = SHARED / "fixtures" / "mediaconvert"
"""Sample MediaConvert "Job State Change" events, as the real service sends them."""
