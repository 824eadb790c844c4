"""LambdaFunction: one Lambda with its own role, least-privilege policy, log group, tracing and optional SQS source.

FunctionDefaults is what every function of the stack shares (__main__.py builds it once); FunctionSize is what each
one may use.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi import Input, Output, ResourceOptions

from components import policies
from components.grants import Grant, resolve_grants
from components.lambda_runtime import LambdaRuntime
from components.packaging import BuiltArchive, build_function_archive

IMAGE_ARCHITECTURE = "x86_64"  # the container images are built for linux/amd64 (MediaImageArgs.platform)


@dataclass(frozen=True)
class ZipCode:
    """How zip functions are packaged: each gets an archive of exactly what its handler imports, on `runtime` with
    its layer attached."""

    source_root: Path
    """Directory holding the handlers' top-level package (the repository root, for `functions.*`)."""
    build_dir: Path
    """Where the archives are written."""
    runtime: LambdaRuntime
    """The runtime and the layer, with what they provide (components/lambda_runtime.toml)."""
    layer_arn: Input[str]
    """The layer's ARN in the stack's region."""

    def archive(self, handler: str) -> BuiltArchive:
        return build_function_archive(self.source_root, handler, self.runtime.provided_distributions(), self.build_dir)


@dataclass(frozen=True)
class FunctionDefaults:
    """What every function of the stack shares: __main__.py builds it once and hands it to each component."""

    code: ZipCode
    """How zip functions are packaged (each gets its own archive, with the Powertools layer)."""
    image_uri: Input[str]
    """The container image a `from_image` function runs: the ffmpeg image, unless `with_image` names another."""
    environment: Mapping[str, Input[str]]
    """Variables every function gets (docs/CONTRACTS.md); each function adds POWERTOOLS_SERVICE_NAME and its own."""
    log_retention_days: int
    """Retention of every function's log group."""

    def with_environment(self, variables: Mapping[str, Input[str]]) -> FunctionDefaults:
        """The same defaults with more variables, for the functions of one component."""
        return replace(self, environment={**self.environment, **variables})

    def with_image(self, image_uri: Input[str]) -> FunctionDefaults:
        """The same defaults running another container image (the images function's Pillow image)."""
        return replace(self, image_uri=image_uri)


@dataclass(frozen=True)
class FunctionSize:
    """How much one function may use per invocation."""

    timeout_seconds: int
    """Function timeout; an SQS source's visibility timeout is derived from it."""
    memory_mb: int
    """Memory size, which also sets the CPU share."""
    ephemeral_storage_mb: int = 512
    """Size of /tmp, which must hold the local copies of media the function works on."""


@dataclass(frozen=True)
class LambdaFunctionArgs:
    """Inputs of a LambdaFunction: the stack's defaults, and what is this function's own."""

    defaults: FunctionDefaults
    """Packaging, common environment and log retention."""
    handler: str
    """Module path of the handler, e.g. `functions.api.handler.handler` (docs/CONTRACTS.md)."""
    service: str
    """Its POWERTOOLS_SERVICE_NAME, the name its logs, traces and metrics carry."""
    size: FunctionSize
    """Timeout, memory and /tmp."""
    environment: Mapping[str, Input[str]] = field(default_factory=dict)
    """Its own variables, on top of the defaults'."""
    grants: tuple[Grant, ...] = ()
    """Everything the function may do beyond logging and tracing."""
    from_image: bool = False
    """Run the defaults' container image (the handler becomes its command) instead of a zip archive built from the
    handler's imports."""
    queue_arn: Input[str] | None = None
    """SQS queue to consume with partial batch failure responses, if any."""
    batch_size: int = 1
    """Messages per invocation from `queue_arn`."""
    max_concurrency: int | None = None
    """Most concurrent invocations the queue's event source makes (2-1000), so a backlog cannot take the account's
    whole concurrency from other functions; None for Lambda's own scaling."""
    reserved_concurrency: int | None = None
    """Concurrency set aside for this function (and its ceiling); None for the unreserved pool."""


MAX_TIMEOUT_SECONDS = 900
MAX_SQS_CONCURRENCY = 1000
MAX_MEMORY_MB = 10_240
MIB = 1024 * 1024
MIN_EPHEMERAL_MB = 512
MAX_EPHEMERAL_MB = 10_240


def environment_number(value: float) -> str:
    """A number as an environment variable holds it: `0.5`, and `-23` rather than `-23.0` when it is whole."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def scratch_space_mb(max_file_bytes: int, copies: int) -> int:
    """/tmp size for a function that keeps `copies` files of up to `max_file_bytes` locally, plus headroom."""
    needed = math.ceil(copies * max_file_bytes / MIB) + MIN_EPHEMERAL_MB
    if needed > MAX_EPHEMERAL_MB:
        raise ValueError(f"{copies} x {max_file_bytes} bytes does not fit Lambda's {MAX_EPHEMERAL_MB} MB of /tmp")
    return needed


def bounded_scratch_space_mb(max_file_bytes: int, copies: int) -> int:
    """`scratch_space_mb`, or Lambda's largest /tmp when the worst case does not fit (the function then refuses what
    does not fit at run time, with a clear error)."""
    return min(math.ceil(copies * max_file_bytes / MIB) + MIN_EPHEMERAL_MB, MAX_EPHEMERAL_MB)


def stack_log_group(name: str, group: str, retention_days: int, opts: ResourceOptions) -> aws.cloudwatch.LogGroup:
    """Log group `/media-pipeline/{stack}/{group}`: created here rather than on first write, so retention is ours."""
    return aws.cloudwatch.LogGroup(
        name, name=f"/media-pipeline/{pulumi.get_stack()}/{group}", retention_in_days=retention_days, opts=opts
    )


def allow_invoke(
    name: str, function_name: Input[str], principal: str, source_arn: Input[str], opts: ResourceOptions
) -> aws.lambda_.Permission:
    """Resource policy statement letting one service invoke the function, on behalf of one source only."""
    return aws.lambda_.Permission(
        name,
        action="lambda:InvokeFunction",
        function=function_name,
        principal=principal,
        source_arn=source_arn,
        opts=opts,
    )


class LambdaFunction(pulumi.ComponentResource):
    """A Lambda function and everything it needs to run observably with least privilege."""

    arn: Output[str]
    """Function ARN."""
    function_name: Output[str]
    """Function name."""
    invoke_arn: Output[str]
    """ARN API Gateway integrations invoke."""
    role_arn: Output[str]
    """Execution role ARN."""
    log_group_name: Output[str]
    """Name of the function's log group."""

    def __init__(self, name: str, args: LambdaFunctionArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("media-pipeline:index:LambdaFunction", name, None, opts)
        if args.max_concurrency is not None and not 2 <= args.max_concurrency <= MAX_SQS_CONCURRENCY:
            raise ValueError(f"{name}: an SQS event source's maximum concurrency is 2-1000, got {args.max_concurrency}")
        if args.reserved_concurrency is not None and args.reserved_concurrency < 1:
            raise ValueError(f"{name}: reserved concurrency must be at least 1 (0 would stop the function)")
        size = args.size
        if not 1 <= size.timeout_seconds <= MAX_TIMEOUT_SECONDS or not 128 <= size.memory_mb <= MAX_MEMORY_MB:
            raise ValueError(
                f"{name}: Lambda allows 1-900 s and 128-10240 MB, got {size.timeout_seconds} s, {size.memory_mb} MB"
            )
        child = ResourceOptions(parent=self)
        defaults = args.defaults

        # Execution role only Lambda can assume.
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(policies.assume_role_policy("lambda.amazonaws.com")),
            opts=child,
        )
        # Explicit log group, so the role can be scoped to it.
        log_group = stack_log_group(f"{name}-logs", name, defaults.log_retention_days, child)
        grants = args.grants
        if args.queue_arn is not None:
            grants = (*grants, Grant(actions=policies.SQS_CONSUMER_ACTIONS, resources=(args.queue_arn,)))
        # Inline policy: own log group, X-Ray, and the named grants.
        role_policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=Output.all(log_group.arn, resolve_grants(grants)).apply(
                lambda values: json.dumps(policies.function_policy(*values))
            ),
            opts=child,
        )

        package: dict[str, Any]
        if args.from_image:
            architecture = IMAGE_ARCHITECTURE
            package = {"package_type": "Image", "image_uri": defaults.image_uri}
            package |= {"image_config": aws.lambda_.FunctionImageConfigArgs(commands=[args.handler])}
        else:
            archive = defaults.code.archive(args.handler)
            architecture = defaults.code.runtime.architecture
            package = {"package_type": "Zip", "runtime": defaults.code.runtime.name, "handler": args.handler}
            # The archive's own hash: Lambda's code changes exactly when its bytes do.
            package |= {"code": pulumi.FileArchive(str(archive.path)), "source_code_hash": archive.base64_sha256}
            package |= {"layers": [defaults.code.layer_arn]}
        environment = {**defaults.environment, **args.environment, "POWERTOOLS_SERVICE_NAME": args.service}
        # The function itself, logging JSON to its own group and tracing every invocation.
        function = aws.lambda_.Function(
            name,
            role=role.arn,
            architectures=[architecture],
            timeout=size.timeout_seconds,
            memory_size=size.memory_mb,
            ephemeral_storage=aws.lambda_.FunctionEphemeralStorageArgs(size=size.ephemeral_storage_mb),
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=environment),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=log_group.name),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            reserved_concurrent_executions=args.reserved_concurrency,
            **package,
            opts=ResourceOptions(parent=self, depends_on=[role_policy]),
        )
        if args.queue_arn is not None:
            # Poll the queue; failed records are reported individually so the rest of a batch is not retried.
            aws.lambda_.EventSourceMapping(
                f"{name}-source",
                event_source_arn=args.queue_arn,
                function_name=function.arn,
                batch_size=args.batch_size,
                function_response_types=["ReportBatchItemFailures"],
                scaling_config=(
                    aws.lambda_.EventSourceMappingScalingConfigArgs(maximum_concurrency=args.max_concurrency)
                    if args.max_concurrency is not None
                    else None
                ),
                opts=ResourceOptions(parent=self, depends_on=[role_policy]),
            )

        self.arn = function.arn
        self.function_name = function.name
        self.invoke_arn = function.invoke_arn
        self.role_arn = role.arn
        self.log_group_name = log_group.name
        self.register_outputs(
            {"arn": self.arn, "functionName": self.function_name, "roleArn": self.role_arn, "logGroup": log_group.name}
        )
