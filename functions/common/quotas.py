"""Per-user quotas: open uploads, jobs per hour and stored bytes, as plain data in and out (docs/CONTRACTS.md).

One usage record per owner holds everything the three limits need, bounded in size whatever the owner does:

- `openUploads`: when each open upload form expires (ms). A form counts as open from the moment it is issued until
  it expires, whether or not the file was sent meanwhile: it can be used until then, and counting it so needs no
  write from any other function. At most `maxOpenUploadsPerUser` entries, expired ones dropped at every write.
- `hourStart`, `jobsThisHour`: the jobs created in the current clock hour (UTC).
- `storedByDay`: the declared upload sizes of the jobs created each UTC day, for the days whose jobs may still be
  kept (the job retention): stored bytes are the declared sizes of the owner's retained jobs. The declared size is
  what the upload form admits at most, known when the job is created, so the limit holds before a byte is sent;
  outputs are derived and bounded by the ladder, sources are what a user controls. A day is dropped once every job
  created on it is past its retention. At most retention-days + 1 entries.

`admit` is the whole rule: the usage after one more job, or QuotaExceeded naming the limit, its value, the usage and
when to retry. The adapter writes its result conditionally on the version it read, with the job, in one
transaction, so concurrent requests cannot pass a limit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class QuotaLimits:
    """The per-user limits; 0 means no limit."""

    open_uploads: int
    jobs_per_hour: int
    stored_bytes: int


@dataclass(frozen=True)
class Usage:
    """One owner's usage as the usage record holds it (`version` 0: no record yet)."""

    open_uploads: tuple[int, ...] = ()
    """Expiry (ms) of each open upload form, soonest first."""
    hour_start: int = 0
    """Start (ms) of the hour `jobs_this_hour` counts."""
    jobs_this_hour: int = 0
    stored_by_day: dict[int, int] = field(default_factory=dict)
    """Start (ms) of a UTC day -> declared bytes of the jobs created on it."""
    version: int = 0

    def current(self, now_ms: int, retention_ms: int) -> Usage:
        """What still counts at `now_ms`: open forms not yet expired, this hour's jobs, retained days."""
        hour = now_ms - now_ms % HOUR_MS
        return replace(
            self,
            open_uploads=tuple(sorted(expiry for expiry in self.open_uploads if expiry > now_ms)),
            hour_start=hour,
            jobs_this_hour=self.jobs_this_hour if self.hour_start == hour else 0,
            stored_by_day={
                day: size for day, size in self.stored_by_day.items() if day + DAY_MS + retention_ms > now_ms
            },
        )

    @property
    def stored_bytes(self) -> int:
        return sum(self.stored_by_day.values())

    def expires_at_ms(self, retention_ms: int) -> int:
        """When nothing in the record counts any more (its TTL)."""
        ends = [*self.open_uploads, self.hour_start + HOUR_MS]
        ends += [day + DAY_MS + retention_ms for day in self.stored_by_day]
        return max(ends)


class QuotaExceeded(Exception):
    """A request over one of the owner's limits: which, its value, the usage, and seconds until it could pass."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_seconds = max(1, retry_after_seconds)


class LargerThanQuota(Exception):
    """An upload that could never fit the stored-bytes limit, however long the owner waited."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _seconds_until(when_ms: int, now_ms: int) -> int:
    return -(-(when_ms - now_ms) // 1000)  # rounded up: retrying any earlier is refused again


def admit(
    usage: Usage, *, size: int, now_ms: int, form_expires_ms: int, retention_ms: int, limits: QuotaLimits
) -> Usage:
    """The usage once one more job of `size` declared bytes, with a form open until `form_expires_ms`, is created;
    QuotaExceeded when that would pass a limit (the first one, in the order open uploads, jobs, bytes)."""
    if limits.stored_bytes and size > limits.stored_bytes:
        raise LargerThanQuota(f"size must be at most your stored-bytes limit of {limits.stored_bytes} bytes")
    now = usage.current(now_ms, retention_ms)
    if limits.open_uploads and len(now.open_uploads) >= limits.open_uploads:
        freed_at = now.open_uploads[len(now.open_uploads) - limits.open_uploads]
        raise QuotaExceeded(
            f"open uploads: you have {len(now.open_uploads)} upload forms open and the limit is "
            f"{limits.open_uploads}; the oldest expires in {_seconds_until(freed_at, now_ms)} s",
            _seconds_until(freed_at, now_ms),
        )
    if limits.jobs_per_hour and now.jobs_this_hour >= limits.jobs_per_hour:
        next_hour = now.hour_start + HOUR_MS
        raise QuotaExceeded(
            f"jobs per hour: you created {now.jobs_this_hour} jobs this hour and the limit is "
            f"{limits.jobs_per_hour}; the next hour starts in {_seconds_until(next_hour, now_ms)} s",
            _seconds_until(next_hour, now_ms),
        )
    if limits.stored_bytes and now.stored_bytes + size > limits.stored_bytes:
        raise QuotaExceeded(
            f"stored bytes: your jobs hold {now.stored_bytes} bytes, this upload would add {size} and the limit is "
            f"{limits.stored_bytes}",
            _seconds_until(_room_at(now, size, limits.stored_bytes, retention_ms), now_ms),
        )
    today = now_ms - now_ms % DAY_MS
    return replace(
        now,
        open_uploads=(*now.open_uploads, form_expires_ms) if limits.open_uploads else (),
        jobs_this_hour=now.jobs_this_hour + 1,
        stored_by_day={**now.stored_by_day, today: now.stored_by_day.get(today, 0) + size},
    )


def release(usage: Usage, *, size: int, created_ms: int) -> Usage | None:
    """The usage once a deleted job's declared bytes no longer count (they counted on the day it was created); None
    when they no longer counted anyway."""
    day = created_ms - created_ms % DAY_MS
    held = usage.stored_by_day.get(day, 0)
    if not held or not size:
        return None
    return replace(usage, stored_by_day={**usage.stored_by_day, day: max(0, held - size)})


def _room_at(usage: Usage, size: int, limit: int, retention_ms: int) -> int:
    """When enough retained days have been dropped for `size` (at most the limit) more bytes to fit."""
    stored = usage.stored_bytes
    when = 0
    for day in sorted(usage.stored_by_day):
        stored -= usage.stored_by_day[day]
        when = day + DAY_MS + retention_ms
        if stored + size <= limit:
            break
    return when
