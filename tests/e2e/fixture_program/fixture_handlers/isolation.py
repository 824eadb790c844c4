"""A handler that needs a package only the development virtualenv has: in Lambda, and locally, its import fails."""

import yaml


def handler(event: dict, context: object) -> dict:
    return {"statusCode": 200, "body": yaml.safe_dump(event)}
