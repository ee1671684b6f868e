"""Validates a running Saphan's /openapi.json with an independent validator
(PyPI openapi-spec-validator), and checks that it is OpenAPI 3.1.

Usage: BASE_URL=http://127.0.0.1:8080 python3 tests/openapi/validate.py
"""

import json
import os
import sys
import urllib.request

from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError


def main() -> int:
    base = os.environ.get("BASE_URL")
    if not base:
        print("set BASE_URL to a running Saphan", file=sys.stderr)
        return 2
    with urllib.request.urlopen(base + "/openapi.json", timeout=30) as response:
        content_type = response.headers.get("Content-Type", "")
        spec = json.load(response)
    failures = []
    if not content_type.startswith("application/json"):
        failures.append(f"Content-Type is {content_type!r}, expected application/json")
    if not str(spec.get("openapi", "")).startswith("3.1"):
        failures.append(f"openapi is {spec.get('openapi')!r}, expected 3.1.x")
    try:
        validate(spec)  # picks the 3.1 validator from the document's version
    except OpenAPIValidationError as error:
        failures.append(f"openapi-spec-validator: {error}")
    for failure in failures:
        print(f"FAIL {failure}")
    paths = len(spec.get("paths", {}))
    print(f"openapi: {0 if failures else 1} passed, {1 if failures else 0} failed ({paths} paths checked)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
