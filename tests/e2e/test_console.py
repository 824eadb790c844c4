"""The web console in a real browser: Debian's chromium, driven by Playwright, against the local cloud's CDN.

A user signs in, uploads a clip they made, watches the job complete, plays its MP4 rendition and its HLS stream (the
video's clock must move), sees a rejected upload's reason, and registers a webhook whose secret is shown once. The
page must raise no script error and break no rule of its Content-Security-Policy. The job page's screenshot is saved
to build/console.png (the README's picture is one such).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.cloud import free_port
from tests.e2e.conftest import E2E_LAYER, REPO, RunningCloud, start_cloud, stop_cloud
from tests.e2e.oidc_provider import IdentityProvider, serve
from tests.media_samples import exif_rotated_jpeg, make_tone, make_video, text_file

pytestmark = pytest.mark.e2e

# Debian's chromium; CONSOLE_BROWSER names another Chromium-based browser (GitHub's runners have Google Chrome).
CHROMIUM = Path(os.environ.get("CONSOLE_BROWSER", "/usr/bin/chromium"))
# No network beyond loopback, nothing of Google's services, no GPU or sandbox in a container.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
# Generous: a loaded CI machine may be slow, never wrong; nothing here is a deadline for the pipeline.
JOB_TIMEOUT_MS = 600_000  # the first image or audio job builds its function's environment
STEP_TIMEOUT_MS = 30_000
PLAYED_SECONDS = 0.5
SCREENSHOT = REPO / "build" / "console.png"
PAGE = 20  # the jobs list's page size (components/console_site/jobs.js)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the console's browser tests need Debian's chromium (apt-get install chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def oidc_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningCloud, IdentityProvider]]:
    """A local cloud whose console signs in with an OIDC provider on 127.0.0.1 (code flow, PKCE), as in AWS, and
    whose users may hold any number of upload forms (the paging test makes more jobs than a page holds)."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    folder = tmp_path_factory.mktemp("oidc-cloud")
    settings = {"clientId": "console-test", "authorizeUrl": f"{issuer}/authorize", "tokenUrl": f"{issuer}/token"}
    layer = folder / "Pulumi.oidc.yaml"
    oidc = {"media-pipeline:consoleOidc": {**settings, "scopes": ["openid"]}}
    layer.write_text(json.dumps({"config": {**oidc, "media-pipeline:maxOpenUploadsPerUser": 0}}))
    cloud = start_cloud(REPO, folder / "state", [E2E_LAYER, layer])
    url = console_url(cloud)
    provider = IdentityProvider(
        client_id="console-test",
        redirect_uri=url,
        subject="oidc-user",
        mint=cloud.token,
        allowed_origin=url.split("/console/", 1)[0],
    )
    server = serve(provider, port)
    try:
        yield cloud, provider
    finally:
        server.shutdown()
        stop_cloud(cloud.process)


class PageProblems:
    """What the page reported that a user would never want: script errors and Content-Security-Policy violations."""

    def __init__(self, page: Any) -> None:
        self.found: list[str] = []
        page.on("pageerror", lambda error: self.found.append(f"script error: {error}"))
        page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.found.append(f"CSP: {message.text}")


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(STEP_TIMEOUT_MS)
    problems = PageProblems(opened)
    yield opened
    context.close()
    assert not problems.found, problems.found


def console_url(cloud: RunningCloud) -> str:
    url = cloud.outputs.get("consoleUrl")
    assert url, "the local cloud's stack has no consoleUrl output: is media-pipeline:consoleEnabled on?"
    return str(url)


def sign_in(page: Any, cloud: RunningCloud, user: str) -> None:
    page.goto(console_url(cloud))
    page.locator("#local-sign-in").wait_for(state="visible")
    page.fill("#sign-in-user", user)
    page.click("#sign-in-form button[type=submit]")
    page.locator("#signed-in-as").filter(has_text=user).wait_for()


def upload(page: Any, path: Path) -> str:
    """Chooses `path` in the upload form; the page goes to the new job. Returns its ID."""
    page.set_input_files("#upload-file", str(path))
    page.wait_for_url("**/console/index.html#/jobs/*")
    return str(page.url.rsplit("/", 1)[-1])


def wait_until_final(page: Any) -> str:
    status = page.locator("#job-status[data-status]")
    page.wait_for_function(
        "() => ['COMPLETED', 'FAILED', 'REJECTED', 'EXPIRED', 'CANCELLED']"
        ".includes(document.querySelector('#job-status')?.dataset.status)",
        timeout=JOB_TIMEOUT_MS,
    )
    return str(status.get_attribute("data-status"))


def play(page: Any, source: str) -> float:
    """Picks a source in the player, plays it muted, and returns the video's clock once it has moved."""
    page.click(f'[data-source="{source}"]')
    page.locator("#player-source").filter(has_text=source.removeprefix("mp4:")).wait_for()
    page.evaluate("() => { const v = document.querySelector('#player'); v.muted = true; return v.play(); }")
    page.wait_for_function(
        f"() => document.querySelector('#player').currentTime > {PLAYED_SECONDS}", timeout=STEP_TIMEOUT_MS
    )
    return float(page.evaluate("() => document.querySelector('#player').currentTime"))


def test_a_user_uploads_watches_the_job_complete_and_plays_mp4_and_hls(
    page: Any, pipeline_cloud: RunningCloud, tmp_path: Path
) -> None:
    clip = make_video(tmp_path / "holiday.mp4", width=640, height=360, seconds=3.0)
    sign_in(page, pipeline_cloud, "console-viewer")

    job_id = upload(page, clip)

    assert wait_until_final(page) == "COMPLETED"
    job = pipeline_cloud.client("console-viewer").job(job_id)  # what the page shows is the API's job
    completed = [r["name"] for r in job["renditions"] if r["status"] == "COMPLETED"]
    assert completed
    for name in completed:
        assert page.locator("#renditions").filter(has_text=name).count() == 1
    assert play(page, f"mp4:{completed[-1]}") > PLAYED_SECONDS
    assert play(page, "hls") > PLAYED_SECONDS
    assert page.locator("#thumbnails img").count() >= 1
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    # the job is in the user's list
    page.goto(console_url(pipeline_cloud) + "#/jobs")
    page.locator(f'#jobs-table a[href="#/jobs/{job_id}"]').filter(has_text="holiday.mp4").wait_for()


def loaded_images(page: Any, gallery: str) -> list[str]:
    """The captions of a gallery's images, once every one of them has loaded (they load lazily: scrolled to)."""
    images = page.locator(f"#{gallery} img")
    images.first.wait_for()
    for index in range(images.count()):
        images.nth(index).scroll_into_view_if_needed()
    page.wait_for_function(
        f"() => [...document.querySelectorAll('#{gallery} img')].every((i) => i.complete && i.naturalWidth > 0)",
        timeout=STEP_TIMEOUT_MS,
    )
    return [str(c) for c in page.locator(f"#{gallery} figcaption").all_text_contents()]


def test_an_image_shows_its_metadata_and_derivatives_and_audio_its_waveform(
    page: Any, pipeline_cloud: RunningCloud, tmp_path: Path
) -> None:
    sign_in(page, pipeline_cloud, "console-stills")

    upload(page, exif_rotated_jpeg(tmp_path / "portrait.jpg"))
    assert wait_until_final(page) == "COMPLETED"
    source = page.locator("#job-source").text_content() or ""
    assert "TestCam Model X" in source and "800 x 1200" in source  # the camera, and the upright size
    derivatives = loaded_images(page, "derivatives")
    assert len(derivatives) >= 2 and all(" x " in caption for caption in derivatives)

    page.goto(console_url(pipeline_cloud) + "#/jobs")
    upload(page, make_tone(tmp_path / "tone.mp3", seconds=3.0))
    assert wait_until_final(page) == "COMPLETED"
    assert len(loaded_images(page, "waveform")) == 1


def test_a_refused_upload_says_why_and_starts_no_job(page: Any, pipeline_cloud: RunningCloud, tmp_path: Path) -> None:
    sign_in(page, pipeline_cloud, "console-refused")

    page.set_input_files("#upload-file", str(text_file(tmp_path / "notes.txt")))

    error = page.locator("#upload-error")
    error.filter(has_text="The upload was refused").wait_for()
    assert "UNSUPPORTED_CONTENT_TYPE" in (error.text_content() or "")
    assert page.url.endswith("#/jobs")
    page.locator("#jobs-empty").wait_for(state="visible")


def test_the_console_works_from_the_keyboard(page: Any, pipeline_cloud: RunningCloud) -> None:
    page.goto(console_url(pipeline_cloud))
    page.locator("#local-sign-in").wait_for(state="visible")
    # the view's heading has the focus (screen readers announce the new view); the skip link is a few keys back
    for _ in range(6):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("() => document.activeElement.id") == "skip-link":
            break
    assert page.evaluate("() => document.activeElement.id") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"
    page.focus("#sign-in-user")
    page.keyboard.press("Control+A")
    page.keyboard.type("console-keys")
    page.keyboard.press("Enter")
    page.locator("#signed-in-as").filter(has_text="console-keys").wait_for()
    # every control has a name a screen reader can say
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('button, input, a[href], select, textarea')]
              .filter((e) => e.offsetParent !== null)
              .filter((e) => !(e.getAttribute('aria-label') || e.labels?.length || e.textContent.trim()))
              .map((e) => e.outerHTML)"""
    )
    assert not unnamed, unnamed


def test_in_aws_the_console_signs_in_with_the_stacks_oidc_provider_using_pkce(
    page: Any, oidc_cloud: tuple[RunningCloud, IdentityProvider]
) -> None:
    cloud, provider = oidc_cloud
    page.goto(console_url(cloud))
    button = page.locator("#oidc-sign-in")
    button.wait_for(state="visible")
    assert button.text_content() == "Sign in with issuer.local-cloud.localhost"  # the stack's jwtIssuer, named

    button.click()  # to the provider's /authorize, which sends the browser back with a code

    page.locator("#signed-in-as").filter(has_text="oidc-user").wait_for()
    assert len(provider.redeemed) == 1 and not provider.refused, provider.refused
    assert "code=" not in page.url  # the code is dropped from the address bar
    page.locator("#jobs-empty").wait_for(state="visible")  # the API took the provider's token
    # an answer this browser did not ask for (a replayed code, a forged state) signs nobody in, and the page says so
    page.click("#sign-out")
    page.locator("#sign-in-form").wait_for()
    page.goto(f"{console_url(cloud)}?code={provider.redeemed[0]}&state=forged")
    page.locator("#sign-in-message").filter(has_text="did not match this browser's request").wait_for()
    assert len(provider.redeemed) == 1 and page.locator("#signed-in-as").is_hidden()


def test_a_file_dropped_on_the_page_is_uploaded(page: Any, pipeline_cloud: RunningCloud, tmp_path: Path) -> None:
    clip = make_video(tmp_path / "dropped.mp4", width=320, height=180, seconds=1.0)
    sign_in(page, pipeline_cloud, "console-dropper")
    dropped = page.evaluate_handle(
        """([name, encoded]) => {
            const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: 'video/mp4' }));
            return transfer;
        }""",
        [clip.name, base64.b64encode(clip.read_bytes()).decode()],
    )

    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": dropped})

    page.wait_for_url("**/console/index.html#/jobs/*")
    assert wait_until_final(page) == "COMPLETED"
    assert page.locator("#job-title").text_content() == "Job: dropped.mp4"


def test_the_jobs_list_pages_with_the_apis_cursor(
    page: Any, oidc_cloud: tuple[RunningCloud, IdentityProvider], tmp_path: Path
) -> None:
    cloud, _ = oidc_cloud
    source = make_video(tmp_path / "paged.mp4", width=320, height=180, seconds=1.0)
    client = cloud.client("console-pager")
    created = [client.create_upload(source) for _ in range(PAGE + 1)]  # forms only: AWAITING_UPLOAD jobs
    sign_in(page, cloud, "console-pager")

    rows = page.locator("#jobs-table tbody tr")
    page.locator("#jobs-more").wait_for(state="visible")
    assert rows.count() == PAGE
    newest_first = [c["jobId"] for c in reversed(created)]
    shown = [str(link.get_attribute("href")).rsplit("/", 1)[-1] for link in page.locator("#jobs-table a").all()]
    assert shown == newest_first[:PAGE]
    page.click("#jobs-more")

    page.wait_for_function(f"() => document.querySelectorAll('#jobs-table tbody tr').length === {PAGE + 1}")
    assert page.locator("#jobs-more").is_hidden()
    shown = [str(link.get_attribute("href")).rsplit("/", 1)[-1] for link in page.locator("#jobs-table a").all()]
    assert shown == newest_first


def test_a_rejected_upload_shows_its_reason(page: Any, pipeline_cloud: RunningCloud, tmp_path: Path) -> None:
    not_media = tmp_path / "notes.mp4"
    not_media.write_bytes(b"this is a text file pretending to be a video\n" * 200)
    sign_in(page, pipeline_cloud, "console-rejected")

    upload(page, not_media)

    assert wait_until_final(page) == "REJECTED"
    error = page.locator("#job-error")
    error.wait_for(state="visible")
    assert "Rejected" in error.text_content() and "UNSUPPORTED_FORMAT" in error.text_content()


def test_another_users_job_is_not_shown(page: Any, pipeline_cloud: RunningCloud, tmp_path: Path) -> None:
    owner = pipeline_cloud.client("console-owner")
    created = owner.create_upload(make_video(tmp_path / "mine.mp4", width=320, height=180, seconds=1.0))
    sign_in(page, pipeline_cloud, "console-stranger")

    page.goto(f"{console_url(pipeline_cloud)}#/jobs/{created['jobId']}")

    refusal = page.locator("#job-load-error")
    refusal.filter(has_text="could not be loaded").wait_for()
    assert "not found" in refusal.text_content().lower()
    page.goto(f"{console_url(pipeline_cloud)}#/jobs")
    page.locator("#jobs-empty").wait_for(state="visible")  # the list has loaded, and holds none of theirs
    assert page.locator(f'#jobs-table a[href="#/jobs/{created["jobId"]}"]').count() == 0


def test_a_webhooks_secret_is_shown_once(page: Any, pipeline_cloud: RunningCloud) -> None:
    hook = f"http://127.0.0.1:{free_port()}/hooks/console"  # loopback; nothing listens, nothing is sent elsewhere
    sign_in(page, pipeline_cloud, "console-webhooks")
    page.goto(console_url(pipeline_cloud) + "#/webhooks")

    page.fill("#webhook-url", hook)
    page.click("#webhook-form button[type=submit]")

    secret = page.locator("#webhook-secret")
    secret.wait_for(state="visible")
    shown = secret.text_content()
    assert shown and shown.startswith("whsec_")
    page.locator("#webhooks-table").filter(has_text=hook).wait_for()
    # rotating shows the new secret, once too
    page.click(f'#webhooks-table button[data-action="rotate"][aria-label$="{hook}"]')
    page.wait_for_function(f"() => document.querySelector('#webhook-secret').textContent !== {shown!r}")
    rotated = secret.text_content()
    assert rotated and rotated.startswith("whsec_")
    page.click(f'#webhooks-table button[data-action="deliveries"][aria-label$="{hook}"]')
    page.locator("#webhook-deliveries-heading").filter(has_text=f"Deliveries to {hook}").wait_for()
    # leaving the view drops them; the list never carries one
    page.goto(console_url(pipeline_cloud) + "#/jobs")
    page.goto(console_url(pipeline_cloud) + "#/webhooks")
    page.locator("#webhooks-table").filter(has_text=hook).wait_for()
    assert shown not in page.content() and rotated not in page.content()
    listed = pipeline_cloud.client("console-webhooks").call("GET", "webhooks").body
    (endpoint,) = [w for w in listed["webhooks"] if w["url"] == hook]
    assert "secret" not in endpoint
