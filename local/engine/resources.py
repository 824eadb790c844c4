"""Per-type creators: turn a declared resource's inputs into the same resource in the moto server.

Each creator takes the logical name and the resolved inputs (Pulumi wire names, camelCase) and returns the
physical id and the outputs AWS would report (ARNs, URLs, names). The engine merges them over the inputs,
so every reference between resources resolves to the emulator's real value.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pulumi
from botocore.exceptions import ClientError

from local.artifacts.images import image_digest
from local.engine.cloudfront import CloudFrontResources
from local.engine.deployment import AsyncDelivery, Behaviour, Deployment, ResourceType
from local.engine.emulator import Emulator
from local.engine.state_store import StableNames, resource_random
from local.permissions import enforcement, roles
from local.permissions.access import Principal, Request, decide

Outputs = dict[str, Any]
Creator = Callable[[str, dict[str, Any]], tuple[str, Outputs]]

# Local delivery queues hold an event while its function is retried; the delivery loop deletes it when done.
DELIVERY_QUEUE_PREFIX = enforcement.DELIVERY_QUEUE_PREFIX
S3 = "s3.amazonaws.com"
LAMBDA = "lambda.amazonaws.com"
DELIVERY_QUEUE_VISIBILITY_SECONDS = 12 * 3600


def random_hex(length: int = 7) -> str:
    return resource_random.token_hex((length + 1) // 2)[:length]


def autoname(logical: str, inputs: dict[str, Any], *, key: str = "name", prefix_key: str = "namePrefix") -> str:
    """The physical name: the declared one, else the declared prefix plus random, else Pulumi's `name-1a2b3c4`."""
    if inputs.get(key):
        return str(inputs[key])
    if inputs.get(prefix_key):
        return f"{inputs[prefix_key]}{random_hex(26)}"
    return f"{logical}-{random_hex()}"


def pascal(value: Any, renames: dict[str, str] | None = None) -> Any:
    """camelCase Pulumi inputs to the PascalCase AWS API shapes, recursively, dropping None values."""
    renames = {"id": "ID", **(renames or {})}
    if isinstance(value, dict):
        return {
            renames.get(k, k[:1].upper() + k[1:]): pascal(v, renames)
            for k, v in value.items()
            if v is not None and k != "__defaults"
        }
    if isinstance(value, list):
        return [pascal(v, renames) for v in value]
    return value


def integral(value: Any) -> Any:
    """Pulumi's wire format carries every number as a float; AWS wants integers where they are whole."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def _as_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _is_not_implemented(err: ClientError) -> bool:
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    code = err.response.get("Error", {}).get("Code", "")
    return status >= 500 or code in ("NotImplemented", "InternalFailure")


def _lambda_arn_to_name(arn: str) -> str:
    return arn.split(":function:", 1)[1].split(":", 1)[0]


def _is_lambda_arn(arn: str) -> bool:
    return arn.startswith("arn:aws:lambda:") and ":function:" in arn


@dataclass
class Created:
    id: str
    outputs: Outputs
    behaviour: Behaviour
    note: str = ""


def _key_schema(spec: dict[str, Any]) -> list[dict[str, str]]:
    if spec.get("keySchemas"):
        return [{"AttributeName": k["attributeName"], "KeyType": k["keyType"]} for k in spec["keySchemas"]]
    schema = [{"AttributeName": spec["hashKey"], "KeyType": "HASH"}] if spec.get("hashKey") else []
    if spec.get("rangeKey"):
        schema.append({"AttributeName": spec["rangeKey"], "KeyType": "RANGE"})
    return schema


def _projection(spec: dict[str, Any]) -> dict[str, Any]:
    projection: dict[str, Any] = {"ProjectionType": spec.get("projectionType", "ALL")}
    if spec.get("nonKeyAttributes"):
        projection["NonKeyAttributes"] = list(spec["nonKeyAttributes"])
    return projection


def create_table_request(table: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The CreateTable request for a declared `aws.dynamodb.Table` (its Pulumi inputs), named `table`."""
    provisioned = inputs.get("billingMode", "PROVISIONED") == "PROVISIONED"

    def throughput(spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "ReadCapacityUnits": spec.get("readCapacity") or 1,
            "WriteCapacityUnits": spec.get("writeCapacity") or 1,
        }

    request: dict[str, Any] = {
        "TableName": table,
        "KeySchema": _key_schema(inputs),
        "AttributeDefinitions": [
            {"AttributeName": a["name"], "AttributeType": a["type"]} for a in inputs.get("attributes") or []
        ],
        "BillingMode": "PROVISIONED" if provisioned else "PAY_PER_REQUEST",
    }
    if provisioned:
        request["ProvisionedThroughput"] = throughput(inputs)
    indexes = []
    for gsi in inputs.get("globalSecondaryIndexes") or []:
        index = {"IndexName": gsi["name"], "KeySchema": _key_schema(gsi), "Projection": _projection(gsi)}
        if provisioned:
            index["ProvisionedThroughput"] = throughput(gsi)
        indexes.append(index)
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    local_indexes = [
        {
            "IndexName": lsi["name"],
            "KeySchema": [
                {"AttributeName": inputs["hashKey"], "KeyType": "HASH"},
                {"AttributeName": lsi["rangeKey"], "KeyType": "RANGE"},
            ],
            "Projection": _projection(lsi),
        }
        for lsi in inputs.get("localSecondaryIndexes") or []
    ]
    if local_indexes:
        request["LocalSecondaryIndexes"] = local_indexes
    if inputs.get("streamEnabled"):
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": inputs["streamViewType"]}
    return request


def put_program_object(s3: Any, inputs: dict[str, Any], project_dir: Path) -> dict[str, Any]:
    """Writes an object the program declares (the web console's files) from its `content` or its file asset, whose
    relative path is the program's; S3's PutObject answer."""
    source = inputs.get("source")
    if source is not None and not isinstance(source, pulumi.FileAsset):
        raise ValueError(f"object {inputs['key']}: a {type(source).__name__} source is not read locally (files only)")
    if source is not None:
        body = (project_dir / source.path).read_bytes()
    else:
        body = _as_string(inputs.get("content") or "").encode()
    headers = {"ContentType": "contentType", "CacheControl": "cacheControl", "ContentEncoding": "contentEncoding"}
    extra = {header: inputs[key] for header, key in headers.items() if inputs.get(key)}
    return s3.put_object(Bucket=inputs["bucket"], Key=inputs["key"], Body=body, **extra)


class ResourceFactory:
    """Creates each supported resource type in the emulator; records the rest without behaviour."""

    def __init__(
        self,
        emulator: Emulator,
        deployment: Deployment,
        api_endpoint: str,
        project_dir: Path,
        cdn_endpoint: str = "",
        *,
        names: StableNames | None = None,
    ) -> None:
        self._aws = emulator
        self._names = names
        self._project_dir = project_dir
        self._deployment = deployment
        self._region = deployment.region
        self._account = deployment.account_id
        self._api_endpoint = api_endpoint.rstrip("/")
        self._emulated: dict[str, Creator] = {
            ResourceType.S3_BUCKET: self._bucket,
            ResourceType.S3_BUCKET_V2: self._bucket,
            ResourceType.S3_BUCKET_NOTIFICATION: self._bucket_notification,
            ResourceType.S3_BUCKET_POLICY: self._bucket_policy,
            ResourceType.S3_BUCKET_CORS_CONFIGURATION: self._bucket_cors,
            ResourceType.S3_BUCKET_CORS_CONFIGURATION_V2: self._bucket_cors,
            ResourceType.S3_BUCKET_PUBLIC_ACCESS_BLOCK: self._bucket_public_access_block,
            ResourceType.S3_BUCKET_SERVER_SIDE_ENCRYPTION_CONFIGURATION: self._bucket_sse,
            ResourceType.S3_BUCKET_SERVER_SIDE_ENCRYPTION_CONFIGURATION_V2: (self._bucket_sse),
            ResourceType.S3_BUCKET_LIFECYCLE_CONFIGURATION: self._bucket_lifecycle,
            ResourceType.S3_BUCKET_LIFECYCLE_CONFIGURATION_V2: self._bucket_lifecycle,
            ResourceType.S3_BUCKET_VERSIONING: self._bucket_versioning,
            ResourceType.S3_BUCKET_VERSIONING_V2: self._bucket_versioning,
            ResourceType.S3_BUCKET_OWNERSHIP_CONTROLS: self._bucket_ownership,
            ResourceType.S3_BUCKET_OBJECT_V2: self._bucket_object,
            ResourceType.SNS_TOPIC: self._topic,
            ResourceType.SNS_TOPIC_POLICY: self._topic_policy,
            ResourceType.SNS_TOPIC_SUBSCRIPTION: self._subscription,
            ResourceType.SQS_QUEUE: self._queue,
            ResourceType.SQS_QUEUE_POLICY: self._queue_attribute("policy", "Policy"),
            ResourceType.SQS_REDRIVE_POLICY: self._queue_attribute("redrivePolicy", "RedrivePolicy"),
            ResourceType.SQS_REDRIVE_ALLOW_POLICY: self._queue_attribute("redriveAllowPolicy", "RedriveAllowPolicy"),
            ResourceType.DYNAMODB_TABLE: self._table,
            ResourceType.CLOUDWATCH_EVENT_BUS: self._event_bus,
            ResourceType.EVENT_RULE: self._event_rule,
            ResourceType.EVENT_TARGET: self._event_target,
            ResourceType.IAM_ROLE: self._role,
            ResourceType.IAM_ROLE_POLICY: self._role_policy,
            ResourceType.IAM_ROLE_POLICY_ATTACHMENT: self._role_policy_attachment,
            ResourceType.KMS_KEY: self._kms_key,
            ResourceType.KMS_ALIAS: self._kms_alias,
            ResourceType.SECRETSMANAGER_SECRET: self._secret,
            ResourceType.SECRETSMANAGER_SECRET_POLICY: self._secret_policy,
            ResourceType.SECRETSMANAGER_SECRET_VERSION: self._secret_version,
        }
        self._runtime: dict[str, Creator] = {
            ResourceType.FUNCTION: self._function,
            ResourceType.EVENT_SOURCE_MAPPING: self._event_source_mapping,
            ResourceType.HTTP_API: self._http_api,
            ResourceType.HTTP_STAGE: self._http_stage,
            ResourceType.HTTP_ROUTE: self._http_child,
            ResourceType.HTTP_INTEGRATION: self._http_child,
            ResourceType.HTTP_AUTHORIZER: self._http_child,
            ResourceType.MEDIACONVERT_QUEUE: self._mediaconvert_queue,
            ResourceType.DOCKER_IMAGE: self._docker_image,
            # Served by the local CDN (local/cdn/), which reads them from the deployment.
            **CloudFrontResources(deployment, cdn_endpoint.removeprefix("http://").rstrip("/")).creators(),
        }

    @property
    def emulated_types(self) -> frozenset[str]:
        return frozenset(self._emulated)

    @property
    def runtime_types(self) -> frozenset[str]:
        return frozenset(self._runtime)

    def create(self, token: str, name: str, inputs: dict[str, Any]) -> Created:
        """The resource created, its random parts drawn as on the previous start when `names` remembers it."""
        with self._names.declaring(token, name) if self._names else nullcontext():
            created = self._create(token, name, integral(inputs))
        if self._names:
            self._names.record(token, name, created.id)
        return created

    def _create(self, token: str, name: str, inputs: dict[str, Any]) -> Created:
        if token in self._emulated:
            resource_id, outputs = self._emulated[token](name, inputs)
            note = outputs.pop("__note", "")
            return Created(resource_id, outputs, Behaviour.EMULATED, note)
        if token in self._runtime:
            resource_id, outputs = self._runtime[token](name, inputs)
            return Created(resource_id, outputs, Behaviour.RUNTIME)
        resource_id, outputs = self._recorded(token, name, inputs)
        return Created(resource_id, outputs, Behaviour.RECORDED)

    # --- S3 -------------------------------------------------------------------------------------------------

    def _bucket(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        bucket = autoname(name, inputs, key="bucket", prefix_key="bucketPrefix").lower()
        s3 = self._aws.client("s3")
        if self._region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": self._region})
        if inputs.get("corsRules"):
            s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": pascal(inputs["corsRules"])})
        return bucket, {
            "bucket": bucket,
            "arn": f"arn:aws:s3:::{bucket}",
            "bucketDomainName": f"{bucket}.s3.amazonaws.com",
            "bucketRegionalDomainName": f"{bucket}.s3.{self._region}.amazonaws.com",
            "region": self._region,
            "hostedZoneId": "Z3AQBSTGFYJSTF",
        }

    def _check_notification_destinations(self, bucket: str, inputs: dict[str, Any]) -> None:
        """S3 validates a notification configuration's destinations when it is put: each queue's or topic's policy
        must admit S3 from this bucket, and each function's permission must (pulumi up fails on the resource)."""
        source = f"arn:aws:s3:::{bucket}"
        problems = []
        for spec in inputs.get("queues") or []:
            queue = spec["queueArn"]
            decision = enforcement.queue_admits(self._account, self._region, queue.rsplit(":", 1)[-1], S3, source)
            if not decision.allowed:
                problems.append(f"{queue}: {decision.reason}")
        for spec in inputs.get("topics") or []:
            decision = enforcement.topic_admits(self._account, self._region, spec["topicArn"], S3, source)
            if not decision.allowed:
                problems.append(f"{spec['topicArn']}: {decision.reason}")
        for spec in inputs.get("lambdaFunctions") or []:
            function = self._deployment.function_by_reference(spec["lambdaFunctionArn"])
            refusal = self._deployment.invoke_refusal(function, S3, source)
            if refusal:
                problems.append(f"{spec['lambdaFunctionArn']}: {refusal}")
        if problems:
            raise ValueError(
                "InvalidArgument: Unable to validate the following destination configurations: " + "; ".join(problems)
            )

    def _bucket_notification(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        bucket = inputs["bucket"]
        self._check_notification_destinations(bucket, inputs)
        queue_configs = [self._s3_target(q, "queueArn", "QueueArn") for q in inputs.get("queues") or []]
        topic_configs = [self._s3_target(t, "topicArn", "TopicArn") for t in inputs.get("topics") or []]
        # moto cannot invoke Lambda: each function notification goes to a local delivery queue instead.
        for index, fn in enumerate(inputs.get("lambdaFunctions") or []):
            delivery = self._delivery_queue(
                f"s3-{bucket}-{index}",
                source=f"bucket {bucket} notification",
                shape="s3",
                function=fn["lambdaFunctionArn"],
                source_arn=f"arn:aws:s3:::{bucket}",
            )
            queue_configs.append(self._s3_target({**fn, "queueArn": delivery.queue_arn}, "queueArn", "QueueArn"))
        configuration: dict[str, Any] = {}
        if queue_configs:
            configuration["QueueConfigurations"] = queue_configs
        if topic_configs:
            configuration["TopicConfigurations"] = topic_configs
        if inputs.get("eventbridge"):
            configuration["EventBridgeConfiguration"] = {}
        self._aws.client("s3").put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=configuration
        )
        return bucket, {}

    @staticmethod
    def _s3_target(spec: dict[str, Any], arn_key: str, api_key: str) -> dict[str, Any]:
        rules = [
            {"Name": rule, "Value": spec[key]}
            for rule, key in (("prefix", "filterPrefix"), ("suffix", "filterSuffix"))
            if spec.get(key)
        ]
        target: dict[str, Any] = {api_key: spec[arn_key], "Events": list(spec["events"])}
        if spec.get("id"):
            target["Id"] = spec["id"]
        if rules:
            target["Filter"] = {"Key": {"FilterRules": rules}}
        return target

    def _bucket_config(self, inputs: dict[str, Any], call: Callable[[Any, str], None]) -> tuple[str, Outputs]:
        """A bucket sub-resource; settings moto does not implement are recorded with a note, not faked."""
        bucket = inputs["bucket"]
        try:
            call(self._aws.client("s3"), bucket)
        except ClientError as err:
            if not _is_not_implemented(err):
                raise
            return bucket, {"__note": f"not emulated: {err.response['Error'].get('Message', '')[:60]}"}
        return bucket, {}

    def _bucket_policy(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        return self._bucket_config(inputs, lambda s3, b: s3.put_bucket_policy(Bucket=b, Policy=inputs["policy"]))

    def _bucket_cors(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        rules = pascal(inputs["corsRules"])
        return self._bucket_config(
            inputs, lambda s3, b: s3.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": rules})
        )

    def _bucket_object(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        put = put_program_object(self._aws.client("s3"), inputs, self._project_dir)
        object_id = f"{inputs['bucket']}/{inputs['key']}"
        return object_id, {"id": object_id, "etag": put["ETag"].strip('"'), "versionId": put.get("VersionId", "")}

    def _bucket_public_access_block(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        keys = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        block = {key[:1].upper() + key[1:]: bool(inputs.get(key)) for key in keys}
        return self._bucket_config(
            inputs, lambda s3, b: s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration=block)
        )

    def _bucket_sse(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        rules = pascal(inputs["rules"], {"sseAlgorithm": "SSEAlgorithm", "kmsMasterKeyId": "KMSMasterKeyID"})
        return self._bucket_config(
            inputs,
            lambda s3, b: s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={"Rules": rules}),
        )

    def _bucket_lifecycle(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        rules = pascal(inputs["rules"])
        return self._bucket_config(
            inputs,
            lambda s3, b: s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": rules}),
        )

    def _bucket_versioning(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        status = (inputs.get("versioningConfiguration") or {}).get("status", "Enabled")
        return self._bucket_config(
            inputs, lambda s3, b: s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": status})
        )

    def _bucket_ownership(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        rule = pascal(inputs["rule"])
        return self._bucket_config(
            inputs,
            lambda s3, b: s3.put_bucket_ownership_controls(Bucket=b, OwnershipControls={"Rules": [rule]}),
        )

    # --- SNS ------------------------------------------------------------------------------------------------

    def _topic(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        topic = autoname(name, inputs)
        if inputs.get("fifoTopic") and not topic.endswith(".fifo"):
            topic += ".fifo"
        attribute_names = {
            "fifoTopic": "FifoTopic",
            "contentBasedDeduplication": "ContentBasedDeduplication",
            "policy": "Policy",
            "displayName": "DisplayName",
            "deliveryPolicy": "DeliveryPolicy",
            "kmsMasterKeyId": "KmsMasterKeyId",
        }
        attributes = {api: _as_string(inputs[key]) for key, api in attribute_names.items() if inputs.get(key)}
        arn = self._aws.client("sns").create_topic(Name=topic, Attributes=attributes)["TopicArn"]
        return arn, {"arn": arn, "name": topic, "owner": self._account}

    def _topic_policy(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        self._aws.client("sns").set_topic_attributes(
            TopicArn=inputs["arn"], AttributeName="Policy", AttributeValue=inputs["policy"]
        )
        return inputs["arn"], {"owner": self._account}

    def _subscription(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        protocol, endpoint = inputs["protocol"], inputs["endpoint"]
        attribute_names = {
            "filterPolicy": "FilterPolicy",
            "filterPolicyScope": "FilterPolicyScope",
            "rawMessageDelivery": "RawMessageDelivery",
            "redrivePolicy": "RedrivePolicy",
            "deliveryPolicy": "DeliveryPolicy",
        }
        attributes = {
            api: _as_string(inputs[key]) for key, api in attribute_names.items() if inputs.get(key) not in (None, "")
        }
        if protocol == "lambda":
            # moto cannot invoke Lambda: the subscription feeds a local delivery queue (SNS envelope, not raw).
            delivery = self._delivery_queue(
                f"sns-{name}", source=f"subscription {name}", shape="sns", function=endpoint, source_arn=inputs["topic"]
            )
            protocol, endpoint = "sqs", delivery.queue_arn
            attributes.pop("RawMessageDelivery", None)
        arn = self._aws.client("sns").subscribe(
            TopicArn=inputs["topic"],
            Protocol=protocol,
            Endpoint=endpoint,
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return arn, {
            "arn": arn,
            "ownerId": self._account,
            "confirmationWasAuthenticated": True,
            "pendingConfirmation": False,
        }

    # --- SQS ------------------------------------------------------------------------------------------------

    _QUEUE_ATTRIBUTES: ClassVar[dict[str, str]] = {
        "delaySeconds": "DelaySeconds",
        "maxMessageSize": "MaximumMessageSize",
        "messageRetentionSeconds": "MessageRetentionPeriod",
        "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
        "visibilityTimeoutSeconds": "VisibilityTimeout",
        "redrivePolicy": "RedrivePolicy",
        "redriveAllowPolicy": "RedriveAllowPolicy",
        "policy": "Policy",
        "fifoQueue": "FifoQueue",
        "contentBasedDeduplication": "ContentBasedDeduplication",
        "deduplicationScope": "DeduplicationScope",
        "fifoThroughputLimit": "FifoThroughputLimit",
        "kmsMasterKeyId": "KmsMasterKeyId",
        "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
        "sqsManagedSseEnabled": "SqsManagedSseEnabled",
    }

    def _queue(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        queue = autoname(name, inputs)
        if inputs.get("fifoQueue") and not queue.endswith(".fifo"):
            queue += ".fifo"
        attributes = {
            api: _as_string(inputs[key])
            for key, api in self._QUEUE_ATTRIBUTES.items()
            if inputs.get(key) not in (None, "") and not (key == "fifoQueue" and not inputs[key])
        }
        sqs = self._aws.client("sqs")
        url = sqs.create_queue(QueueName=queue, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, {"url": url, "arn": arn, "name": queue}

    def _queue_attribute(self, input_key: str, attribute: str) -> Creator:
        def create(name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
            self._aws.client("sqs").set_queue_attributes(
                QueueUrl=inputs["queueUrl"], Attributes={attribute: _as_string(inputs[input_key])}
            )
            return inputs["queueUrl"], {}

        return create

    # --- DynamoDB -------------------------------------------------------------------------------------------

    def _table(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        table = autoname(name, inputs)
        request = create_table_request(table, inputs)
        dynamodb = self._aws.client("dynamodb")
        description = dynamodb.create_table(**request)["TableDescription"]
        ttl = inputs.get("ttl") or {}
        if ttl.get("enabled") and ttl.get("attributeName"):
            dynamodb.update_time_to_live(
                TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["attributeName"]}
            )
        return table, {
            "name": table,
            "arn": description["TableArn"],
            "streamArn": description.get("LatestStreamArn", ""),
            "streamLabel": description.get("LatestStreamLabel", ""),
        }

    # --- IAM ------------------------------------------------------------------------------------------------

    def _role(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        role = autoname(name, inputs)
        request = {
            "RoleName": role,
            "AssumeRolePolicyDocument": inputs["assumeRolePolicy"],
            "Path": inputs.get("path") or "/",
        }
        created = self._aws.client("iam").create_role(**request)["Role"]
        return role, {"name": role, "arn": created["Arn"], "uniqueId": created["RoleId"]}

    def _role_policy(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        policy = autoname(name, inputs)
        self._aws.client("iam").put_role_policy(
            RoleName=inputs["role"], PolicyName=policy, PolicyDocument=inputs["policy"]
        )
        return f"{inputs['role']}:{policy}", {"name": policy}

    def _role_policy_attachment(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        self._aws.client("iam").attach_role_policy(RoleName=inputs["role"], PolicyArn=inputs["policyArn"])
        return f"{inputs['role']}-{random_hex()}", {}

    # --- KMS ------------------------------------------------------------------------------------------------

    def _kms_key(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        request: dict[str, Any] = {"Description": inputs.get("description") or ""}
        if inputs.get("policy"):
            request["Policy"] = inputs["policy"]
        kms = self._aws.client("kms")
        metadata = kms.create_key(**request)["KeyMetadata"]
        if inputs.get("enableKeyRotation"):
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
        return metadata["KeyId"], {"arn": metadata["Arn"], "keyId": metadata["KeyId"]}

    def _kms_alias(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        alias = autoname(name, inputs)
        self._aws.client("kms").create_alias(AliasName=alias, TargetKeyId=inputs["targetKeyId"])
        return alias, {"arn": f"arn:aws:kms:{self._region}:{self._account}:{alias}", "targetKeyArn": ""}

    # --- Secrets Manager ------------------------------------------------------------------------------------

    def _secret(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        secret = autoname(name, inputs)
        request: dict[str, Any] = {
            "Name": secret,
            "Description": inputs.get("description") or "",
            # The version id; botocore would draw it, so it would change on each start.
            "ClientRequestToken": str(resource_random.uuid4()),
        }
        if inputs.get("kmsKeyId"):
            request["KmsKeyId"] = inputs["kmsKeyId"]
        secretsmanager = self._aws.client("secretsmanager")
        arn = secretsmanager.create_secret(**request)["ARN"]
        if inputs.get("policy"):
            secretsmanager.put_resource_policy(SecretId=arn, ResourcePolicy=inputs["policy"])
        return arn, {"arn": arn, "name": secret}

    def _secret_policy(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        self._aws.client("secretsmanager").put_resource_policy(
            SecretId=inputs["secretArn"], ResourcePolicy=inputs["policy"]
        )
        return inputs["secretArn"], {}

    def _secret_version(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        request: dict[str, Any] = {"SecretId": inputs["secretId"], "ClientRequestToken": str(resource_random.uuid4())}
        if inputs.get("secretString") is not None:
            request["SecretString"] = inputs["secretString"]
        elif inputs.get("secretBinary") is not None:
            request["SecretBinary"] = base64.b64decode(inputs["secretBinary"])
        if inputs.get("versionStages"):
            request["VersionStages"] = list(inputs["versionStages"])
        answer = self._aws.client("secretsmanager").put_secret_value(**request)
        return f"{answer['ARN']}|{answer['VersionId']}", {"arn": answer["ARN"], "versionId": answer["VersionId"]}

    # --- EventBridge ----------------------------------------------------------------------------------------

    @staticmethod
    def _bus_name(value: str | None) -> str:
        if not value:
            return "default"
        return value.split("event-bus/", 1)[1] if value.startswith("arn:") else value

    def _event_bus(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        bus = autoname(name, inputs)
        events = self._aws.client("events")
        if bus == "default":
            arn = events.describe_event_bus(Name="default")["Arn"]
        else:
            arn = events.create_event_bus(Name=bus)["EventBusArn"]
        return bus, {"name": bus, "arn": arn}

    def _event_rule(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        rule = autoname(name, inputs)
        bus = self._bus_name(inputs.get("eventBusName"))
        state = inputs.get("state") or ("DISABLED" if inputs.get("isEnabled") is False else "ENABLED")
        request: dict[str, Any] = {"Name": rule, "EventBusName": bus, "State": state}
        for key, api in (("eventPattern", "EventPattern"), ("scheduleExpression", "ScheduleExpression")):
            if inputs.get(key):
                request[api] = inputs[key]
        for key, api in (("description", "Description"), ("roleArn", "RoleArn")):
            if inputs.get(key):
                request[api] = inputs[key]
        arn = self._aws.client("events").put_rule(**request)["RuleArn"]
        rule_id = rule if bus == "default" else f"{bus}/{rule}"
        return rule_id, {"name": rule, "arn": arn, "eventBusName": bus, "state": state}

    def _event_target(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        rule, bus = inputs["rule"], self._bus_name(inputs.get("eventBusName"))
        target_id = inputs.get("targetId") or f"{name}-{random_hex()}"
        target: dict[str, Any] = {"Id": target_id, "Arn": inputs["arn"]}
        if inputs.get("input"):
            target["Input"] = inputs["input"]
        if inputs.get("inputPath"):
            target["InputPath"] = inputs["inputPath"]
        transformer = inputs.get("inputTransformer")
        if transformer:
            target["InputTransformer"] = {
                "InputPathsMap": transformer.get("inputPaths") or {},
                "InputTemplate": transformer["inputTemplate"],
            }
        if (inputs.get("sqsTarget") or {}).get("messageGroupId"):
            target["SqsParameters"] = {"MessageGroupId": inputs["sqsTarget"]["messageGroupId"]}
        retry = inputs.get("retryPolicy") or {}
        dead_letter_arn = (inputs.get("deadLetterConfig") or {}).get("arn")
        if _is_lambda_arn(inputs["arn"]):
            # moto matches the rule's pattern and delivers to a local queue; the delivery loop invokes the function.
            events = self._aws.client("events")
            rule_arn = events.describe_rule(Name=rule, EventBusName=bus)["Arn"]
            delivery = self._delivery_queue(
                f"rule-{rule}-{target_id}",
                source=f"rule {rule} → {_lambda_arn_to_name(inputs['arn'])}",
                shape="eventbridge",
                function=inputs["arn"],
                target_retry_attempts=retry.get("maximumRetryAttempts"),
                target_event_age_seconds=retry.get("maximumEventAgeInSeconds"),
                target_dead_letter_arn=dead_letter_arn,
                rule_arn=rule_arn,
                constant_input=inputs.get("input"),
                input_path=inputs.get("inputPath"),
            )
            target = {k: v for k, v in target.items() if k not in ("Input", "InputPath")}
            target["Arn"] = delivery.queue_arn
        else:
            if retry:
                target["RetryPolicy"] = pascal(retry)
            if dead_letter_arn:
                target["DeadLetterConfig"] = {"Arn": dead_letter_arn}
        response = self._aws.client("events").put_targets(Rule=rule, EventBusName=bus, Targets=[target])
        if response.get("FailedEntryCount"):
            raise RuntimeError(f"put_targets {rule}/{target_id}: {response['FailedEntries']}")
        return f"{bus}-{rule}-{target_id}", {"targetId": target_id, "eventBusName": bus}

    def _delivery_queue(
        self,
        label: str,
        *,
        source: str,
        shape: str,
        function: str,
        target_retry_attempts: int | None = None,
        target_event_age_seconds: int | None = None,
        target_dead_letter_arn: str | None = None,
        rule_arn: str | None = None,
        constant_input: str | None = None,
        input_path: str | None = None,
        source_arn: str | None = None,
    ) -> AsyncDelivery:
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)
        queue = f"{DELIVERY_QUEUE_PREFIX}{safe[: 80 - len(DELIVERY_QUEUE_PREFIX) - 8]}-{random_hex()}"
        sqs = self._aws.client("sqs")
        url = sqs.create_queue(
            QueueName=queue, Attributes={"VisibilityTimeout": str(DELIVERY_QUEUE_VISIBILITY_SECONDS)}
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        delivery = AsyncDelivery(
            source=source,
            shape=shape,
            queue_url=url,
            queue_arn=arn,
            function_arn=function,
            rule_arn=rule_arn,
            target_retry_attempts=target_retry_attempts,
            target_event_age_seconds=target_event_age_seconds,
            target_dead_letter_arn=target_dead_letter_arn,
            constant_input=constant_input,
            input_path=input_path,
            source_arn=source_arn or rule_arn,
        )
        self._deployment.deliveries.append(delivery)
        return delivery

    # --- Run by the local cloud -----------------------------------------------------------------------------

    def _function(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        function = autoname(name, inputs)
        if not roles.trust_allows(self._account, inputs["role"], LAMBDA):
            raise ValueError(
                f"InvalidParameterValueException: The role defined for the function cannot be assumed by Lambda "
                f"({inputs['role']})"
            )
        arn = f"arn:aws:lambda:{self._region}:{self._account}:function:{function}"
        invoke_arn = f"arn:aws:apigateway:{self._region}:lambda:path/2015-03-31/functions/{arn}/invocations"
        return function, {
            "name": function,
            "arn": arn,
            "invokeArn": invoke_arn,
            "qualifiedArn": f"{arn}:$LATEST",
            "qualifiedInvokeArn": invoke_arn.replace(arn, f"{arn}:$LATEST"),
            "version": "$LATEST",
            "timeout": inputs.get("timeout") or 3,
            "memorySize": inputs.get("memorySize") or 128,
            "packageType": inputs.get("packageType") or "Zip",
        }

    def _event_source_mapping(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        mapping = str(resource_random.uuid4())
        function = inputs["functionName"]
        if not function.startswith("arn:"):
            function = f"arn:aws:lambda:{self._region}:{self._account}:function:{function}"
        self._check_poller_permissions(function, inputs["eventSourceArn"])
        return mapping, {"uuid": mapping, "functionArn": function, "state": "Enabled"}

    def _check_poller_permissions(self, function_arn: str, queue_arn: str) -> None:
        """Lambda polls a queue with the function's role and checks, when the mapping is created, that it may."""
        if ":sqs:" not in queue_arn:
            return
        role_arn = self._deployment.function_by_reference(function_arn).inputs["role"]
        role = role_arn.rsplit("/", 1)[-1]
        policies = roles.role_policies(self._account, role)
        principal = Principal(account=self._account, role_arn=role_arn)
        queue_policy = enforcement.resource_policy_of("sqs", self._account, self._region, queue_arn)
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            if not decide(principal, Request(action, (queue_arn,)), policies, queue_policy).allowed:
                raise ValueError(
                    "InvalidParameterValueException: The provided execution role does not have permissions to call "
                    f"{action.split(':')[1]} on SQS ({role_arn}, {queue_arn})"
                )

    def _http_api(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        api_id = _short_id()
        return api_id, {
            "name": autoname(name, inputs),
            "apiEndpoint": self._api_endpoint,
            "arn": f"arn:aws:apigateway:{self._region}::/apis/{api_id}",
            "executionArn": f"arn:aws:execute-api:{self._region}:{self._account}:{api_id}",
        }

    def _http_stage(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        stage = inputs.get("name") or "$default"
        suffix = "" if stage == "$default" else stage
        return stage, {
            "name": stage,
            "invokeUrl": f"{self._api_endpoint}/{suffix}",
            "arn": f"arn:aws:apigateway:{self._region}::/apis/{inputs['apiId']}/stages/{stage}",
            "executionArn": f"arn:aws:execute-api:{self._region}:{self._account}:{inputs['apiId']}/{stage}",
        }

    def _http_child(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        return _short_id(7), {}

    def _mediaconvert_queue(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        """A queue of the local MediaConvert stand-in, which the local cloud registers from the deployment."""
        queue = autoname(name, inputs)
        return queue, {
            "name": queue,
            "arn": f"arn:aws:mediaconvert:{self._region}:{self._account}:queues/{queue}",
            "status": inputs.get("status") or "ACTIVE",
            "pricingPlan": inputs.get("pricingPlan") or "ON_DEMAND",
        }

    def _docker_image(self, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        """An image assembled from its Dockerfile when a function runs it; its digest is that of its content."""
        context = self._project_dir / inputs["context"]["location"]
        dockerfile = self._project_dir / inputs["dockerfile"]["location"]
        digest = image_digest(context, dockerfile)
        tags = inputs.get("tags") or [f"{name}:latest"]
        return digest, {"digest": digest, "ref": f"{tags[0]}@{digest}", "contextHash": digest.removeprefix("sha256:")}

    # --- Recorded only --------------------------------------------------------------------------------------

    def _recorded(self, token: str, name: str, inputs: dict[str, Any]) -> tuple[str, Outputs]:
        physical = str(inputs.get("name") or f"{name}-{random_hex()}")
        module = token.split(":")[1].split("/", maxsplit=1)[0] if token.count(":") >= 2 else "local"
        kind = token.rsplit(":", 1)[-1]
        kind = kind[:1].lower() + kind[1:]
        outputs: Outputs = {"name": physical}
        if token.startswith("aws:iam/"):
            outputs["arn"] = f"arn:aws:iam::{self._account}:{kind}/{physical}"
            outputs["uniqueId"] = f"AROA{random_hex(16).upper()}"
        elif token == ResourceType.CLOUDWATCH_LOG_GROUP:
            outputs["arn"] = f"arn:aws:logs:{self._region}:{self._account}:log-group:{physical}"
        elif token == ResourceType.ECR_REPOSITORY:
            outputs["arn"] = f"arn:aws:ecr:{self._region}:{self._account}:repository/{physical}"
            outputs["repositoryUrl"] = f"{self._account}.dkr.ecr.{self._region}.amazonaws.com/{physical}"
            outputs["registryId"] = self._account
        elif token.startswith("aws:"):
            outputs["arn"] = f"arn:aws:{module}:{self._region}:{self._account}:{kind}/{physical}"
        return physical, outputs


def _short_id(length: int = 10) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(resource_random.choice(alphabet) for _ in range(length))
