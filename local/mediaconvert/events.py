"""MediaConvert's "Job State Change" events, shaped like the real ones (tests/fixtures/mediaconvert), put on the
emulated account's default event bus, where the program's rules match them as EventBridge would.

Every detail carries `timestamp` (epoch ms), `accountId`, `queue` (ARN), `jobId` (MediaConvert's), `status` and the
job's `userMetadata`; PROGRESSING adds nothing, INPUT_INFORMATION `inputDetails`, STATUS_UPDATE `framesDecoded` and
`jobProgress`, COMPLETE `outputGroupDetails`, ERROR `errorCode` (a number) and `errorMessage`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from local.mediaconvert.jobs import Job
from local.mediaconvert.outputs.ffmpeg import MediaInfo

log = logging.getLogger("local.mediaconvert.service")

SOURCE = "aws.mediaconvert"
DETAIL_TYPE = "MediaConvert Job State Change"
DEFAULT_BUS = "default"
PHASES = ("PROBING", "TRANSCODING", "UPLOADING")

_CODECS = {"h264": "H_264", "hevc": "H_265", "mpeg2video": "MPEG2", "prores": "PRORES", "vp8": "VP8", "vp9": "VP9"}


def input_details(uri: str, info: MediaInfo) -> list[dict[str, Any]]:
    """INPUT_INFORMATION's `inputDetails` for the job's one input."""
    pixel_format = info.pixel_format or ""
    video = {
        "bitDepth": 10 if "10" in pixel_format else 8,
        "codec": _CODECS.get(info.video_codec, info.video_codec.upper()),
        "colorFormat": "YUV_444" if "444" in pixel_format else "YUV_422" if "422" in pixel_format else "YUV_420",
        "frameRate": round(info.frame_rate, 3) if info.frame_rate else None,
        "height": info.coded_height,
        "interlaceMode": "PROGRESSIVE",
        "sar": info.sample_aspect_ratio or "1:1",
        "width": info.coded_width,
    }
    return [{"id": 1, "uri": uri, "video": [{k: v for k, v in video.items() if v is not None}]}]


def job_progress(phase: str, phase_percent: int, job_percent: int) -> dict[str, Any]:
    """STATUS_UPDATE's `jobProgress`: earlier phases COMPLETE, the current one PROGRESSING, later ones PENDING."""
    current = PHASES.index(phase)
    progress = {}
    for index, name in enumerate(PHASES):
        if index < current:
            progress[name] = {"status": "COMPLETE", "percentComplete": 100}
        elif index == current:
            progress[name] = {"status": "PROGRESSING", "percentComplete": phase_percent}
        else:
            progress[name] = {"status": "PENDING", "percentComplete": 0}
    return {"phaseProgress": progress, "jobPercentComplete": job_percent, "currentPhase": phase, "retryCount": 0}


class EventPublisher:
    """Puts a job's state changes on the default bus; a put that fails is logged, as a lost event would go unseen."""

    def __init__(self, events_client: Any, account_id: str, clock: Callable[[], float] = time.time) -> None:
        self._events = events_client
        self._account = account_id
        self._clock = clock

    def detail(self, job: Job, status: str, **extra: Any) -> dict[str, Any]:
        return {
            "timestamp": int(self._clock() * 1000),
            "accountId": self._account,
            "queue": job.queue.arn,
            "jobId": job.id,
            "status": status,
            "userMetadata": dict(job.user_metadata),
            **extra,
        }

    def publish(self, job: Job, status: str, **extra: Any) -> bool:
        """Puts the event; False (logged) when EventBridge refused it or could not be reached."""
        detail = self.detail(job, status, **extra)
        entry = {
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(detail),
            "Resources": [job.arn],
            "EventBusName": DEFAULT_BUS,
            "Time": datetime.fromtimestamp(detail["timestamp"] / 1000, UTC),
        }
        try:
            response = self._events.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as err:
            log.warning("MediaConvert job %s: %s event not put: %s", job.id, status, err)
            return False
        if response.get("FailedEntryCount"):
            log.warning("MediaConvert job %s: %s event refused: %s", job.id, status, response.get("Entries"))
            return False
        return True
