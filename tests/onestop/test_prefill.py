"""Prefill without copies, through the public API alone: the business representative applies
for the "open a restaurant" bundle for the company they act for, consenting to the registry
reads the service states; the portal reads the civil, house and business registries through the
exchange, so the applicant types only what no registry holds and uploads only the floor plan.
An official of each agency sees the values marked verified with their exchange message ids;
one asks for a missing item, the applicant supplies it, and both agencies approve. The exchange's
message log, as the applicant's "who accessed my data" shows it, holds the reads, each naming
the consent.

Also: a foreigner files the 90-day report (TM.47) inside its window, prefilled from the
immigration registry, and the timeline names the next due date.
"""

import os

import pytest
import requests

from people import Person, login_labelled

BASE_URL = os.environ.get("BASE_URL", "").rstrip("/")
DATA_DIR = os.environ.get("SAPHAN_DATA_DIR", "")

# The smallest well-formed PDF worth the name: what a floor plan upload starts with.
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@pytest.fixture(scope="module", autouse=True)
def needs_a_platform():
    if not BASE_URL or not DATA_DIR:
        pytest.exit("tests/onestop needs BASE_URL and SAPHAN_DATA_DIR", returncode=4)


def service_id(code: str) -> str:
    services = requests.get(f"{BASE_URL}/registration/services", timeout=10).json()
    return next(s["id"] for s in services
                if {p["code"]: p["value"] for p in s["serviceBody"]}["code"] == code)


def my_company(person: Person) -> str:
    relations = person.req("GET", "/api/v1/me/act-for").json()
    return relations[0]["juristic_id"]


def test_the_restaurant_bundle_is_prefilled_from_three_registries_with_consent():
    owner = Person(BASE_URL, login_labelled(DATA_DIR, "business representative"))
    service = service_id("open-a-restaurant")

    reads = requests.get(f"{BASE_URL}/registration/services/{service}/registryReads?lang=en", timeout=10).json()
    assert {r["key"] for r in reads} == {"person", "house", "company"}
    house = next(r for r in reads if r["key"] == "house")
    assert house["provider"] == "the Department of Provincial Administration"
    assert house["recipient"].endswith("GOV/DGA/PORTAL")

    # A business service needs the company, and one the applicant acts for.
    url = f"/registration/services/{service}/applications"
    anyone = owner.req("POST", url, json={"formData": {"data": {}}, "consentToRegistryReads": True})
    assert anyone.status_code == 400, anyone.text
    stranger = owner.req("POST", url, json={"formData": {"data": {}}, "onBehalfOf": "0105550123451",
                                            "consentToRegistryReads": True})
    assert stranger.status_code == 403, stranger.text

    # Uploads are judged by their content.
    fake = owner.req("POST", "/registration/documents",
                     files={"file": ("plan.pdf", b"<html><script>alert(1)</script>", "application/pdf")})
    assert fake.status_code == 400, fake.text
    up = owner.req("POST", "/registration/documents", files={"file": ("plan.pdf", PDF, "application/pdf")})
    assert up.status_code == 200, up.text
    plan = up.json()["documentId"]
    assert up.json()["type"] == "application/pdf"
    assert owner.req("GET", f"/registration/documents/{plan}").content == PDF

    typed = {"shopName": "ครัวสะพาน", "premisesAddress": "99 ถนนสาธิต แขวงบางรัก", "areaSqm": 250,
             "seats": 60, "floorPlan": plan, "signText": "ครัวสะพาน", "widthM": 3, "heightM": 1,
             "mounting": "wall", "phone": "0812345678"}
    # Without the reads, the registry's fields are missing: the applicant is told, and nothing kept.
    unread = owner.req("POST", url, json={"formData": {"data": typed}, "onBehalfOf": my_company(owner)})
    assert unread.status_code == 400, unread.text

    r = owner.req("POST", url, json={"formData": {"data": typed}, "onBehalfOf": my_company(owner),
                                     "consentToRegistryReads": True})
    assert r.status_code == 200, r.text
    file_id = r.json()["fileId"]
    timeline = owner.req("GET", f"/registration/applications/{file_id}/timeline?lang=en").json()
    read_lines = [e["text"] for e in timeline if e["kind"] == "registry-read"]
    assert len(read_lines) == 3, timeline
    assert any("The Department of Business Development" in t for t in read_lines)

    # The consents the reads used are the applicant's, listed and revocable in "my consents".
    consents = owner.req("GET", "/api/v1/me/consents").json()
    portal = [c for c in consents if c["consumer"].endswith("GOV/DGA/PORTAL") and c["revoked_at"] is None]
    assert len(portal) >= 3

    # Each agency's official sees its procedure's values as verified, with the message id.
    city = Person(BASE_URL, login_labelled(DATA_DIR, "official: Demo City reviewer and approver"))
    dpt = Person(BASE_URL, login_labelled(DATA_DIR, "official: DPT reviewer and approver"))
    tasks = {}
    for official in (city, dpt):
        task = next(t for t in official.req("GET", "/registration/tasks").json() if t["fileId"] == file_id)
        detail = official.req("GET", f"/registration/tasks/{task['taskId']}").json()
        verified = detail["data"]["verified"]
        assert verified["companyName"]["source"].endswith("GOV/DBD/REGISTRY/juristic-v1")
        assert verified["firstName"]["message_id"]
        assert "firstName" not in detail["data"]["answers"], "the applicant typed no registry value"
        tasks[official] = task
    city_detail = city.req("GET", f"/registration/tasks/{tasks[city]['taskId']}").json()
    assert city_detail["data"]["verified"]["postcode"]["source"].endswith("GOV/DOPA/CIVREG/house-v1")
    # The city's reviewer opens the floor plan; the DPT (whose procedure has none) cannot.
    got = city.req("GET", f"/registration/tasks/{tasks[city]['taskId']}/documents/{plan}")
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert dpt.req("GET", f"/registration/tasks/{tasks[dpt]['taskId']}/documents/{plan}").status_code == 404

    # The applicant cannot overwrite a verified value.
    sent = city.req("POST", f"/registration/tasks/{tasks[city]['taskId']}/complete",
                    json={"data": {"decision": {"decision": "request-missing", "items": ["จำนวนที่นั่งตามแบบแปลน"]}}})
    assert sent.status_code == 200, sent.text
    overwrite = owner.req("PUT", f"/registration/applications/{file_id}",
                          json={"formData": {"data": {"companyName": "บริษัทอื่น"}}})
    assert overwrite.status_code == 400, overwrite.text
    fixed = owner.req("PUT", f"/registration/applications/{file_id}", json={"formData": {"data": {"seats": 48}}})
    assert fixed.status_code == 200, fixed.text

    def decide(official, stage_role=None):
        for task in official.req("GET", "/registration/tasks").json():
            if task["fileId"] == file_id:
                r = official.req("POST", f"/registration/tasks/{task['taskId']}/complete",
                                 json={"data": {"decision": {"decision": "approve"}}})
                assert r.status_code == 200, r.text
                return True
        return False

    # Each agency's stages: review, then approval, until the bundle is decided.
    for _ in range(6):
        if not (decide(city) | decide(dpt)):
            break
    final = owner.req("GET", f"/registration/applications/{file_id}").json()
    assert final["status"]["code"] == "APPROVED", final

    # The exchange's message log holds the three reads, each with the applicant's consent: the
    # applicant's own "who accessed my data" (the transparency API over the log) shows them.
    ids = {v["message_id"] for v in verified.values()} | {v["message_id"] for v in city_detail["data"]["verified"].values()}
    access = owner.req("GET", "/api/v1/me/data-access?limit=100").json()
    entries = access["entries"] if isinstance(access, dict) else access
    reads_logged = [e for e in entries if e["x_road_id"] in ids]
    assert len(reads_logged) == 3, entries[:5]
    portal_consents = {c["id"] for c in portal}
    assert all(e["released"] and e["consent"] in portal_consents for e in reads_logged)
    assert all(e["consumer"].endswith("GOV/DGA/PORTAL") and e["purpose"] == "one-stop-application" for e in reads_logged)


def test_a_foreigner_files_the_90_day_report_inside_its_window():
    foreigner = Person(BASE_URL, login_labelled(DATA_DIR, "foreigner (passport, password + TOTP)"))
    service = service_id("tm47-90-day-report")
    url = f"/registration/services/{service}/applications"
    typed = {"travelMode": "air", "vehicleNumber": "TG917", "phone": "0812345678"}
    r = foreigner.req("POST", url, json={"formData": {"data": typed}, "consentToRegistryReads": True})
    assert r.status_code == 200, r.text
    file_id = r.json()["fileId"]
    timeline = foreigner.req("GET", f"/registration/applications/{file_id}/timeline?lang=en").json()
    assert any(e["kind"] == "next-due" and "next filing is due" in e["text"] for e in timeline), timeline
    assert any("The Immigration Bureau" in e["text"] for e in timeline if e["kind"] == "registry-read")


def test_a_90_day_report_outside_its_window_is_refused_with_the_rule():
    early = Person(BASE_URL, login_labelled(DATA_DIR, "foreigner, 90-day report not yet due (passport, password + TOTP)"))
    service = service_id("tm47-90-day-report")
    before = early.req("GET", "/registration/applications").json()
    r = early.req("POST", f"/registration/services/{service}/applications?lang=en",
                  json={"formData": {"data": {"travelMode": "air", "vehicleNumber": "JL707", "phone": "0812345678"}},
                        "consentToRegistryReads": True})
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"].endswith("application-filing-window")
    assert "filings are accepted from" in problem["detail"]
    assert "Immigration Act B.E. 2522 s.37(5)" in problem["detail"]
    assert len(early.req("GET", "/registration/applications").json()) == len(before), "nothing is kept"


def test_a_typed_date_never_opens_the_filing_window():
    """Without the registry's verified dates, a report cannot be filed online: what the applicant
    types cannot move the window."""
    early = Person(BASE_URL, login_labelled(DATA_DIR, "foreigner, 90-day report not yet due (passport, password + TOTP)"))
    typed = {"firstName": "Hanako", "lastName": "Sato", "nationality": "JPN", "passportNumber": "TZ1234567",
             "arrivalDate": "2026-01-01", "lastReport": "2020-01-01", "travelMode": "air",
             "vehicleNumber": "JL707", "houseNo": "1", "subdistrict": "ลุมพินี", "province": "กรุงเทพมหานคร",
             "postcode": "10330", "phone": "0812345678"}
    r = early.req("POST", f"/registration/services/{service_id('tm47-90-day-report')}/applications?lang=en",
                  json={"formData": {"data": typed}})
    assert r.status_code == 409, r.text
    assert "is not known" in r.json()["detail"]


def test_uploads_up_to_the_procedure_limit_pass_the_platform_body_limit():
    owner = Person(BASE_URL, login_labelled(DATA_DIR, "business representative"))
    big = b"%PDF-1.4\n" + b"0" * (3 * 1024 * 1024) + b"\n%%EOF\n"
    r = owner.req("POST", "/registration/documents", files={"file": ("plan.pdf", big, "application/pdf")})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["size"] == len(big)
