"""Images: the `images` queue, subscribed to the fan-out topic for image jobs, and the Pillow function that makes each
unit of work (a derivative in one format, or the metadata) from its own container image."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
from pulumi import Input, Output, ResourceOptions

from components import patterns
from components.fanout_consumer import consume_fanout, worker_grants
from components.function import FunctionDefaults, FunctionSize, environment_number
from components.grants import Grant
from components.patterns import OUTPUT_PREFIX
from components.work_queue import WorkQueue

HANDLER = "functions.images.handler.handler"
MAX_WATERMARK_TEXT = 100
# S3 keys are at most 1024 bytes; in the IAM grant on the logo `*` and `?` would be wildcards, `${...}` a variable.
_MAX_KEY_BYTES = 1024
_UNSAFE_KEY = re.compile(r"[*?$\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Watermark:
    """The stack's watermark (text, or a logo image from the outputs bucket): bottom-right, semi-transparent, spanning
    `scale` of the image's width, on the derivatives configured with `watermark: true`. Neither text nor logo: none."""

    text: str = ""
    """Text drawn as the mark; empty for none."""
    logo_key: str = ""
    """Key of a logo image in the outputs bucket (drawn instead of the text); empty for none."""
    opacity: float = 0.5
    """0 (invisible) to 1 (opaque)."""
    scale: float = 0.25
    """Fraction of the image's width the mark spans, above 0 and at most 1."""

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or len(self.text) > MAX_WATERMARK_TEXT or not self.text.isprintable():
            raise ValueError(
                f"watermarkText must be at most {MAX_WATERMARK_TEXT} printable characters, got {self.text!r}"
            )
        key = self.logo_key
        if not isinstance(key, str):
            raise ValueError(f"watermarkLogoKey must be a string, got {key!r}")
        if key and (key.startswith("/") or _UNSAFE_KEY.search(key) or len(key.encode()) > _MAX_KEY_BYTES):
            raise ValueError(
                f"watermarkLogoKey must be an S3 key in the outputs bucket (no leading '/', no '*', '?' or '$', "
                f"no control characters, at most {_MAX_KEY_BYTES} bytes), got {key!r}"
            )
        if key and not key.lower().endswith(".png"):
            raise ValueError(f"watermarkLogoKey must name a PNG (with transparency, drawn as it is), got {key!r}")
        if key.startswith(OUTPUT_PREFIX):
            raise ValueError(
                f"watermarkLogoKey {key!r} is under {OUTPUT_PREFIX}, which expires after jobRetentionDays: put the "
                "logo elsewhere in the outputs bucket, e.g. watermarks/logo.png"
            )
        for name, value in (("watermarkOpacity", self.opacity), ("watermarkScale", self.scale)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
        if not 0 <= self.opacity <= 1:
            raise ValueError(f"watermarkOpacity must be 0 to 1, got {self.opacity}")
        if not 0 < self.scale <= 1:
            raise ValueError(
                f"watermarkScale must be above 0 and at most 1 (a fraction of the width), got {self.scale}"
            )

    def environment(self) -> dict[str, str]:
        """docs/CONTRACTS.md: opacity and scale always; the text and the logo key only when set (no empty variables)."""
        variables = {
            "WATERMARK_OPACITY": environment_number(self.opacity),
            "WATERMARK_SCALE": environment_number(self.scale),
        }
        if self.text:
            variables["WATERMARK_TEXT"] = self.text
        if self.logo_key:
            variables["WATERMARK_LOGO_KEY"] = self.logo_key
        return variables


@dataclass(frozen=True)
class ImagesArgs:
    """Inputs of Images."""

    functions: FunctionDefaults
    """Packaging (their `image_uri` must be the Pillow image built from containers/images), common environment (the
    watermark and the pixel limit are added here) and log retention."""
    topic_arn: Input[str]
    """Fan-out topic the queue subscribes to."""
    uploads_bucket_arn: Input[str]
    """Bucket the sources are read from (`uploads/{jobId}/source`)."""
    outputs_bucket_arn: Input[str]
    """Bucket the derivatives and metadata are written to (`outputs/`), and the watermark logo read from."""
    bus_arn: Input[str]
    """Custom event bus for Rendition Progress/Completed/Failed."""
    table_arn: Input[str]
    """Jobs table: read (GetItem only) to ask whether the work is still wanted (canceled, or another attempt)."""
    size: FunctionSize
    """Function size: the queue's visibility timeout follows its timeout; memory must hold a decoded image of
    `max_image_pixels`."""
    max_concurrency: int
    """Most units processed at once (the queue's event source's maximum concurrency)."""
    max_image_pixels: int
    """Pillow's decompression-bomb guard: no image with more pixels is decoded."""
    max_image_upload_bytes: int
    """The largest source read (ingest's limit for images, checked again)."""
    watermark: Watermark
    """The stack's watermark."""
    max_receive_count: int = 5
    """Receives before a message moves to the DLQ."""


class Images(pulumi.ComponentResource):
    """`images`: a filtered queue with a DLQ, and the function that makes one unit of an image job per message."""

    queue: WorkQueue
    """The images queue and its DLQ."""
    function_name: Output[str]
    """Images function name."""

    def __init__(self, name: str, args: ImagesArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:Images", name, None, opts)

        # Every unit of every image job (ingest publishes one message per derivative and format, and one for the
        # metadata), so the units run in parallel and each is retried and dead-lettered on its own.
        grants = worker_grants(args, multipart=False)
        if args.watermark.logo_key:
            # The logo, and no other object outside outputs/.
            logo = Output.concat(args.outputs_bucket_arn, "/", args.watermark.logo_key)
            grants.append(Grant(("s3:GetObject",), (logo,)))
        # The Pillow worker: reads the source it is sent (IfMatch on the ETag ingest validated), writes one output,
        # announces progress and the result.
        consumer = consume_fanout(
            self,
            name,
            args,
            filter_policy=patterns.images_filter_policy(),
            handler=HANDLER,
            service="images",
            environment={
                "MAX_IMAGE_PIXELS": str(args.max_image_pixels),
                "MAX_IMAGE_UPLOAD_BYTES": str(args.max_image_upload_bytes),
                **args.watermark.environment(),
            },
            grants=grants,
        )
        self.queue = consumer.queue

        self.function_name = consumer.function.function_name
        self.register_outputs({"queueUrl": self.queue.url, "functionName": self.function_name})
