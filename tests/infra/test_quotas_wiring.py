"""Per-user quotas in the program: the usage table, the api's exact grants on it, the limits, per-route throttling."""

from __future__ import annotations

from components.api import ROUTE_THROTTLING
from tests.infra.harness import ProgramRun, run_program

FUNCTION = "aws:lambda/function:Function"
TABLE = "aws:dynamodb/table:Table"


def _grants(run: ProgramRun, function_name: str) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for statement in run.function_policy(run.named(FUNCTION, function_name))["Statement"][2:]:
        for action in statement["Action"]:
            granted.setdefault(action, set()).update(statement["Resource"])
    return granted


def test_usage_records_are_keyed_by_owner_encrypted_and_expire(dev: ProgramRun) -> None:
    table = dev.named(TABLE, "api-usage")
    assert table.inputs["hashKey"] == "ownerId" and "rangeKey" not in table.inputs
    assert table.inputs["attributes"] == [{"name": "ownerId", "type": "S"}]
    assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    assert table.inputs["ttl"] == {"attributeName": "expiresAt", "enabled": True}
    assert table.inputs["serverSideEncryption"] == {"enabled": True}


def test_only_the_api_may_read_and_put_usage_records_and_nothing_more(dev: ProgramRun) -> None:
    usage = dev.named(TABLE, "api-usage").outputs["arn"]
    jobs = dev.named(TABLE, "jobs-table").outputs["arn"]
    granted = _grants(dev, "api-function")
    on_usage = {action for action, resources in granted.items() if usage in resources}
    assert on_usage == {"dynamodb:GetItem", "dynamodb:PutItem"}  # the transaction's Put, authorized item by item
    assert jobs in granted["dynamodb:PutItem"]  # the job, in the same transaction
    others = [f.name for f in dev.of_type(FUNCTION) if f.name != "api-function"]
    for function in others:
        assert not any(usage in resources for resources in _grants(dev, function).values()), function


def test_the_api_gets_the_usage_table_and_the_limits_from_config(dev: ProgramRun) -> None:
    env = dev.named(FUNCTION, "api-function").inputs["environment"]["variables"]
    assert env["USAGE_TABLE_NAME"] == dev.named(TABLE, "api-usage").outputs["name"]
    assert (env["MAX_OPEN_UPLOADS_PER_USER"], env["MAX_JOBS_PER_USER_PER_HOUR"]) == ("20", "100")
    assert env["MAX_STORED_BYTES_PER_USER"] == str(50 * 1024**3)
    custom = run_program({"maxOpenUploadsPerUser": 3, "maxJobsPerUserPerHour": 0, "maxStoredBytesPerUser": 1000})
    env = custom.named(FUNCTION, "api-function").inputs["environment"]["variables"]
    assert (env["MAX_OPEN_UPLOADS_PER_USER"], env["MAX_JOBS_PER_USER_PER_HOUR"]) == ("3", "0")
    assert env["MAX_STORED_BYTES_PER_USER"] == "1000"


def test_routes_that_create_things_are_throttled_below_the_stage(dev: ProgramRun) -> None:
    (stage,) = dev.of_type("aws:apigatewayv2/stage:Stage")
    settings = {s["routeKey"]: s for s in stage.inputs["routeSettings"]}
    assert set(settings) == {
        "POST /uploads",
        "POST /jobs/{jobId}/retry",
        "POST /jobs/{jobId}/reprocess",
        "POST /webhooks",
        "POST /webhooks/{webhookId}/rotate-secret",
    }
    assert set(settings) == set(ROUTE_THROTTLING)
    assert (settings["POST /uploads"]["throttlingBurstLimit"], settings["POST /uploads"]["throttlingRateLimit"]) == (
        50,
        25,
    )
    assert (settings["POST /webhooks"]["throttlingBurstLimit"], settings["POST /webhooks"]["throttlingRateLimit"]) == (
        10,
        5,
    )
    default = stage.inputs["defaultRouteSettings"]
    routes = {r.inputs["routeKey"] for r in dev.of_type("aws:apigatewayv2/route:Route")}
    for key, route in settings.items():
        assert key in routes  # a setting for an undeclared route key fails the deployment
        assert route["throttlingBurstLimit"] < default["throttlingBurstLimit"]
        assert route["throttlingRateLimit"] < default["throttlingRateLimit"]


def test_route_throttling_never_exceeds_a_lower_stage_limit() -> None:
    run = run_program({"apiThrottlingBurstLimit": 8, "apiThrottlingRateLimit": 4})
    (stage,) = run.of_type("aws:apigatewayv2/stage:Stage")
    for route in stage.inputs["routeSettings"]:
        assert route["throttlingBurstLimit"] <= 8 and route["throttlingRateLimit"] <= 4
