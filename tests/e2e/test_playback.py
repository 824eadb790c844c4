"""Playback from both engines, read back over HTTP from the local cloud's CDN the way a player reads it.

The session's two engine jobs (tests/e2e/conftest.py `engine_jobs`: a Lambda job and a MediaConvert one) each carry
`playback` once COMPLETED. Every assertion runs on both: ffprobe opens the master and every variant playlist over
HTTP with the signed query only (the variants and segments it then fetches carry the signature as the cookies the
CDN set); segments are 2 s; each variant's BANDWIDTH covers its measured peak; keyframes sit on the same 2 s grid in
every variant; poster and sprite sizes match the ladder and the VTT's boxes. Then the CDN refuses what CloudFront
would: a tampered signature, another job's folder, an expired policy, no signature at all.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import pytest
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from PIL import Image, ImageStat

from functions.common.media_tools import ffprobe_path, tool_env
from tests.e2e.conftest import FPS_BY_ENGINE, LADDER, LAMBDA_SECONDS, MEDIACONVERT_SECONDS, RunningCloud

pytestmark = pytest.mark.e2e

ENGINES = ("lambda", "mediaconvert")
SEGMENT_SECONDS = 2.0
SIGNING_PARAMETERS = ("Policy", "Signature", "Key-Pair-Id")


# --- reading over HTTP --------------------------------------------------------------------------------------------


def fetch(url: str, cookies: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    """GET through the CDN: status, body, headers (lower-cased names); a refusal's status too, never an exception."""
    request = urllib.request.Request(url, headers={"Cookie": cookies} if cookies else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, err.read(), {k.lower(): v for k, v in err.headers.items()}


def ok(url: str) -> bytes:
    status, body, _ = fetch(url)
    assert status == 200, (url, status, body[:300])
    return body


def query_of(url: str) -> str:
    return urlsplit(url).query


def sibling(url: str, relative: str) -> str:
    """`relative` resolved against `url`, carrying `url`'s signed query (as a player told to append it would)."""
    return f"{urljoin(url.split('?', 1)[0], relative)}?{query_of(url)}"


def ffprobe_json(url: str, *args: str) -> dict[str, Any]:
    """ffprobe over HTTP, given the signed URL only (what ffprobe then fetches has no query: cookies carry it)."""
    command = [ffprobe_path(), "-v", "error", "-of", "json", *args, url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=tool_env(), check=False)
    assert result.returncode == 0, (url, result.stderr[-2000:])
    return json.loads(result.stdout)


def stream_inf(master: str) -> list[tuple[dict[str, str], str]]:
    lines = [line.strip() for line in master.splitlines() if line.strip()]
    variants = []
    for line, uri in itertools.pairwise(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            variants.append(({k: v.strip('"') for k, v in attributes.items()}, uri))
    return variants


def media_segments(playlist: str) -> tuple[str, list[tuple[float, str]]]:
    """(init segment URI, [(EXTINF seconds, segment URI)]) of a media playlist."""
    init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist)
    assert init, playlist
    lines = [line.strip() for line in playlist.splitlines() if line.strip()]
    segments = [
        (float(line.split(":", 1)[1].rstrip(",").split(",")[0]), uri)
        for line, uri in itertools.pairwise(lines)
        if line.startswith("#EXTINF:")
    ]
    return init.group(1), segments


# --- the jobs -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playback_jobs(engine_jobs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    jobs = {"lambda": engine_jobs["short"], "mediaconvert": engine_jobs["long"]}
    for engine, job in jobs.items():
        assert (job["status"], job["engine"], job["error"]) == ("COMPLETED", engine, None), job
    return jobs


def seconds_of(engine: str) -> float:
    return LAMBDA_SECONDS if engine == "lambda" else MEDIACONVERT_SECONDS


@pytest.mark.parametrize("engine", ENGINES)
def test_the_job_view_carries_signed_playback_links(playback_jobs: dict[str, dict[str, Any]], engine: str) -> None:
    job = playback_jobs[engine]
    playback = job["playback"]
    assert set(playback) == {"hls", "poster", "thumbnails", "expiresAt"}
    links = [playback["hls"], playback["poster"], playback["thumbnails"]["vtt"], playback["thumbnails"]["sprite"]]
    folder = f"/outputs/{job['jobId']}/"
    assert [urlsplit(link).path.removeprefix(folder) for link in links] == [
        "hls/master.m3u8",
        "poster.jpg",
        "thumbnails/thumbnails.vtt",
        "thumbnails/sprite.jpg",
    ]
    signatures = {tuple(parse_qs(urlsplit(link).query)[p][0] for p in SIGNING_PARAMETERS) for link in links}
    assert len(signatures) == 1, "one signature serves the whole package"
    assert datetime.fromisoformat(playback["expiresAt"].replace("Z", "+00:00")) > datetime.now(UTC)


@pytest.mark.parametrize("engine", ENGINES)
def test_ffprobe_plays_the_master_and_every_variant_over_http(
    playback_jobs: dict[str, dict[str, Any]], engine: str
) -> None:
    hls = playback_jobs[engine]["playback"]["hls"]
    master = ffprobe_json(hls, "-show_programs", "-show_format")
    sizes = sorted(
        (s["width"], s["height"]) for p in master["programs"] for s in p["streams"] if s["codec_type"] == "video"
    )
    assert sizes == sorted(LADDER.values())
    assert abs(float(master["format"]["duration"]) - seconds_of(engine)) < 0.5

    variants = stream_inf(ok(hls).decode())
    assert [uri for _, uri in variants] == [f"{name}/index.m3u8" for name in LADDER]
    for (attributes, uri), (width, height) in zip(variants, LADDER.values(), strict=True):
        info = ffprobe_json(sibling(hls, uri), "-show_streams", "-show_format")
        video = next(s for s in info["streams"] if s["codec_type"] == "video")
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", width, height)
        assert any(s["codec_type"] == "audio" and s["codec_name"] == "aac" for s in info["streams"])
        assert abs(float(info["format"]["duration"]) - seconds_of(engine)) < 0.5
        assert attributes["RESOLUTION"] == f"{width}x{height}"
        assert re.fullmatch(r"avc1\.64[0-9a-f]{4},mp4a\.40\.2", attributes["CODECS"]), attributes
        assert abs(float(attributes["FRAME-RATE"]) - FPS_BY_ENGINE[engine]) < 0.01


@pytest.mark.parametrize("engine", ENGINES)
def test_segments_are_two_seconds_and_bandwidth_covers_the_measured_peak(
    playback_jobs: dict[str, dict[str, Any]], engine: str
) -> None:
    hls = playback_jobs[engine]["playback"]["hls"]
    frame = 1 / FPS_BY_ENGINE[engine]
    for attributes, uri in stream_inf(ok(hls).decode()):
        playlist_url = sibling(hls, uri)
        init, segments = media_segments(ok(playlist_url).decode())
        durations = [seconds for seconds, _ in segments]
        assert all(abs(d - SEGMENT_SECONDS) <= frame + 1e-3 for d in durations[:-1]), durations
        assert 0 < durations[-1] < 1.5 * SEGMENT_SECONDS + frame, durations  # a tail under 1 s joins the last
        assert abs(sum(durations) - seconds_of(engine)) < 0.5
        sizes = [len(ok(sibling(playlist_url, segment))) for _, segment in segments]
        sizes[0] += len(ok(sibling(playlist_url, init)))
        # served with the types players expect (RFC 8216: playlists; CMAF media segments; the init segment is MP4)
        assert fetch(playlist_url)[2]["content-type"] == "application/vnd.apple.mpegurl"
        assert fetch(sibling(playlist_url, segments[0][1]))[2]["content-type"] == "video/iso.segment"
        assert fetch(sibling(playlist_url, init))[2]["content-type"] == "video/mp4"
        peak = max(math.ceil(size * 8 / seconds) for size, seconds in zip(sizes, durations, strict=True))
        average = math.ceil(sum(sizes) * 8 / sum(durations))
        assert int(attributes["BANDWIDTH"]) >= peak, (attributes, peak)
        assert int(attributes["AVERAGE-BANDWIDTH"]) >= average - 1, (attributes, average)
        assert int(attributes["AVERAGE-BANDWIDTH"]) <= int(attributes["BANDWIDTH"])


@pytest.mark.parametrize("engine", ENGINES)
def test_keyframes_align_across_variants_on_the_two_second_grid(
    playback_jobs: dict[str, dict[str, Any]], engine: str
) -> None:
    hls = playback_jobs[engine]["playback"]["hls"]
    frame = 1 / FPS_BY_ENGINE[engine]
    keyframes = []
    for _, uri in stream_inf(ok(hls).decode()):
        packets = ffprobe_json(sibling(hls, uri), "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags")
        times = [float(p["pts_time"]) for p in packets["packets"] if "K" in p["flags"]]
        start = times[0]
        keyframes.append([round(t - start, 3) for t in times])
    expected = [i * SEGMENT_SECONDS for i in range(math.ceil(seconds_of(engine) / SEGMENT_SECONDS))]
    for times in keyframes:
        assert len(times) == len(expected), times
        assert all(abs(t - e) <= frame / 2 for t, e in zip(times, expected, strict=True)), times
    assert all(times == keyframes[0] for times in keyframes)


@pytest.mark.parametrize("engine", ENGINES)
def test_poster_and_sprite_match_the_ladder_and_the_vtt(playback_jobs: dict[str, dict[str, Any]], engine: str) -> None:
    playback = playback_jobs[engine]["playback"]
    poster = Image.open(io.BytesIO(ok(playback["poster"])))
    assert (poster.format, poster.size) == ("JPEG", max(LADDER.values()))
    assert ImageStat.Stat(poster.convert("L")).mean[0] > 16, "the poster is not a black frame"

    vtt_url = playback["thumbnails"]["vtt"]
    vtt = ok(vtt_url).decode()
    assert vtt.startswith("WEBVTT")
    cues = re.findall(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\s+(\S+)#xywh=(\d+),(\d+),(\d+),(\d+)", vtt)
    assert cues, vtt
    sprite_url = playback["thumbnails"]["sprite"]
    assert {sibling(vtt_url, image).split("?")[0] for *_, image, _, _, _, _ in cues} == {sprite_url.split("?")[0]}
    sprite = Image.open(io.BytesIO(ok(sprite_url)))
    assert sprite.format == "JPEG"

    def seconds(stamp: str) -> float:
        hours, minutes, rest = stamp.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(rest)

    boxes = [tuple(int(v) for v in cue[3:]) for cue in cues]
    tile = boxes[0][2:]
    assert all(box[2:] == tile for box in boxes)
    columns, rows = len({x for x, *_ in boxes}), len({y for _, y, *_ in boxes})
    assert sprite.size == (columns * tile[0], rows * tile[1]), "the sprite is exactly its tiles"
    assert boxes == [((i % columns) * tile[0], (i // columns) * tile[1], *tile) for i in range(len(boxes))]
    assert tile[0] * max(LADDER.values())[1] == pytest.approx(tile[1] * max(LADDER.values())[0], rel=0.05)
    assert all(x + w <= sprite.width and y + h <= sprite.height for x, y, w, h in boxes)
    assert len(set(boxes)) == len(boxes), "every tile has its own box"
    spans = [(seconds(start), seconds(end)) for start, end, *_ in cues]
    assert spans[0][0] == 0 and abs(spans[-1][1] - seconds_of(engine)) < 0.1
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), "the cues cover the video without gaps"


# --- refusals -----------------------------------------------------------------------------------------------------


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return urlunsplit(parts._replace(query=urlencode(query, safe="~")))


def test_the_cdn_refuses_a_tampered_signature_another_jobs_folder_and_no_signature(
    playback_jobs: dict[str, dict[str, Any]],
) -> None:
    hls = playback_jobs["lambda"]["playback"]["hls"]
    signature = parse_qs(urlsplit(hls).query)["Signature"][0]
    tampered = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert refusal(fetch(with_query(hls, Signature=tampered))) == "AccessDenied"
    assert refusal(fetch(hls.split("?", 1)[0])) == "MissingKey"

    other = playback_jobs["mediaconvert"]
    others_master = other["playback"]["hls"].split("?", 1)[0]
    assert refusal(fetch(f"{others_master}?{query_of(hls)}")) == "AccessDenied", "a signature covers its own folder"
    assert refusal(fetch(others_master, cookies=signed_cookies(hls))) == "AccessDenied"
    assert fetch(f"{others_master}?{query_of(other['playback']['hls'])}")[0] == 200


def refusal(answer: tuple[int, bytes, dict[str, str]]) -> str:
    """The CDN's own refusal code of a 403 (a signature check), not a 403 relayed from the bucket."""
    status, body, headers = answer
    assert (status, headers.get("x-cache")) == (403, "Error from cloudfront"), (status, headers, body[:300])
    found = re.search(rb"<Code>([A-Za-z]+)</Code>", body)
    assert found, body[:300]
    return found.group(1).decode()


def signed_cookies(url: str) -> str:
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    return "; ".join(f"CloudFront-{name}={query[name]}" for name in SIGNING_PARAMETERS)


def test_the_cdn_refuses_an_expired_url(pipeline_cloud: RunningCloud, playback_jobs: dict[str, dict[str, Any]]) -> None:
    """Signed with the stack's own key (the local cloud's, in its state directory), valid until a moment passed."""
    hls = playback_jobs["lambda"]["playback"]["hls"]
    key = serialization.load_pem_private_key(cdn_key_path(pipeline_cloud).read_bytes(), password=None)
    key_pair_id = parse_qs(urlsplit(hls).query)["Key-Pair-Id"][0]
    signer = CloudFrontSigner(key_pair_id, lambda message: key.sign(message, padding.PKCS1v15(), hashes.SHA1()))
    base = hls.split("?", 1)[0]
    folder = base.rsplit("/hls/", 1)[0] + "/*"
    expired = signer.generate_presigned_url(
        base, policy=signer.build_policy(folder, date_less_than=datetime.now(UTC) - timedelta(seconds=5))
    )
    fresh = signer.generate_presigned_url(
        base, policy=signer.build_policy(folder, date_less_than=datetime.now(UTC) + timedelta(minutes=5))
    )
    assert refusal(fetch(expired)) == "AccessDenied"
    assert fetch(fresh)[0] == 200, "the same key and folder sign a URL the CDN honours while it is valid"


def cdn_key_path(cloud: RunningCloud) -> Path:
    return cloud.state_dir / "cdn-key.pem"
