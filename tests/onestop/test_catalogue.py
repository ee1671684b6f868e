"""The one-stop catalogue from outside: the GovStack Registration building block's `/services`,
`/services/{id}`, `/services/{id}/eForms` and `/eForms/{id}` under `/registration`, each answer
validated against the specification with openapi-core; each e-form's schema checked as a JSON
Schema draft 2020-12 by the `jsonschema` package (no Saphan code); the portal's catalogue and
manual pages; and publishing, versioning and withdrawing a procedure through the editing API.

Needs a running demo platform: BASE_URL and SAPHAN_DATA_DIR (its data directory, for the
operator's admin token). `cargo xtask test` runs it on SQLite and on PostgreSQL.
"""

import copy
import json
import os
import secrets
import uuid
from pathlib import Path

import jsonschema
import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

HERE = Path(__file__).resolve().parent
SPEC = HERE / "govstack/bb-registration/api/GovStack_Registration_BB_API.json"
BASE_URL = os.environ.get("BASE_URL", "").rstrip("/")
DATA_DIR = os.environ.get("SAPHAN_DATA_DIR", "")
DEMO_CODES = {
    "food-business-permit",
    "signboard-permit",
    "open-a-restaurant",
    "residence-certificate",
    "tm47-90-day-report",
}


@pytest.fixture(scope="session")
def base() -> str:
    if not BASE_URL or not DATA_DIR:
        pytest.exit("tests/onestop needs BASE_URL and SAPHAN_DATA_DIR (cargo xtask test sets them)", returncode=4)
    return BASE_URL


@pytest.fixture(scope="session")
def spec(base) -> OpenAPI:
    document = json.loads(SPEC.read_text())
    document["servers"] = [{"url": f"{base}/registration"}]
    return OpenAPI.from_dict(document)


@pytest.fixture(scope="session")
def admin(base) -> dict:
    token = (Path(DATA_DIR) / "admin-token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def checked(spec: OpenAPI, response: requests.Response) -> requests.Response:
    """Validates the request and the answer against the GovStack specification."""
    request = RequestsOpenAPIRequest(response.request)
    spec.validate_request(request)
    spec.validate_response(request, RequestsOpenAPIResponse(response))
    return response


def get(base: str, path: str, **kw) -> requests.Response:
    return requests.get(f"{base}{path}", timeout=10, **kw)


def services(base, spec, **params) -> list:
    r = checked(spec, get(base, "/registration/services", params=params))
    assert r.status_code == 200, r.text
    return r.json()


def body(service: dict) -> dict:
    return {p["code"]: p["value"] for p in service["serviceBody"]}


def test_services_list_the_demo_catalogue_in_thai_by_default_and_english_on_request(base, spec):
    listed = services(base, spec)
    codes = {body(s)["code"] for s in listed}
    assert DEMO_CODES <= codes, codes
    food = next(s for s in listed if body(s)["code"] == "food-business-permit")
    assert food["name"] == "การขออนุญาตจัดตั้งสถานที่จำหน่ายอาหาร"
    assert uuid.UUID(food["id"]) and food["type"] == "Public" and food["isExecutable"] is True
    assert body(food)["feeSatang"] == "200000" and body(food)["agency"] == "demo-city"
    assert 0 <= int(body(food)["readiness"]) <= 100
    english = checked(spec, get(base, "/registration/services", headers={"Accept-Language": "en"})).json()
    names = {body(s)["code"]: s["name"] for s in english}
    assert names["tm47-90-day-report"] == "90-day report of residence (TM.47)"
    bundle = next(s for s in listed if body(s)["code"] == "open-a-restaurant")
    assert body(bundle)["kind"] == "bundle"
    assert body(bundle)["procedures"] == "food-business-permit,signboard-permit"
    # The bundle takes the longest of its procedures and all their fees.
    assert body(bundle)["timeLimitDays"] == "30" and body(bundle)["feeSatang"] == "250000"


def test_services_are_searched_by_name_in_either_language(base, spec):
    assert {body(s)["code"] for s in services(base, spec, name="ร้านอาหาร")} >= {"open-a-restaurant", "food-business-permit"}
    assert {body(s)["code"] for s in services(base, spec, name="TM.47")} == {"tm47-90-day-report"}
    assert services(base, spec, name="no such words anywhere") == []


def test_one_service_by_id_or_404(base, spec):
    listed = services(base, spec)
    residence = next(s for s in listed if body(s)["code"] == "residence-certificate")
    r = checked(spec, get(base, f"/registration/services/{residence['id']}"))
    assert r.status_code == 200 and r.json()["id"] == residence["id"]
    missing = checked(spec, get(base, f"/registration/services/{uuid.uuid4()}"))
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")


def test_eforms_are_json_schemas_that_an_independent_validator_accepts(base, spec):
    listed = services(base, spec)
    for service in listed:
        r = checked(spec, get(base, f"/registration/services/{service['id']}/eForms"))
        assert r.status_code == 200, r.text
        forms = r.json()
        assert forms, body(service)["code"]
        assert sum(1 for f in forms if f["latest"]) >= 1
        for item in forms:
            form = checked(spec, get(base, f"/registration/eForms/{item['eFormId']}"))
            assert form.status_code == 200, form.text
            form = form.json()
            schema = form["schema"]
            jsonschema.Draft202012Validator.check_schema(schema)
            ui = form["uiSchema"]
            on_pages = [f for page in ui["pages"] for f in page["fields"]]
            assert sorted(on_pages) == sorted(schema["properties"]), item["name"]
            for field in on_pages:
                label = ui["fields"][field]["label"]
                assert label["th"] and label["en"]
    bundle = next(s for s in listed if body(s)["code"] == "open-a-restaurant")
    forms = get(base, f"/registration/services/{bundle['id']}/eForms").json()
    assert [f["name"] for f in forms] == ["food-business-permit", "signboard-permit"]
    assert checked(spec, get(base, f"/registration/eForms/{uuid.uuid4()}")).status_code == 404


def test_the_food_shop_form_means_what_the_manual_says(base, spec):
    """Answers the manual allows pass the published schema and others fail it, judged by the
    independent validator (with format checks)."""
    food = next(s for s in services(base, spec) if body(s)["code"] == "food-business-permit")
    latest = next(f for f in get(base, f"/registration/services/{food['id']}/eForms").json() if f["latest"])
    schema = get(base, f"/registration/eForms/{latest['eFormId']}").json()["schema"]
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    good = {
        "firstName": "สมชาย", "lastName": "ใจดี", "houseNo": "1", "subdistrict": "บางรัก",
        "district": "บางรัก", "province": "กรุงเทพมหานคร", "postcode": "10500",
        "companyId": "0105561012345", "companyName": "บริษัท สาธิต จำกัด", "shopName": "ครัวสาธิต",
        "premisesAddress": "99 ถนนสาธิต", "areaSqm": 250, "floorPlan": str(uuid.uuid4()),
        "phone": "0812345678", "email": "owner@example.com",
    }
    assert list(validator.iter_errors(good)) == []
    for change in ({"areaSqm": 150}, {"phone": "12"}, {"email": "not-an-address"}, {"isAdmin": True}):
        assert list(validator.iter_errors({**good, **change})), change
    incomplete = dict(good)
    del incomplete["shopName"]
    assert list(validator.iter_errors(incomplete))


def test_portal_pages_show_the_catalogue_and_the_manual_without_javascript(base):
    page = get(base, "/services")
    assert page.status_code == 200 and 'lang="th"' in page.text
    assert "เปิดร้านอาหาร" in page.text and "<script" not in page.text
    found = get(base, "/services", params={"q": "passport", "lang": "en"})
    assert 'lang="en"' in found.text
    manual = get(base, "/services/food-business-permit", params={"lang": "en"})
    assert manual.status_code == 200
    for said in ("Public Health Act B.E. 2535, section 48", "2,000 baht", "From the registry of",
                 "Upload a file (no government registry holds it)", "Open a restaurant"):
        assert said in manual.text, said
    bundle = get(base, "/services/open-a-restaurant", params={"lang": "th"})
    assert "การขออนุญาตติดตั้งป้าย" in bundle.text
    assert get(base, "/services/no-such-procedure").status_code == 404


def test_editors_publish_versions_and_withdraw_and_others_cannot(base, spec, admin):
    residence = next(s for s in services(base, spec) if body(s)["code"] == "residence-certificate")
    latest = next(f for f in get(base, f"/registration/services/{residence['id']}/eForms").json() if f["latest"])
    versions = get(base, "/api/v1/procedures/residence-certificate/versions").json()
    document = copy.deepcopy(versions[0]["document"])
    code = f"test-residence-{secrets.token_hex(3)}"
    document["code"] = code
    url = f"{base}/api/v1/procedures/{code}"

    anonymous = requests.put(url, json=document, timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    wrong = requests.put(url, json={**document, "code": "other-code"}, headers=admin, timeout=10)
    assert wrong.status_code == 400 and "code" in wrong.json()["detail"]
    broken = copy.deepcopy(document)
    broken["time_limit_days"] = 1
    refused = requests.put(url, json=broken, headers=admin, timeout=10)
    assert refused.status_code == 400 and refused.json()["detail"].startswith("time_limit_days"), refused.text
    not_json = requests.put(url, data="kind=procedure", headers={**admin, "Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert not_json.status_code == 415

    first = requests.put(url, json=document, headers=admin, timeout=10)
    assert first.status_code == 201, first.text
    first = first.json()
    assert first["version"] == 1
    same = requests.put(url, json=document, headers=admin, timeout=10)
    assert same.status_code == 200 and same.json()["eform_id"] == first["eform_id"]
    document["time_limit_days"] = 5
    second = requests.put(url, json=document, headers=admin, timeout=10)
    assert second.status_code == 201 and second.json()["version"] == 2
    forms = checked(spec, get(base, f"/registration/services/{first['id']}/eForms")).json()
    assert [(f["version"], f["latest"]) for f in forms] == [("2", True), ("1", False)]
    # The old version's form stays readable: applications made under it keep it.
    old = checked(spec, get(base, f"/registration/eForms/{first['eform_id']}"))
    assert old.status_code == 200 and old.json()["latest"] is False

    gone = requests.delete(url, headers=admin, timeout=10)
    assert gone.status_code == 204
    assert get(base, f"/registration/services/{first['id']}").status_code == 404
    assert requests.delete(url, headers=admin, timeout=10).status_code == 404
    # The demo's own forms were not touched.
    assert get(base, f"/registration/eForms/{latest['eFormId']}").json()["latest"] is True
