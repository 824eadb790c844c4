"""media-pipeline: reads the stack config once, composes the components, exports what clients and operators need."""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.api import Api, ApiArgs
from components.audio import LOUDNESS_RANGE_LUFS, Audio, AudioArgs
from components.cdn import PRICE_CLASSES, Cdn, CdnArgs, signing_public_key
from components.console import Console, ConsoleArgs
from components.encryption_key import EncryptionKey, EncryptionKeyArgs
from components.event_bus import EventBus, EventBusArgs
from components.function import (
    MAX_EPHEMERAL_MB,
    MIB,
    FunctionDefaults,
    FunctionSize,
    ZipCode,
    bounded_scratch_space_mb,
    scratch_space_mb,
)
from components.images import Images, ImagesArgs, Watermark
from components.ingest import Ingest, IngestArgs
from components.job_store import JobStore, JobStoreArgs
from components.lambda_runtime import load_lambda_runtime
from components.media_image import MediaImage, MediaImageArgs
from components.mediaconvert import MediaConvert, MediaConvertArgs
from components.observability import Observability, ObservabilityArgs
from components.packager import Packager, PackagerArgs
from components.patterns import OUTPUT_PREFIX, UPLOAD_PREFIX
from components.secure_bucket import Expiry, SecureBucket, SecureBucketArgs
from components.tracker import Tracker, TrackerArgs
from components.transcoder import Transcoder, TranscoderArgs
from components.webhooks import Webhooks, WebhooksArgs
from functions.common.playback_links import parse_base_url
from functions.common.renditions import parse_renditions, renditions_to_json
from functions.common.ssrf import allowed_ports_to_env, parse_allowed_networks, parse_allowed_ports
from functions.ingest.service import parse_image_derivatives
from functions.transcode.settings import X264_PRESETS
from functions.webhooks.service import parse_schedule

ROOT = Path(__file__).resolve().parent
ENGINES = ("auto", "lambda", "mediaconvert")
# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
METRICS_NAMESPACE = "MediaPipeline"
# Pulumi.yaml's default issuer: a stack deployed with it refuses every token, so it must be set per stack.
PLACEHOLDER_JWT_ISSUER = "https://issuer.media-pipeline.invalid/"
CDN_KEY_COMMAND = "openssl genrsa 2048 | pulumi config set --secret media-pipeline:cdnPrivateKey --"
QUEUE_CONSUMERS = ("ingest", "transcode", "submit", "images", "audio", "packager", "webhooks")
AUDIO_BITRATES_KBPS = (32, 320)  # AAC-LC stereo: below 32 kbit/s it is unusable, above 320 nothing is gained
# A decoded image takes 4 bytes a pixel (RGBA), and a derivative or a mode conversion is a second copy.
DECODED_BYTES_PER_PIXEL = 4 * 2

# Stack config, read once. Every key is declared with a description and default in Pulumi.yaml.
config = pulumi.Config()
renditions = parse_renditions(config.require_object("renditions"))
engine = config.require("engine")
mediaconvert_threshold_seconds = config.require_int("mediaconvertThresholdSeconds")
lambda_encode_megapixels_per_vcpu_second = config.require_int("lambdaEncodeMegapixelsPerVcpuSecond")
segment_target_seconds = config.require_int("segmentTargetSeconds")
max_receive_count = config.require_int("maxReceiveCount")
max_upload_bytes = config.require_int("maxUploadBytes")
max_image_upload_bytes = config.require_int("maxImageUploadBytes")
max_audio_upload_bytes = config.require_int("maxAudioUploadBytes")
allowed_content_types = config.require_object("allowedContentTypes")
max_image_pixels = config.require_int("maxImagePixels")
# Ingest's own reading of IMAGE_DERIVATIVES checks it, so a stack deploys only derivatives ingest will plan.
image_derivatives = json.dumps(config.require_object("imageDerivatives"), separators=(",", ":"))
watermark = Watermark(
    text=config.require("watermarkText"),
    logo_key=config.require("watermarkLogoKey"),
    opacity=config.require_float("watermarkOpacity"),
    scale=config.require_float("watermarkScale"),
)
audio_bitrate_kbps = config.require_int("audioBitrateKbps")
loudness_target_lufs = config.require_float("loudnessTargetLufs")
max_duration_seconds = config.require_int("maxDurationSeconds")
max_width = config.require_int("maxWidth")
max_height = config.require_int("maxHeight")
upload_url_ttl_seconds = config.require_int("uploadUrlTtlSeconds")
download_url_ttl_seconds = config.require_int("downloadUrlTtlSeconds")
job_retention_days = config.require_int("jobRetentionDays")
upload_retention_days = config.require_int("uploadRetentionDays")
processing_deadline_seconds = config.require_int("processingDeadlineSeconds")
jwt_issuer = config.require("jwtIssuer")
jwt_audience = config.require("jwtAudience")
cors_allowed_origins = tuple(config.require_object("corsAllowedOrigins"))
cdn_private_key = config.require_secret("cdnPrivateKey")
cdn_base_url = config.require("cdnBaseUrl")
console_enabled = config.require_bool("consoleEnabled")
console_extra_origins = tuple(config.require_object("consoleExtraOrigins"))
console_oidc = dict(config.require_object("consoleOidc"))
cdn_certificate_arn = config.require("cdnCertificateArn")
cdn_price_class = config.require("cdnPriceClass")
playlist_cache_seconds = config.require_int("playlistCacheSeconds")
segment_cache_seconds = config.require_int("segmentCacheSeconds")
log_retention_days = config.require_int("logRetentionDays")
log_level = config.require("logLevel")
ingest_timeout_seconds = config.require_int("ingestTimeoutSeconds")
ingest_memory_mb = config.require_int("ingestMemoryMb")
transcode_timeout_seconds = config.require_int("transcodeTimeoutSeconds")
transcode_memory_mb = config.require_int("transcodeMemoryMb")
x264_preset = config.require("x264Preset")
if x264_preset not in X264_PRESETS:
    raise ValueError(f"x264Preset must be one of {', '.join(X264_PRESETS)}, got {x264_preset!r}")
images_timeout_seconds = config.require_int("imagesTimeoutSeconds")
images_memory_mb = config.require_int("imagesMemoryMb")
audio_timeout_seconds = config.require_int("audioTimeoutSeconds")
audio_memory_mb = config.require_int("audioMemoryMb")
packager_timeout_seconds = config.require_int("packagerTimeoutSeconds")
packager_memory_mb = config.require_int("packagerMemoryMb")
thumbnail_interval_seconds = config.require_int("thumbnailIntervalSeconds")
api_burst_limit = config.require_int("apiThrottlingBurstLimit")
api_rate_limit = config.require_int("apiThrottlingRateLimit")
max_open_uploads_per_user = config.require_int("maxOpenUploadsPerUser")
max_jobs_per_user_per_hour = config.require_int("maxJobsPerUserPerHour")
max_stored_bytes_per_user = config.require_int("maxStoredBytesPerUser")
queue_age_alarm_seconds = config.require_int("queueAgeAlarmSeconds")
alarm_email = config.require("alarmEmail") or None
force_destroy_buckets = config.require_bool("forceDestroyBuckets")
webhook_retry_schedule = parse_schedule(config.require_object("webhookRetrySchedule"))
webhook_allowed_addresses = tuple(config.require_object("webhookAllowedAddresses"))
webhook_allowed_ports_config = tuple(config.require_object("webhookAllowedPorts"))
webhook_secret_overlap_seconds = config.require_int("webhookSecretOverlapSeconds")
max_concurrency = config.require_object("maxConcurrency")
api_reserved_concurrency = config.require_int("apiReservedConcurrency")
build_image_on_preview = config.require_bool("buildImageOnPreview")

if jwt_issuer == PLACEHOLDER_JWT_ISSUER:
    raise ValueError(
        "media-pipeline:jwtIssuer is still the placeholder, so the API would refuse every token: set the issuer of "
        "your users' tokens, e.g. `pulumi config set media-pipeline:jwtIssuer "
        "https://cognito-idp.<region>.amazonaws.com/<user-pool-id>`"
    )
if not jwt_issuer.startswith("https://"):
    raise ValueError(
        f"media-pipeline:jwtIssuer must be an https:// URL (API Gateway fetches its keys), got {jwt_issuer!r}"
    )
# The signing key is refused before anything is declared when it is unset (Pulumi.yaml's empty default), in plain text
# in the stack file, or not a key CloudFront takes. It is read in plain only here, to check it and derive its public
# half; every resource it reaches gets `cdn_private_key`, the secret.
if not pulumi.runtime.is_config_secret(config.full_key("cdnPrivateKey")):
    raise ValueError(
        "media-pipeline:cdnPrivateKey must be set, as a secret: playback links are signed with it and CloudFront "
        f"verifies them with its public half. Generate one with `{CDN_KEY_COMMAND}`"
    )
try:
    cdn_public_key = signing_public_key(config.require("cdnPrivateKey"))
except ValueError as err:
    raise ValueError(f"media-pipeline:cdnPrivateKey {err}: generate one with `{CDN_KEY_COMMAND}`") from None
if cdn_base_url:
    try:
        cdn_base_url = parse_base_url(cdn_base_url)
    except ValueError as err:
        raise ValueError(f"media-pipeline:cdnBaseUrl {err}") from err
# A host of your own is served only as one of the distribution's alternate domain names, with its certificate; a local
# cloud's http://127.0.0.1 base needs neither.
cdn_alias = cdn_base_url.removeprefix("https://").split(":")[0] if cdn_base_url.startswith("https://") else ""
if cdn_alias and not cdn_certificate_arn.startswith("arn:aws:acm:us-east-1:"):
    raise ValueError(
        f"media-pipeline:cdnBaseUrl {cdn_base_url} needs media-pipeline:cdnCertificateArn, an ACM certificate in "
        "us-east-1 covering that host (CloudFront serves an alternate domain name only with one)"
    )
if console_enabled and not cdn_base_url:
    raise ValueError(
        "media-pipeline:consoleEnabled needs media-pipeline:cdnBaseUrl: the console is served from the CDN, and the "
        "API's and the uploads bucket's CORS must name its origin before the distribution exists"
    )
# The console's page calls the API and posts uploads from the CDN's origin.
browser_origins = (*cors_allowed_origins, cdn_base_url) if console_enabled else cors_allowed_origins
if cdn_price_class not in PRICE_CLASSES:
    raise ValueError(f"cdnPriceClass must be one of {PRICE_CLASSES}, got {cdn_price_class!r}")
if not 1 <= segment_cache_seconds <= job_retention_days * 86_400:
    raise ValueError(
        f"segmentCacheSeconds must be 1 to jobRetentionDays ({job_retention_days}) in seconds, so edges do not keep "
        f"outputs the bucket has expired, got {segment_cache_seconds}"
    )
if not 0 <= playlist_cache_seconds <= segment_cache_seconds:
    raise ValueError(
        f"playlistCacheSeconds must be 0 to segmentCacheSeconds ({segment_cache_seconds}), got {playlist_cache_seconds}"
    )
if not isinstance(max_concurrency, dict) or set(max_concurrency) != set(QUEUE_CONSUMERS):
    raise ValueError(
        f"media-pipeline:maxConcurrency must name exactly {list(QUEUE_CONSUMERS)}, got {max_concurrency!r}"
    )
if not all(isinstance(v, int) and 2 <= v <= 1000 for v in max_concurrency.values()):
    raise ValueError(
        f"media-pipeline:maxConcurrency values must be 2-1000 (SQS event sources), got {max_concurrency!r}"
    )
# The open uploads are listed in each user's usage record, which must stay well within DynamoDB's 400 KB item.
if not 0 <= max_open_uploads_per_user <= 10_000:
    raise ValueError(f"maxOpenUploadsPerUser must be 1-10000, or 0 for no limit, got {max_open_uploads_per_user}")
if max_jobs_per_user_per_hour < 0:
    raise ValueError(f"maxJobsPerUserPerHour must be at least 1, or 0 for no limit, got {max_jobs_per_user_per_hour}")
if max_stored_bytes_per_user < 0:
    raise ValueError(f"maxStoredBytesPerUser must be at least 1, or 0 for no limit, got {max_stored_bytes_per_user}")
if api_reserved_concurrency < 0:
    raise ValueError(f"apiReservedConcurrency must be at least 1, or 0 for none, got {api_reserved_concurrency}")
if engine not in ENGINES:
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
if log_retention_days not in LOG_RETENTION_DAYS:
    raise ValueError(f"logRetentionDays must be one of {sorted(LOG_RETENTION_DAYS)}, got {log_retention_days}")
if processing_deadline_seconds <= ingest_timeout_seconds + packager_timeout_seconds + max(
    transcode_timeout_seconds, images_timeout_seconds, audio_timeout_seconds
):
    raise ValueError(
        "processingDeadlineSeconds must exceed ingestTimeoutSeconds plus the longest of transcodeTimeoutSeconds, "
        "imagesTimeoutSeconds and audioTimeoutSeconds, plus packagerTimeoutSeconds"
    )
if not isinstance(allowed_content_types, list) or not all(
    isinstance(t, str) and "/" in t for t in allowed_content_types
):
    raise ValueError(f"allowedContentTypes must be MIME types, got {allowed_content_types!r}")
for key, value in (("maxImageUploadBytes", max_image_upload_bytes), ("maxAudioUploadBytes", max_audio_upload_bytes)):
    if value < 1:
        raise ValueError(f"{key} must be at least 1 byte, got {value}")
if max_image_pixels < 1:
    raise ValueError(f"maxImagePixels must be at least 1, got {max_image_pixels}")
if max_image_pixels * DECODED_BYTES_PER_PIXEL > min(ingest_memory_mb, images_memory_mb) * MIB:
    raise ValueError(
        f"maxImagePixels {max_image_pixels} decoded ({DECODED_BYTES_PER_PIXEL} bytes a pixel) does not fit in "
        f"ingestMemoryMb ({ingest_memory_mb}) and imagesMemoryMb ({images_memory_mb}): lower it or add memory"
    )
if not LOUDNESS_RANGE_LUFS[0] <= loudness_target_lufs <= LOUDNESS_RANGE_LUFS[1]:
    raise ValueError(
        f"loudnessTargetLufs must be {LOUDNESS_RANGE_LUFS[0]:g} to {LOUDNESS_RANGE_LUFS[1]:g} (ffmpeg loudnorm), "
        f"got {loudness_target_lufs:g}"
    )
try:
    parse_image_derivatives(image_derivatives)
except ValueError as err:
    raise ValueError(f"imageDerivatives: {err} (each is {{name, longEdge, formats, watermark}})") from err
if not AUDIO_BITRATES_KBPS[0] <= audio_bitrate_kbps <= AUDIO_BITRATES_KBPS[1]:
    raise ValueError(
        f"audioBitrateKbps must be {AUDIO_BITRATES_KBPS[0]}-{AUDIO_BITRATES_KBPS[1]}, got {audio_bitrate_kbps}"
    )
parse_allowed_networks(webhook_allowed_addresses)  # raises naming an entry that is not an address or network
webhook_allowed_ports = tuple(sorted(parse_allowed_ports(webhook_allowed_ports_config)))  # raises naming a non-port
if not 0 <= webhook_secret_overlap_seconds <= 30 * 86_400:
    raise ValueError(f"webhookSecretOverlapSeconds must be 0 to 30 days, got {webhook_secret_overlap_seconds}")
if lambda_encode_megapixels_per_vcpu_second < 1:
    raise ValueError(
        f"lambdaEncodeMegapixelsPerVcpuSecond must be at least 1, got {lambda_encode_megapixels_per_vcpu_second}"
    )

stack = pulumi.get_stack()
region = aws.get_region_output().region
account_id = aws.get_caller_identity_output().account_id

# Buckets: uploads (browser POSTs, sources expire) and outputs (renditions expire with their jobs).
uploads = SecureBucket(
    "uploads",
    SecureBucketArgs(
        expirations=(Expiry(UPLOAD_PREFIX, upload_retention_days),),
        cors_allowed_origins=browser_origins,
        force_destroy=force_destroy_buckets,
    ),
)
outputs = SecureBucket(
    "outputs",
    SecureBucketArgs(
        expirations=(Expiry(OUTPUT_PREFIX, job_retention_days),),
        force_destroy=force_destroy_buckets,
        readers_follow=True,  # the CDN, below
    ),
)

# Playback: CloudFront over outputs/, the outputs bucket's only reader, serving links signed with the stack's key.
cdn = Cdn(
    "cdn",
    CdnArgs(
        bucket_arn=outputs.arn,
        bucket_domain_name=outputs.regional_domain_name,
        private_key_pem=cdn_private_key,
        public_key_pem=cdn_public_key,
        cors_allowed_origins=cors_allowed_origins,
        playlist_cache_seconds=playlist_cache_seconds,
        segment_cache_seconds=segment_cache_seconds,
        price_class=cdn_price_class,
        base_url=cdn_base_url,
        alias=cdn_alias,
        certificate_arn=cdn_certificate_arn if cdn_alias else "",
        console=console_enabled,
    ),
)
outputs.admit_readers(cdn.bucket_policy_statements)
# What a function that signs playback links gets (functions/common/playback_links.py); the key stays in the secret.
cdn_signing = {
    "CDN_BASE_URL": cdn.base_url,
    "CDN_KEY_PAIR_ID": cdn.key_pair_id,
    "CDN_PRIVATE_KEY_SECRET_ARN": cdn.secret_arn,
}
store = JobStore("jobs", JobStoreArgs())
# The bus was the JobStore's child (`jobs-bus`) until it got a component of its own: the same name and the alias to
# its old parent keep a deployed stack's bus.
bus = EventBus("jobs", EventBusArgs(previous_parent=store))
media_image = MediaImage(
    "ffmpeg",
    MediaImageArgs(
        context_dir=str(ROOT),
        dockerfile=str(ROOT / "containers/ffmpeg/Dockerfile"),
        build_on_preview=build_image_on_preview,
    ),
)
# The images function's own image: Pillow, without ffmpeg.
pillow_image = MediaImage(
    "images",
    MediaImageArgs(
        context_dir=str(ROOT),
        dockerfile=str(ROOT / "containers/images/Dockerfile"),
        build_on_preview=build_image_on_preview,
    ),
)
# Encrypts the SNS topics (fan-out and alarms); CloudWatch may use it to publish alarms.
topic_key = EncryptionKey("topics", EncryptionKeyArgs(account_id=account_id))

# What every function shares; each component adds its functions' own size, grants and variables.
lambda_runtime = load_lambda_runtime()
functions = FunctionDefaults(
    # Zip functions run on the pinned runtime + Powertools layer; each archive holds what its handler imports and
    # whatever of that neither provides (python-ulid), with its metadata (components/packaging.py).
    code=ZipCode(
        source_root=ROOT,
        build_dir=ROOT / "build" / "lambda",
        runtime=lambda_runtime,
        layer_arn=region.apply(lambda_runtime.layer_arn),
    ),
    image_uri=media_image.image_uri,
    # docs/CONTRACTS.md: every function gets these; each component adds POWERTOOLS_SERVICE_NAME and its own.
    environment={
        "JOBS_TABLE_NAME": store.table_name,
        "EVENT_BUS_NAME": bus.bus_name,
        "UPLOADS_BUCKET": uploads.bucket_name,
        "OUTPUTS_BUCKET": outputs.bucket_name,
        "STACK_NAME": stack,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "LOG_LEVEL": log_level,
    },
    log_retention_days=log_retention_days,
)

ingest = Ingest(
    "ingest",
    IngestArgs(
        functions=functions.with_environment(
            {
                "MAX_UPLOAD_BYTES": str(max_upload_bytes),
                "MAX_IMAGE_UPLOAD_BYTES": str(max_image_upload_bytes),
                "MAX_AUDIO_UPLOAD_BYTES": str(max_audio_upload_bytes),
                "MAX_IMAGE_PIXELS": str(max_image_pixels),
                "IMAGE_DERIVATIVES": image_derivatives,
                "AUDIO_BITRATE_KBPS": str(audio_bitrate_kbps),
                "MAX_DURATION_SECONDS": str(max_duration_seconds),
                "MAX_WIDTH": str(max_width),
                "MAX_HEIGHT": str(max_height),
                "RENDITIONS": renditions_to_json(renditions),
                "ENGINE": engine,
                "MEDIACONVERT_THRESHOLD_SECONDS": str(mediaconvert_threshold_seconds),
                "TRANSCODE_TIMEOUT_SECONDS": str(transcode_timeout_seconds),
                "TRANSCODE_MEMORY_MB": str(transcode_memory_mb),
                "LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND": str(lambda_encode_megapixels_per_vcpu_second),
                "SEGMENT_TARGET_SECONDS": str(segment_target_seconds),
                "PROCESSING_DEADLINE_SECONDS": str(processing_deadline_seconds),
            }
        ),
        uploads_bucket_name=uploads.bucket_name,
        uploads_bucket_arn=uploads.arn,
        account_id=account_id,
        table_arn=store.table_arn,
        bus_arn=bus.bus_arn,
        topic_key_arn=topic_key.arn,
        size=FunctionSize(
            ingest_timeout_seconds,
            ingest_memory_mb,
            scratch_space_mb(max(max_upload_bytes, max_image_upload_bytes, max_audio_upload_bytes), copies=1),
        ),
        max_concurrency=max_concurrency["ingest"],
        max_receive_count=max_receive_count,
    ),
)
tracker = Tracker(
    "tracker",
    TrackerArgs(
        functions=functions,
        stack=stack,
        bus_name=bus.bus_name,
        bus_arn=bus.bus_arn,
        table_arn=store.table_arn,
        outputs_bucket_arn=outputs.arn,
        uploads_bucket_arn=uploads.arn,
        mediaconvert_jobs_arn=pulumi.Output.concat("arn:aws:mediaconvert:", region, ":", account_id, ":jobs/*"),
        deadline_index_arn=store.deadline_index_arn,
        topic_arn=ingest.topic_arn,
        topic_key_arn=topic_key.arn,
    ),
)
# Refuses an upload limit whose source could not be downloaded into a transcoder's /tmp.
scratch_space_mb(max_upload_bytes, copies=1)
transcode_scratch_mb = MAX_EPHEMERAL_MB
transcoders = {
    rendition.name: Transcoder(
        f"transcode-{rendition.name}",
        TranscoderArgs(
            functions=functions,
            rendition=rendition,
            topic_arn=ingest.topic_arn,
            uploads_bucket_arn=uploads.arn,
            outputs_bucket_arn=outputs.arn,
            bus_arn=bus.bus_arn,
            table_arn=store.table_arn,
            # The largest /tmp: a unit holds the source and its output, and the stitch of a long rendition holds its
            # parts and the rendition (README, "Limits": what fits at the default ladder's caps).
            size=FunctionSize(transcode_timeout_seconds, transcode_memory_mb, transcode_scratch_mb),
            max_concurrency=max_concurrency["transcode"],
            max_receive_count=max_receive_count,
            preset=x264_preset,
        ),
    )
    for rendition in renditions
}
# Every unit of an image job (each derivative in each format, and the metadata), in the Pillow image.
images = Images(
    "images",
    ImagesArgs(
        functions=functions.with_image(pillow_image.image_uri),
        topic_arn=ingest.topic_arn,
        uploads_bucket_arn=uploads.arn,
        outputs_bucket_arn=outputs.arn,
        bus_arn=bus.bus_arn,
        table_arn=store.table_arn,
        size=FunctionSize(images_timeout_seconds, images_memory_mb, scratch_space_mb(max_image_upload_bytes, copies=2)),
        max_concurrency=max_concurrency["images"],
        max_image_pixels=max_image_pixels,
        max_image_upload_bytes=max_image_upload_bytes,
        watermark=watermark,
        max_receive_count=max_receive_count,
    ),
)
# Both units of an audio job (the AAC rendition and the waveform), in the ffmpeg image.
audio = Audio(
    "audio",
    AudioArgs(
        functions=functions,
        topic_arn=ingest.topic_arn,
        uploads_bucket_arn=uploads.arn,
        outputs_bucket_arn=outputs.arn,
        bus_arn=bus.bus_arn,
        table_arn=store.table_arn,
        size=FunctionSize(audio_timeout_seconds, audio_memory_mb, scratch_space_mb(max_audio_upload_bytes, copies=2)),
        max_concurrency=max_concurrency["audio"],
        loudness_target_lufs=loudness_target_lufs,
        max_receive_count=max_receive_count,
    ),
)
# A video job's HLS ladder, poster and thumbnails, once its renditions (of either engine) all settled: /tmp holds every
# rendition, at most its bitrate cap for the longest accepted input, and their segments; the largest /tmp when that
# worst case does not fit (README, "Limits").
ladder_bytes_per_second = sum(r.maxVideoBitrateKbps + r.audioBitrateKbps for r in renditions) * 1000 // 8
packager = Packager(
    "packager",
    PackagerArgs(
        functions=functions,
        bus_name=bus.bus_name,
        bus_arn=bus.bus_arn,
        outputs_bucket_arn=outputs.arn,
        table_arn=store.table_arn,
        size=FunctionSize(
            packager_timeout_seconds,
            packager_memory_mb,
            bounded_scratch_space_mb(ladder_bytes_per_second * max_duration_seconds, copies=2),
        ),
        max_concurrency=max_concurrency["packager"],
        thumbnail_interval_seconds=thumbnail_interval_seconds,
        max_receive_count=max_receive_count,
    ),
)
# Jobs ingest routes to MediaConvert (README, "Engines: Lambda or MediaConvert"): deployed whatever the engine
# setting, so a stack can switch engines with a config change and no job is ever routed to a missing consumer.
mediaconvert = MediaConvert(
    "mediaconvert",
    MediaConvertArgs(
        functions=functions,
        topic_arn=ingest.topic_arn,
        uploads_bucket_arn=uploads.arn,
        outputs_bucket_arn=outputs.arn,
        table_arn=store.table_arn,
        bus_arn=bus.bus_arn,
        max_concurrency=max_concurrency["submit"],
        max_receive_count=max_receive_count,
    ),
)
webhooks = Webhooks(
    "webhooks",
    WebhooksArgs(
        functions=functions.with_environment(
            {
                "DOWNLOAD_URL_TTL_SECONDS": str(download_url_ttl_seconds),
                "JOB_RETENTION_DAYS": str(job_retention_days),
                **cdn_signing,
            }
        ),
        bus_name=bus.bus_name,
        jobs_table_arn=store.table_arn,
        outputs_bucket_arn=outputs.arn,
        max_concurrency=max_concurrency["webhooks"],
        retry_schedule=webhook_retry_schedule,
        allowed_addresses=webhook_allowed_addresses,
        allowed_ports=webhook_allowed_ports,
        max_receive_count=max_receive_count,
        extra_grants=(cdn.read_key_grant,),
    ),
)
# The SSRF allow-list is passed only when set (a local cloud's receivers): an empty variable would be noise.
webhook_allow_list = {"WEBHOOK_ALLOWED_ADDRESSES": ",".join(webhook_allowed_addresses)}
if not webhook_allowed_addresses:
    webhook_allow_list = {}
# Likewise the port list: unset, the functions apply the port rule (80, 443, 1024-65535 but service ports).
if webhook_allowed_ports:
    webhook_allow_list["WEBHOOK_ALLOWED_PORTS"] = allowed_ports_to_env(webhook_allowed_ports)
api = Api(
    "api",
    ApiArgs(
        functions=functions.with_environment(
            {
                "MAX_UPLOAD_BYTES": str(max_upload_bytes),
                "MAX_IMAGE_UPLOAD_BYTES": str(max_image_upload_bytes),
                "MAX_AUDIO_UPLOAD_BYTES": str(max_audio_upload_bytes),
                "ALLOWED_CONTENT_TYPES": ",".join(allowed_content_types),
                "UPLOAD_URL_TTL_SECONDS": str(upload_url_ttl_seconds),
                "DOWNLOAD_URL_TTL_SECONDS": str(download_url_ttl_seconds),
                "JOB_RETENTION_DAYS": str(job_retention_days),
                "MAX_OPEN_UPLOADS_PER_USER": str(max_open_uploads_per_user),
                "MAX_JOBS_PER_USER_PER_HOUR": str(max_jobs_per_user_per_hour),
                "MAX_STORED_BYTES_PER_USER": str(max_stored_bytes_per_user),
                "WEBHOOK_ENDPOINTS_TABLE": webhooks.endpoints_table_name,
                "WEBHOOK_DELIVERIES_TABLE": webhooks.deliveries_table_name,
                "WEBHOOK_SECRET_OVERLAP_SECONDS": str(webhook_secret_overlap_seconds),
                "RERUN_QUEUE_URL": ingest.queue.url,
                "PROCESSING_DEADLINE_SECONDS": str(processing_deadline_seconds),
                **webhook_allow_list,
                **cdn_signing,
            }
        ),
        jwt_issuer=jwt_issuer,
        jwt_audience=(jwt_audience,),
        cors_allowed_origins=browser_origins,
        throttling_burst_limit=api_burst_limit,
        throttling_rate_limit=api_rate_limit,
        uploads_bucket_arn=uploads.arn,
        outputs_bucket_arn=outputs.arn,
        table_arn=store.table_arn,
        owner_index_arn=store.owner_index_arn,
        bus_arn=bus.bus_arn,
        rerun_queue_arn=ingest.queue.arn,
        extra_grants=(*webhooks.management_grants, cdn.read_key_grant),
        reserved_concurrency=api_reserved_concurrency or None,
    ),
)

if console_enabled:
    # The web console, on the public API only: its files under console/ in the outputs bucket, served by the CDN.
    console = Console(
        "console",
        ConsoleArgs(
            bucket=outputs.bucket_name,
            api_url=api.url,
            uploads_origins=uploads.browser_origins,
            outputs_origins=outputs.browser_origins,
            extra_origins=console_extra_origins,
            auth={"issuer": jwt_issuer, **console_oidc} if console_oidc else None,
        ),
    )
    pulumi.export("consoleUrl", f"{cdn_base_url}/{console.index_key}")

work_queues = (
    {"ingest": ingest.queue}
    | {f"transcode-{name}": t.queue for name, t in transcoders.items()}
    | {"images": images.queue, "audio": audio.queue, "packager": packager.queue}
    | {"mediaconvert": mediaconvert.queue, "webhooks": webhooks.queue}
)
observability = Observability(
    "observability",
    ObservabilityArgs(
        region=region,
        work_queues={label: queue.queue_name for label, queue in work_queues.items()},
        dead_letter_queues={label: queue.dlq_name for label, queue in work_queues.items()}
        | {"tracker": tracker.dlq_name},
        functions={"api": api.function_name, "ingest": ingest.function_name, "tracker": tracker.function_name}
        | {f"transcode-{name}": t.function_name for name, t in transcoders.items()}
        | {"images": images.function_name, "audio": audio.function_name, "packager": packager.function_name}
        | {"mediaconvert-submit": mediaconvert.function_name, "webhooks": webhooks.function_name},
        api_id=api.api_id,
        topic_key_arn=topic_key.arn,
        queue_age_threshold_seconds=queue_age_alarm_seconds,
        # Webhook tasks wait hours for their retries by design: only one older than its longest wait is stuck.
        queue_age_thresholds={"webhooks": webhooks.max_task_age_seconds},
        alarm_email=alarm_email,
    ),
)

pulumi.export("apiUrl", api.url)
pulumi.export("uploadsBucket", uploads.bucket_name)
pulumi.export("outputsBucket", outputs.bucket_name)
pulumi.export("cdnDomainName", cdn.domain_name)
pulumi.export("cdnBaseUrl", cdn.base_url)
pulumi.export("cdnDistributionId", cdn.distribution_id)
pulumi.export("jobsTable", store.table_name)
pulumi.export("eventBusName", bus.bus_name)
pulumi.export("validatedTopicArn", ingest.topic_arn)
pulumi.export("ingestQueueUrl", ingest.queue.url)
pulumi.export("transcodeQueueUrls", {name: t.queue.url for name, t in transcoders.items()})
pulumi.export("imagesQueueUrl", images.queue.url)
pulumi.export("audioQueueUrl", audio.queue.url)
pulumi.export("packagerQueueUrl", packager.queue.url)
pulumi.export("mediaconvertQueueUrl", mediaconvert.queue.url)
pulumi.export("mediaconvertJobQueueArn", mediaconvert.mediaconvert_queue_arn)
pulumi.export(
    "deadLetterQueueUrls",
    {label: queue.dlq_url for label, queue in work_queues.items()} | {"tracker": tracker.dlq_url},
)
pulumi.export("mediaImageUri", media_image.image_uri)
pulumi.export("imagesImageUri", pillow_image.image_uri)
pulumi.export("alarmTopicArn", observability.alarm_topic_arn)
pulumi.export("dashboardName", observability.dashboard_name)
