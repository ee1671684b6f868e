"""GovStack Registration's statistics API (`/data/statistics`): public counts of decisions per
service and period, validated against the specification's own OpenAPI document by openapi-core.
Runs after the application tests (pytest orders files by name), so decisions exist."""

import json
import os
from pathlib import Path

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

HERE = Path(__file__).resolve().parent
SPEC = HERE / "govstack/bb-registration/api/GovStack_Registration_BB_API_statistics.json"
BASE_URL = os.environ.get("BASE_URL", "").rstrip("/")


@pytest.fixture(scope="module")
def spec() -> OpenAPI:
    if not BASE_URL:
        pytest.exit("tests/onestop needs BASE_URL", returncode=4)
    document = json.loads(SPEC.read_text())
    document["servers"] = [{"url": f"{BASE_URL}/registration"}]
    return OpenAPI.from_dict(document)


def get(spec, **params):
    r = requests.get(f"{BASE_URL}/registration/data/statistics", params=params,
                     headers={"Information-Mediator-Client": "TH/GOV/DGA/PORTAL"}, timeout=10)
    if r.status_code == 200:
        request = RequestsOpenAPIRequest(r.request)
        spec.validate_request(request)
        spec.validate_response(request, RequestsOpenAPIResponse(r))
    return r


def test_decisions_are_counted_by_service_and_period(spec):
    everything = get(spec).json()
    assert len(everything) == 1
    total = everything[0]
    assert total["processed"] >= 1 and total["processed"] == total["approved"] + total["rejected"]
    assert total["sentBack"] >= 1

    residence = get(spec, registrationName="residence-certificate", timeframe="day").json()
    assert all(row["references"]["timeframeDay"] and row["references"]["registrationName"] == "residence-certificate"
               for row in residence)
    assert sum(row["approved"] for row in residence) >= 1
    assert sum(row["processed"] for row in residence) <= total["processed"]

    approvers = get(spec, role="approver", timeframe="month").json()
    assert sum(row["approved"] for row in approvers) >= 1

    nothing = get(spec, startDate="2001-01-01", endDate="2001-12-31").json()
    assert nothing[0]["processed"] == 0 and nothing[0]["references"]["startDate"] == "2001-01-01"


@pytest.mark.parametrize("params", [
    {"startDate": "yesterday"}, {"timeframe": "decade"}, {"role": "janitor"},
    {"startDate": "2026-02-01", "endDate": "2026-01-01"},
    # Counts by a named official are not published.
    {"operator": "Ingmar Vali"},
])
def test_what_does_not_read_is_refused(spec, params):
    r = get(spec, **params)
    assert r.status_code == 400, r.text
    assert r.headers["Content-Type"].startswith("application/problem+json")
