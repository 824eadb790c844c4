"""`python -m local`: run the pipeline's Pulumi program as a local cloud, and act as its client."""

from __future__ import annotations

import argparse
import errno
import importlib.metadata
import json
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from local.cli import operator
from local.cli.artifact_check import check_artifacts
from local.cli.client import FINAL_STATUSES, ApiClient, ApiError, download, post_form
from local.cli.display import ProgressBar, fields, human_bytes, table, truncate
from local.cli.receiver import (
    OWN_VERIFIER,
    REFERENCE_VERIFIER,
    Delivery,
    WebhookReceiver,
    deregister,
    listen_and_register,
)
from local.cli.smoke import Step, run_smoke
from local.cloud import (
    DEFAULT_LAYER,
    DEPLOYMENT_FILE,
    OUTPUTS_FILE,
    PROJECT_DIR,
    WORKERS_FILE,
    CloudConfigError,
    CloudOptions,
    LocalCloud,
    reset_state,
)
from local.engine.deployment import Behaviour, ResourceType
from local.engine.program import ProgramFailed
from local.engine.stack_config import ConfigError, parse_override
from local.runtime.auth import AuthorizerSettings, SigningKey, issue_token
from local.runtime.gateway import GatewayConfigError

DEFAULT_SUBJECT = "local-user"
SIGNATURE_SHOWN_CHARS = 24


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir) if args.state_dir else Path(args.project_dir) / ".local"


def _read_json(path: Path, hint: str) -> Any:
    if not path.exists():
        raise SystemExit(f"{path} not found: {hint}")
    return json.loads(path.read_text())


def _cloud_options(args: argparse.Namespace) -> CloudOptions:
    state = _state_dir(args)
    layers = [p for p in (DEFAULT_LAYER, state / "Pulumi.local.yaml") if p.exists()]
    layers += [Path(p) for p in args.config_file or []]
    return CloudOptions(
        project_dir=Path(args.project_dir).resolve(),
        stack=args.stack,
        state_dir=state,
        port=args.port,
        cdn_port=args.cdn_port,
        layers=layers,
        overrides=dict(parse_override(item) for item in args.config or []),
        time_scale=args.time_scale,
        concurrency=args.concurrency,
        progress=lambda message: print(message, file=sys.stderr, flush=True),
    )


def _token_for(state: Path, subject: str, ttl: int = 3600) -> str:
    settings = AuthorizerSettings.load(state)
    return issue_token(SigningKey.load_or_create(state), settings, subject, ttl)


def _resource_summary(cloud: LocalCloud) -> str:
    assert cloud.deployment is not None
    rows = [
        (r.behaviour, r.type.removeprefix("aws:"), r.name, r.id if len(r.id) < 70 else "…" + r.id[-69:], r.note)
        for r in sorted(
            cloud.deployment.resources, key=lambda r: (r.behaviour != Behaviour.RUNTIME, r.behaviour, r.type)
        )
    ]
    counts = {b: sum(1 for r in cloud.deployment.resources if r.behaviour == b) for b in Behaviour}
    deliveries = []
    for delivery in cloud.deployment.deliveries:
        policy = cloud.deployment.async_invoke_policy(cloud.deployment.function_by_reference(delivery.function_arn))
        failure = policy.on_failure_arn or policy.dead_letter_arn or "-"
        deliveries.append((delivery.source, delivery.shape, policy.max_retry_attempts, failure.rsplit(":", 1)[-1]))
    text = table(("behaviour", "type", "name", "id", "note"), rows)
    if deliveries:
        text += "\n\nLocal deliveries (targets moto cannot invoke):\n"
        text += table(("source", "event shape", "retries", "on failure"), deliveries)
    summary = ", ".join(f"{count} {behaviour}" for behaviour, count in counts.items())
    return f"{text}\n\n{len(cloud.deployment.resources)} resources: {summary}"


def _start_cloud(args: argparse.Namespace, echo_logs: bool) -> LocalCloud:
    cloud = LocalCloud(_cloud_options(args), echo=sys.stdout if echo_logs else None)
    started = time.monotonic()
    try:
        cloud.start()
    except BaseException:
        cloud.stop()
        raise
    print(f"local cloud ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return cloud


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def command_up(args: argparse.Namespace) -> int:
    # During startup an interrupt unwinds normally; once serving, a signal only asks the main loop to stop, so
    # it can never land inside a lock's internals.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    cloud = _start_cloud(args, echo_logs=args.logs)
    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop_requested.set())
    try:
        state = cloud.options.state
        print(_resource_summary(cloud))
        token = _token_for(state, DEFAULT_SUBJECT)
        print(f"\nAPI:      {cloud.api_url}")
        if cloud.cdn_url:
            print(f"CDN:      {cloud.cdn_url}  (the distribution; signed URLs from the API play from here)")
        if console := cloud.deployment.outputs.get("consoleUrl"):
            print(f"Console:  {console}  (sign in with any name; {DEFAULT_SUBJECT} owns the demo's jobs)")
        print(f"Emulator: {cloud.emulator.endpoint if cloud.emulator else '-'}")
        print(f"Outputs:  {state / OUTPUTS_FILE}")
        print(f"Logs:     {state / 'logs'}/<function>.log")
        print(f"Token ({DEFAULT_SUBJECT}, 1 h): {token}")
        print(f'Try:      curl -H "Authorization: Bearer $(python -m local token --sub me)" {cloud.api_url}jobs')
        print("Ctrl-C stops everything.", flush=True)
        while not stop_requested.wait(0.5):
            pass
        print("\nstopping…", file=sys.stderr)
    finally:
        stopping = time.monotonic()
        cloud.stop()
    print(f"stopped in {time.monotonic() - stopping:.1f} s", file=sys.stderr)
    return 0


def command_reset(args: argparse.Namespace) -> int:
    state = _state_dir(args)
    removed = reset_state(state)
    for path in removed:
        print(f"removed {path}")
    if not removed:
        print(f"{state} holds no local cloud state")
    print("kept the artifact cache, config layers and the CDN key; the next start is an empty cloud with new names")
    return 0


def command_check_artifacts(args: argparse.Namespace) -> int:
    cloud = _start_cloud(args, echo_logs=args.logs)
    try:
        results = check_artifacts(cloud)
    finally:
        cloud.stop()
    rows = [(r.function, r.event, f"{r.milliseconds:.0f}", r.problem or "ok") for r in results]
    print(table(("function", "event", "ms", "answer"), rows))
    failed = [r for r in results if r.problem]
    print(f"\n{len(results) - len(failed)} of {len(results)} functions answered from their own artifacts")
    return 1 if failed else 0


def command_smoke(args: argparse.Namespace) -> int:
    """The deployed pipeline, end to end through its public API; exit 0 only if every step passed."""
    if args.api:
        api, token = args.api, args.token
    else:
        state = _state_dir(args)
        api = _read_json(state / OUTPUTS_FILE, "start `python -m local up`, or pass --api and --token")["apiUrl"]
        token = args.token or _token_for(state, DEFAULT_SUBJECT)
    if not token:
        raise SystemExit("--token is required with --api: a bearer token your stack's issuer signed")

    def echo(step: Step) -> None:
        mark = "ok  " if step.ok else "FAIL"
        print(f"{mark} {step.name:<18} {step.seconds:6.1f} s  {step.detail}", flush=True)

    with tempfile.TemporaryDirectory(prefix="smoke-") as work_dir:
        print(f"smoke test of {api}", flush=True)
        run = run_smoke(api, token, Path(work_dir), webhook_url=args.webhook_url, timeout=args.timeout, echo=echo)
    print("passed" if run.ok else f"failed at: {run.steps[-1].name}")
    return 0 if run.ok else 1


def command_token(args: argparse.Namespace) -> int:
    print(_token_for(_state_dir(args), args.sub, args.ttl))
    return 0


def _print_job_line(job: dict[str, Any]) -> str:
    renditions = " ".join(f"{r['name']}:{r['status']}" for r in job.get("renditions") or [])
    return f"{job['status']:<15} {renditions}"


def upload_and_follow(client: ApiClient, path: Path, timeout_seconds: float) -> dict[str, Any]:
    """The client flow: POST /uploads, send the file to the form with a progress bar, follow the job."""
    created = client.create_upload(path)
    job_id = created["jobId"]
    print(f"job {job_id}: {created['status']}", file=sys.stderr)
    bar = ProgressBar(f"upload  {path.name}")
    status = post_form(
        created["upload"]["url"],
        created["upload"]["fields"],
        path,
        lambda sent, total: bar.update(sent / total, human_bytes(sent)),
    )
    bar.close()
    if status not in (200, 201, 204):
        raise ApiError(status, "the upload form was refused")
    progress = ProgressBar("process ")
    job = client.follow(
        job_id, lambda j: progress.update((j.get("progress") or 0) / 100, _print_job_line(j)), timeout_seconds
    )
    progress.close()
    return job


def rendition_table(job: dict[str, Any]) -> str:
    rows = [
        (
            r["name"],
            r["status"],
            f"{r.get('width')}x{r.get('height')}" if r.get("width") else "-",
            f"{(r.get('durationMs') or 0) / 1000:.2f} s" if r.get("durationMs") else "-",
            human_bytes(r.get("bytes")),
            r.get("reason") or "",
        )
        for r in job.get("renditions") or []
    ]
    return table(("rendition", "status", "resolution", "duration", "size", "reason"), rows)


def _job_outcome(job: dict[str, Any]) -> int:
    print(f"job {job['jobId']}: {job['status']}")
    if job.get("error"):
        print(f"error: {job['error'].get('code')}: {job['error'].get('message')}")
    print(rendition_table(job))
    return 0 if job["status"] == "COMPLETED" else 1


def command_upload(args: argparse.Namespace) -> int:
    state = _state_dir(args)
    api_url = args.api or _read_json(state / OUTPUTS_FILE, "start the local cloud (python -m local up)")["apiUrl"]
    client = ApiClient(api_url, args.token or _token_for(state, args.sub))
    try:
        job = upload_and_follow(client, Path(args.file), args.timeout)
    except ApiError as err:
        print(f"upload failed: {err}", file=sys.stderr)
        return 1
    return _job_outcome(job)


def _queue_rows(
    sqs: Any, queues: list[dict[str, str]], dead_letter_arns: set[str]
) -> tuple[list[tuple[Any, ...]], list[str]]:
    attributes_by_url = {
        q["url"]: sqs.get_queue_attributes(QueueUrl=q["url"], AttributeNames=["All"])["Attributes"] for q in queues
    }
    rows, dlqs = [], []
    for queue in queues:
        attributes = attributes_by_url[queue["url"]]
        is_dlq = queue["arn"] in dead_letter_arns
        if is_dlq:
            dlqs.append(queue["url"])
        rows.append(
            (
                queue["name"],
                "DLQ" if is_dlq else "",
                attributes.get("ApproximateNumberOfMessages"),
                attributes.get("ApproximateNumberOfMessagesNotVisible"),
            )
        )
    return rows, dlqs


def command_status(args: argparse.Namespace) -> int:
    from local.engine.emulator import Emulator

    state = _state_dir(args)
    deployment = _read_json(state / DEPLOYMENT_FILE, "start the local cloud (python -m local up)")
    if not (state / OUTPUTS_FILE).exists():
        raise SystemExit("the local cloud is not running (no .local/outputs.json)")
    emulator = Emulator.attach(deployment["emulatorEndpoint"], deployment["region"])
    sqs = emulator.client("sqs")
    rows, dlqs = _queue_rows(sqs, deployment["queues"], set(deployment["deadLetterArns"]))
    print("Queues")
    print(table(("queue", "", "visible", "in flight"), rows))
    for url in dlqs:
        peeked = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=5, VisibilityTimeout=0).get("Messages", [])
        for message in peeked:
            print(f"  {url.rsplit('/', 1)[1]}: {message['Body'][:160]}")
    dynamodb = emulator.client("dynamodb")
    for resource in deployment["resources"]:
        if resource["type"] != ResourceType.DYNAMODB_TABLE:
            continue
        items = dynamodb.scan(TableName=resource["id"], Limit=100).get("Items", [])
        jobs = [i for i in items if "jobId" in i and "status" in i]
        print(f"\nTable {resource['id']}: {len(items)} items (first 100 scanned)")
        if jobs:
            jobs.sort(key=lambda i: int(i.get("createdAt", {}).get("N", "0")), reverse=True)
            job_rows = [
                (
                    j["jobId"]["S"],
                    j.get("ownerId", {}).get("S"),
                    j["status"]["S"],
                    j.get("progress", {}).get("N", "-"),
                    j.get("error", {}).get("M", {}).get("code", {}).get("S", ""),
                )
                for j in jobs[:20]
            ]
            print(table(("job", "owner", "status", "progress", "error"), job_rows))
    workers = _read_json(state / WORKERS_FILE, "the local cloud is not running")
    print("\nFunctions")
    function_rows = [
        (name, f["stats"]["invocations"], f["stats"]["errors"], f["stats"]["timeouts"], len(f["workers"]))
        for name, f in workers["functions"].items()
    ]
    print(table(("function", "invocations", "errors", "timeouts", "workers"), function_rows))
    refusals = workers.get("refusals") or []
    if refusals:
        print("\nDeliveries refused by a policy or permission (most recent last)")
        rows = [
            (r["service"], r["source"].rsplit(":", 1)[-1], r["destination"].rsplit(":", 1)[-1]) for r in refusals[-10:]
        ]
        print(table(("service", "from", "to"), rows))
        print(f"  why (last): {refusals[-1]['reason']}")
    return 0


def delivery_lines(delivery: Delivery) -> str:
    """A received webhook as the demo and `webhooks listen` show it: headers, event, job, verdict."""
    rows: list[tuple[str, object]] = [
        ("webhook-id", delivery.headers.get("webhook-id")),
        ("webhook-timestamp", delivery.headers.get("webhook-timestamp")),
        ("webhook-signature", truncate(delivery.headers.get("webhook-signature", ""), SIGNATURE_SHOWN_CHARS)),
        ("type", delivery.event_type),
        ("data.jobId", delivery.data.get("jobId")),
        ("data.status", delivery.data.get("status")),
        ("answered", delivery.status),
    ]
    return fields(rows)


def verdict_line(delivery: Delivery) -> str:
    if not delivery.valid:
        return f"signature NOT verified: {delivery.error}"
    if delivery.reference_verified:
        version = importlib.metadata.version(REFERENCE_VERIFIER)
        return f"signature verified ({OWN_VERIFIER}; cross-checked with {REFERENCE_VERIFIER} {version})"
    return f"signature verified ({OWN_VERIFIER}; {REFERENCE_VERIFIER} is not installed, no cross-check)"


def _delivery_log_hint(client: ApiClient, endpoint_id: str | None) -> str:
    """The pipeline's own record of its last attempt (GET /webhooks/{id}/deliveries), to explain a missing webhook."""
    if endpoint_id is None:
        return ""
    try:
        attempts = client.webhook_deliveries(endpoint_id, limit=1)
    except (ApiError, OSError) as err:
        return f" (the delivery log could not be read: {err})"
    if not attempts:
        return " (the pipeline has not attempted a delivery yet)"
    last = attempts[0]
    return f" (last attempt {last['attempt']}: {last['outcome']}, status {last['statusCode']}, error {last['error']})"


def report_webhook(receiver: WebhookReceiver, client: ApiClient, job: dict[str, Any], timeout_seconds: float) -> int:
    """Waits for the webhook of the job's final state and shows it; 0 only if it arrived, verified and agrees."""
    job_id = job["jobId"]
    waiting_since = time.monotonic()
    if not any(d.concerns(job_id) for d in receiver.deliveries):
        print(f"waiting up to {timeout_seconds:g} s for the webhook at {receiver.url}…", file=sys.stderr)
    delivery = receiver.wait_for(lambda d: d.concerns(job_id), timeout_seconds)
    waited = time.monotonic() - waiting_since
    if delivery is None:
        hint = _delivery_log_hint(client, receiver.endpoint_id)
        print(
            f"demo failed: no webhook for job {job_id} reached {receiver.url} in {timeout_seconds:g} s{hint}",
            file=sys.stderr,
        )
        return 1
    print(f"\nwebhook received at {receiver.url}" + (f" after waiting {waited:.1f} s" if waited >= 0.1 else ""))
    print(delivery_lines(delivery))
    print(verdict_line(delivery))
    if not delivery.valid:
        print("demo failed: the webhook's signature did not verify", file=sys.stderr)
        return 1
    if delivery.data.get("status") != job["status"]:
        print(
            f"demo failed: the webhook reports {delivery.data.get('status')}, the job is {job['status']}",
            file=sys.stderr,
        )
        return 1
    return 0


def _rendition_rows(job: dict[str, Any], work_dir: Path) -> list[tuple[Any, ...]]:
    """Each completed rendition downloaded and read back: ffprobe for video and audio, Pillow for images."""
    from local.cli.samples import probe_media

    rows: list[tuple[Any, ...]] = []
    for rendition in job["renditions"]:
        if rendition["status"] != "COMPLETED":
            rows.append((rendition["name"], rendition["status"], "-", "-", "-", "-"))
            continue
        extension = rendition["contentType"].split("/")[1]
        local_copy = download(rendition["url"], work_dir / f"{job['jobId']}-{rendition['name']}.{extension}")
        if rendition["contentType"].startswith("image/"):
            from PIL import Image

            with Image.open(local_copy) as image:
                size, exif = f"{image.width}x{image.height}", "EXIF KEPT" if image.getexif() else "none"
                image_format = str(image.format)
            if job["mediaType"] == "image":
                read_back: tuple[str, ...] = (size, image_format, exif)
            else:  # an audio job's waveform
                read_back = (f"{size} {image_format}", "-", "-")
            rows.append((rendition["name"], rendition["status"], *read_back, human_bytes(local_copy.stat().st_size)))
            continue
        probed = probe_media(local_copy)
        size = f"{probed['width']}x{probed['height']}" if probed["width"] else str(probed["audioCodec"])
        rows.append(
            (
                rendition["name"],
                rendition["status"],
                size,
                f"{probed['durationSeconds']:.2f} s",
                f"{probed['bitRate'] / 1000:.0f} kbit/s",
                human_bytes(probed["sizeBytes"]),
            )
        )
    return rows


COLUMNS = {
    "video": ("rendition", "status", "resolution", "duration", "bitrate", "size"),
    "image": ("derivative", "status", "resolution", "format", "metadata", "size"),
    "audio": ("rendition", "status", "codec or image", "duration", "bitrate", "size"),
}
"""The columns of a job's table in the demo, by its media type: what each kind's outputs are read back as."""


def _image_lines(job: dict[str, Any]) -> str:
    image = job.get("image") or {}
    camera = " ".join(part for part in (image.get("cameraMake"), image.get("cameraModel")) if part) or "-"
    return (
        f"image metadata: {image.get('format')} {image.get('width')}x{image.get('height')}, {image.get('mode')}, "
        f"camera {camera}, captured {image.get('capturedAt') or '-'} (no location kept)"
    )


def _playback_lines(job: dict[str, Any]) -> str:
    """A completed video's playback as a player sees it: the signed master playlist played by ffprobe over HTTP from
    the CDN, and where the poster and thumbnails are."""
    from local.cli.samples import probe_playback

    playback = job.get("playback")
    if not playback:
        raise ApiError(200, f"job {job['jobId']} is COMPLETED without playback")
    variants = probe_playback(playback["hls"])
    ladder = ", ".join(f"{v['width']}x{v['height']} @ {v['bandwidth'] / 1000:.0f} kbit/s" for v in variants)
    seconds = variants[0]["durationSeconds"] if variants else 0
    return "\n".join(
        [
            f"playback (HLS, read back over HTTP by ffprobe): {len(variants)} variants, {seconds:.2f} s: {ladder}",
            f"  play it: ffplay '{playback['hls']}'  (or VLC; signed until {playback['expiresAt']})",
            f"  poster:  {playback['poster'].split('?')[0]}",
            f"  scrub:   {playback['thumbnails']['vtt'].split('?')[0]} over sprite.jpg",
        ]
    )


def command_demo(args: argparse.Namespace) -> int:
    """A video, an image and an audio clip through the pipeline; the video's webhook received and verified."""
    from local.cli.samples import make_sample_audio, make_sample_image, make_sample_video

    started = time.monotonic()
    cloud = _start_cloud(args, echo_logs=args.logs)
    work_dir = Path(tempfile.mkdtemp(prefix="demo-", dir=cloud.options.state))
    receiver: WebhookReceiver | None = None
    try:
        print(_resource_summary(cloud).rsplit("\n", 1)[-1], file=sys.stderr)
        print(f"API {cloud.api_url}", file=sys.stderr)
        if console := cloud.deployment.outputs.get("consoleUrl"):
            # stdout, with the results: the demo's jobs stay in the state directory, which `up` serves again
            print(
                f"console {console}: sign in as {DEFAULT_SUBJECT} to see this demo's jobs, now or under "
                "`python -m local up` after it"
            )
        client = ApiClient(cloud.api_url, _token_for(cloud.options.state, DEFAULT_SUBJECT))
        receiver = listen_and_register(client)
        print(f"webhook receiver {receiver.url} registered as {receiver.endpoint_id} for {DEFAULT_SUBJECT}")
        samples = (
            (make_sample_video(work_dir / "sample-1080p.mp4", seconds=args.seconds), f"1920x1080, {args.seconds:g} s"),
            (make_sample_image(work_dir / "sample-photo.jpg"), "2400x1600 JPEG with camera EXIF and GPS"),
            (make_sample_audio(work_dir / "sample-chord.mp3"), "4 s MP3, quiet"),
        )
        jobs = []
        for sample, description in samples:
            print(f"\nsample: {sample.name} ({human_bytes(sample.stat().st_size)}, {description})")
            job = upload_and_follow(client, sample, args.timeout)
            if job["status"] not in FINAL_STATUSES:
                print(
                    f"demo failed: job {job['jobId']} is still {job['status']} after {args.timeout:g} s",
                    file=sys.stderr,
                )
                return 1
            if job["status"] != "COMPLETED":
                outcome = _job_outcome(job)
                return report_webhook(receiver, client, job, args.webhook_timeout) or outcome
            rows = _rendition_rows(job, work_dir)
            print(f"job {job['jobId']}: {job['mediaType']} {job['status']} (read back from the downloads)")
            print(table(COLUMNS[job["mediaType"]], rows))
            if job["mediaType"] == "image":
                print(_image_lines(job))
            if job["mediaType"] == "video":
                print(_playback_lines(job))
            jobs.append(job)
        print(f"\n{len(jobs)} jobs COMPLETED in {time.monotonic() - started:.1f} s")
        return report_webhook(receiver, client, jobs[0], args.webhook_timeout)
    except ApiError as err:
        print(f"demo failed: {err}", file=sys.stderr)
        return 1
    finally:
        if receiver is not None:
            receiver.stop()
        cloud.stop()
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)


def command_webhooks_listen(args: argparse.Namespace) -> int:
    state = _state_dir(args)
    api_url = args.api or _read_json(state / OUTPUTS_FILE, "start the local cloud (python -m local up)")["apiUrl"]
    client = ApiClient(api_url, args.token or _token_for(state, args.sub))
    stop_requested = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop_requested.set())
    try:
        receiver = listen_and_register(client, port=args.port)
    except ApiError as err:
        print(f"registration failed: {err}", file=sys.stderr)
        return 1
    try:
        print(f"listening on {receiver.url}, registered as {receiver.endpoint_id} for {args.sub}; Ctrl-C stops")
        print(
            f"deliveries of {args.sub}'s jobs are shown as they arrive (python -m local upload FILE --sub {args.sub})"
        )
        print("", flush=True)
        shown = 0
        while not stop_requested.is_set():
            delivery = receiver.wait_for(lambda d, after=shown: d.sequence >= after, 0.5)
            if delivery is None:
                continue
            shown = delivery.sequence + 1
            print(delivery_lines(delivery))
            print(verdict_line(delivery) + "\n", flush=True)
    finally:
        problem = deregister(client, receiver)
        receiver.stop()
    if problem:
        print(f"could not remove endpoint {receiver.endpoint_id}: {problem}", file=sys.stderr)
        return 1
    print("stopped; the endpoint is deregistered", file=sys.stderr)
    return 0


def _cloud_arguments() -> argparse.ArgumentParser:
    """The options of the commands that start a local cloud."""
    cloud = argparse.ArgumentParser(add_help=False)
    cloud.add_argument("--port", type=int, default=0, help="HTTP API port on 127.0.0.1 (default: a free port)")
    cloud.add_argument(
        "--cdn-port", type=int, default=0, help="CloudFront distribution port on 127.0.0.1 (default: a free port)"
    )
    cloud.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml is read (default: dev)")
    cloud.add_argument("--config", action="append", metavar="KEY=VALUE", help="override a stack config value")
    cloud.add_argument("--config-file", action="append", metavar="PATH", help="extra config layer (Pulumi.*.yaml form)")
    cloud.add_argument(
        "--time-scale",
        type=float,
        default=0.01,
        help="local clock for service-side waits (schedules, visibility after failure, async retries); 0.01 = 100x",
    )
    cloud.add_argument("--concurrency", type=int, default=2, help="worker processes per function at most")
    cloud.add_argument("--logs", action="store_true", help="echo function logs to the console")
    return cloud


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description="Run the media-pipeline Pulumi program as a local cloud (moto, worker processes, HTTP API).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project-dir", default=str(PROJECT_DIR), help="directory of Pulumi.yaml and __main__.py")
    common.add_argument("--state-dir", help="where keys, outputs and logs go (default: <project>/.local)")
    cloud = _cloud_arguments()
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", parents=[common, cloud], help="run the local cloud until Ctrl-C")
    up.set_defaults(run=command_up)

    reset = commands.add_parser(
        "reset",
        parents=[common],
        help="wipe the saved state (jobs, uploads, outputs, queues, names, signing key); keeps the artifact cache",
    )
    reset.set_defaults(run=command_reset)

    check = commands.add_parser(
        "check-artifacts",
        parents=[common, cloud],
        help="start, invoke every function once from its own artifact (health route, schedule or queue), stop",
    )
    check.set_defaults(run=command_check_artifacts)

    smoke = commands.add_parser(
        "smoke",
        parents=[common],
        help="end to end against a deployed apiUrl: health, webhook, upload, job, downloads, delivery",
    )
    smoke.add_argument("--api", help="the stack's apiUrl (default: the local cloud's, from .local/outputs.json)")
    smoke.add_argument("--token", help="a bearer token your issuer signed (default: a local one)")
    smoke.add_argument(
        "--webhook-url", help="a public receiver to register (needed against AWS: private addresses are refused)"
    )
    smoke.add_argument("--timeout", type=float, default=600, help="seconds to wait for the job (default 600)")
    smoke.set_defaults(run=command_smoke)

    token = commands.add_parser("token", parents=[common], help="print a bearer token the local API accepts")
    token.add_argument("--sub", required=True, help="the user (JWT sub claim; the owner of their jobs)")
    token.add_argument("--ttl", type=int, default=3600, help="seconds until the token expires (default 3600)")
    token.set_defaults(run=command_token)

    upload = commands.add_parser("upload", parents=[common], help="upload a file and follow its job")
    upload.add_argument("file", help="media file to upload")
    upload.add_argument("--api", help="API URL (default: apiUrl from .local/outputs.json)")
    upload.add_argument("--sub", default=DEFAULT_SUBJECT, help=f"user to upload as (default {DEFAULT_SUBJECT})")
    upload.add_argument("--token", help="bearer token to use instead of a local one")
    upload.add_argument("--timeout", type=float, default=600, help="seconds to follow the job (default 600)")
    upload.set_defaults(run=command_upload)

    status = commands.add_parser("status", parents=[common], help="jobs, queue depths, DLQ contents, functions")
    status.set_defaults(run=command_status)

    demo = commands.add_parser("demo", parents=[common, cloud], help="start, upload a generated 1080p clip, report")
    demo.add_argument("--seconds", type=float, default=4.0, help="length of the generated clip (default 4)")
    demo.add_argument("--timeout", type=float, default=120, help="seconds to wait for the job (default 120)")
    demo.add_argument(
        "--webhook-timeout",
        type=float,
        default=30,
        help="seconds to wait, once the job is final, for its webhook (default 30)",
    )
    demo.add_argument("--keep", action="store_true", help="keep the sample and downloads under .local/")
    demo.set_defaults(run=command_demo)

    webhooks = commands.add_parser("webhooks", help="webhook tools for the local cloud")
    webhook_commands = webhooks.add_subparsers(dest="webhooks_command", required=True, metavar="COMMAND")
    listen = webhook_commands.add_parser(
        "listen", parents=[common], help="run a receiver on 127.0.0.1, register it, print verified deliveries"
    )
    listen.add_argument("--port", type=int, default=0, help="receiver port on 127.0.0.1 (default: a free port)")
    listen.add_argument("--api", help="API URL (default: apiUrl from .local/outputs.json)")
    listen.add_argument(
        "--sub", default=DEFAULT_SUBJECT, help=f"user whose jobs to hear about (default {DEFAULT_SUBJECT})"
    )
    listen.add_argument("--token", help="bearer token to use instead of a local one")
    listen.set_defaults(run=command_webhooks_listen)

    operator.add_parser(commands, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ProgramFailed, CloudConfigError, ConfigError, GatewayConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            ports = " or ".join(str(p) for p in (args.port, getattr(args, "cdn_port", 0)) if p) or "a port"
            print(f"error: {ports} is already in use", file=sys.stderr)
            return 1
        raise
