"""The registry engine behind the exchange: the GovStack Digital Registries Data API (every
operation, camelCase and kebab-case paths), the Database API of DOPA's civil-registration
subsystem, field-level minimisation by a names-only right, the demo's person registry and its
data-usage history, and the backend's refusal of calls that bypass the exchange.

Each answer whose status the GovStack specification documents for the operation is validated,
request and response, against that specification with openapi-core (see `Registry.check`). The
specification is a data copy in `govstack/` beside this file (or wherever
GOVSTACK_REGISTRIES_API_DIR points).

Everything goes through the gateway with an OAuth token (the spec's `apiKey` security is the
`Authorization` header), and names the caller in `Information-Mediator-Client`, as the spec
requires, instead of `X-Road-Client`.
"""

import copy
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import pytest
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.templating.responses.exceptions import ResponseNotFound

from helpers import Client, expect, expect_ok, expect_xroad_error, path_of, show

HERE = Path(__file__).resolve().parent
SPEC_DIR = Path(
    os.environ.get(
        "GOVSTACK_REGISTRIES_API_DIR",
        HERE / "govstack/bb-digital-registries/api",
    )
)
DATA_SPEC_YAML = "GovStack_Digital_registries_BB_Data_API_template-1.3.0.yaml"
DATA_SPEC_JSON = "GovStack_Digital_registries_BB_Data_API_template-1.3.0.json"
DATABASE_SPEC = "GovStack_Digital_registries_BB_Database_API_template-1.3.0.yaml"

CIVREG = "TH/GOV/DOPA/CIVREG"
DATABASES = f"{CIVREG}/databases"
PERSON = f"{CIVREG}/person-v1"
DENIED = "Server.ServerProxy.AccessDenied"
NAMES = ["firstName", "lastName"]
IM_CLIENT = "Information-Mediator-Client"

# ---- the specification ---------------------------------------------------------------------


def load_spec(name: str) -> dict:
    path = SPEC_DIR / name
    if not path.exists():
        pytest.fail(
            f"the GovStack Digital Registries API specification is not at {path}: "
            "set GOVSTACK_REGISTRIES_API_DIR to the folder that holds it"
        )
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def nullable_as_meant(node):
    """The Data API spec marks `list`'s `next` and `previous` `x-nullable: true`, Swagger 2's
    spelling, which OpenAPI 3.0 ignores: as written they must be strings (or absent). Most
    checks read them as the authors meant (`nullable: true`); `test_list_links_match_the_spec_
    as_written` holds the server to the text itself."""
    if isinstance(node, dict):
        if node.get("x-nullable") is True:
            node["nullable"] = True
        for value in node.values():
            nullable_as_meant(value)
    elif isinstance(node, list):
        for value in node:
            nullable_as_meant(value)
    return node


def with_server(spec: dict, url: str, check_document: bool = True) -> OpenAPI:
    """The spec with its `servers` set to a service's address on the exchange, so that its paths
    match the calls. openapi-core validates the document itself unless `check_document` is
    false."""
    doc = copy.deepcopy(spec)
    doc["servers"] = [{"url": url}]
    config = None if check_document else Config(spec_validator_cls=None)
    return OpenAPI.from_dict(doc, config=config)


def explain(error: BaseException) -> str:
    """An openapi-core error with its causes and schema errors, one per line."""
    lines = []
    while error is not None:
        lines.append(f"{type(error).__name__}: {error}")
        for e in getattr(error, "schema_errors", None) or ():
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            lines.append(f"    at {where}: {e.message}")
        error = error.__cause__
    return "\n  ".join(lines)


def undocumented(error: BaseException) -> bool:
    while error is not None:
        if isinstance(error, ResponseNotFound):
            return True
        error = error.__cause__
    return False


@pytest.fixture(scope="module")
def data_spec() -> dict:
    return nullable_as_meant(load_spec(DATA_SPEC_YAML))


@pytest.fixture(scope="module")
def data_spec_as_written() -> dict:
    return load_spec(DATA_SPEC_YAML)


@pytest.fixture(scope="module")
def data_spec_json() -> dict:
    """The JSON edition: it alone spells `/data/mypersonalDataUsage` so."""
    return nullable_as_meant(load_spec(DATA_SPEC_JSON))


@pytest.fixture(scope="module")
def database_spec() -> dict:
    """The Database API spec, its two broken references mended. As published, its `$ref`s name
    `#/components/schemas/DatabaseInfo` and `.../DatabasesSchema` while the components are
    spelt `databaseInfo` and `databasesSchema`: openapi-core refuses to load it
    (PointerToNowhere). Nothing else is changed."""
    text = json.dumps(load_spec(DATABASE_SPEC))
    for wrong, right in (("DatabaseInfo", "databaseInfo"), ("DatabasesSchema", "databasesSchema")):
        text = text.replace(f'"#/components/schemas/{wrong}"', f'"#/components/schemas/{right}"')
    return json.loads(text)


# ---- a consumer's view of one registry service ---------------------------------------------

# Saphan's kebab-case aliases, not in the spec, are checked against the camelCase operation they
# stand for.
ALIASES = {"/update-entries": "/updateEntries", "/update-or-create": "/updateOrCreate",
           "/read-value/": "/readValue/"}


class Registry:
    """One consumer's calls to one exchange service of the registry engine, over an OAuth token,
    each answer checked against the GovStack spec where the spec documents its status."""

    def __init__(self, client: Client, service: str, spec: dict, data: str = ""):
        self.client, self.service, self.spec, self.data = client, service, spec, data
        self.base = f"{client.cfg.base}/r1/{service}"
        self.api = with_server(spec, self.base)

    def call(self, method: str, path: str, status: int, *, spec: bool = True,
             valid_request: bool = True, headers: dict | None = None, **kw) -> requests.Response:
        """`path` is relative to the service. `spec=False` for paths the spec does not have
        (say why at the call); `valid_request=False` for requests made invalid on purpose."""
        h = {IM_CLIENT: self.client.id, **(headers or {})}
        r = self.client.call(method, self.service, path, via="token", client_header=False,
                             headers=h, **kw)
        expect_ok(r, status)
        if spec:
            self.check(r, valid_request)
        elif r.status_code >= 400:
            expect_problem(r, status)
        return r

    def check(self, r: requests.Response, valid_request: bool = True, api: OpenAPI | None = None):
        """Validates the request (unless made invalid on purpose) and, if the spec documents its
        status for this operation, the response. Refusals whose status the spec does not
        document must be the engine's problem objects."""
        api = api or self.api
        prepared = r.request.copy()
        for alias, name in ALIASES.items():
            prepared.url = prepared.url.replace(alias, name)
        request = RequestsOpenAPIRequest(prepared)
        if valid_request:
            try:
                api.validate_request(request)
            except Exception as e:  # noqa: BLE001 - any finding is reported
                raise AssertionError(f"the request does not match the spec:\n  {explain(e)}{show(r)}")
        try:
            api.validate_response(request, RequestsOpenAPIResponse(r))
        except Exception as e:  # noqa: BLE001
            if not undocumented(e):
                raise AssertionError(
                    f"SPEC MISMATCH: the {r.status_code} answer does not match the spec:\n  "
                    f"{explain(e)}{show(r)}"
                )
            if r.status_code >= 400:
                expect_problem(r, r.status_code)

    # The Data API, relative to /data/{name}/{version}.

    def op(self, method: str, rest: str, status: int, **kw) -> requests.Response:
        return self.call(method, f"{self.data}{rest}", status, **kw)

    def create(self, content: dict, status: int = 200, **kw) -> requests.Response:
        return self.op("POST", "/create", status, json={"write": {"content": content}}, **kw)

    def read(self, query: dict, status: int = 200, **kw) -> requests.Response:
        return self.op("POST", "/read", status, json={"query": {"content": query}}, **kw)

    def exists(self, query: dict, status: int = 200, **kw) -> requests.Response:
        return self.op("POST", "/exists", status, json={"query": {"content": query}}, **kw)

    def list(self, status: int = 200, **params) -> requests.Response:
        return self.op("GET", "", status, params=params)


def expect_problem(r: requests.Response, status: int) -> dict:
    """A refusal by the registry engine: JSON with status, title, title_th and detail."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}{show(r)}"
    assert "X-Road-Error" not in r.headers, f"a refusal by the exchange, not the registry{show(r)}"
    assert r.headers.get("Content-Type", "").startswith("application/json"), show(r)
    body = r.json()
    assert body.get("status") == status, f"body status {body.get('status')!r}{show(r)}"
    for key in ("title", "title_th", "detail"):
        assert isinstance(body.get(key), str) and body[key], f"no {key} in the problem{show(r)}"
    return body


def follow(reg: Registry, link: str) -> str:
    """A `next` link, as a path relative to the service."""
    assert link.startswith(("http://", "https://")), f"next should be an absolute URI: {link!r}"
    parts = urlsplit(link)
    prefix = f"/r1/{reg.service}"
    assert parts.path.startswith(prefix + reg.data), f"next leads elsewhere: {link!r}"
    return parts.path[len(prefix):] + (f"?{parts.query}" if parts.query else "")


def walk(reg: Registry, **params) -> tuple[list[dict], list[requests.Response]]:
    """Every page of a list, by its `next` links."""
    pages = [reg.list(**params)]
    while pages[-1].json().get("next"):
        assert len(pages) < 100, "more than 100 pages: the cursor does not advance"
        pages.append(reg.call("GET", follow(reg, pages[-1].json()["next"]), 200))
    return [rec for p in pages for rec in p.json()["results"]], pages


# ---- the test registry ---------------------------------------------------------------------


def definition(name: str, **extra_properties) -> dict:
    """A registry definition for `POST /database/modify`. It is also a valid body of the spec's
    `modify` (which wants `schema.creationDate`, `description` and `filename`: annotations that
    JSON Schema ignores; `groupName`, `catalogName` and `code` Saphan ignores)."""
    return {
        "name": name,
        "version": "1.0",
        "service_code": f"{name}-v1",
        "title_th": "ทะเบียนทดสอบ",
        "title_en": "Test registry",
        "description": "A registry made by the exchange test suite.",
        "schema": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id", "firstName", "lastName"],
            "description": "A test person",
            "creationDate": "2026-01-01",
            "filename": f"{name}.json",
            "properties": {
                "id": {"type": "string"},
                "firstName": {"type": "string", "minLength": 1},
                "lastName": {"type": "string", "minLength": 1},
                "birthDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                "district": {"type": "string"},
                **extra_properties,
            },
        },
        "id_field": "id",
        "personal": ["firstName", "lastName", "birthDate"],
        "indexed": ["lastName", "district"],
        "groupName": "Saphan tests",
        "catalogName": "Test registries",
        "code": name.upper(),
    }


@dataclass
class RegistryUnderTest:
    name: str
    service: str
    info: dict
    owner: Registry  # full right
    names: Registry  # right to firstName and lastName only


@pytest.fixture(scope="module")
def owner(world, admin) -> Client:
    """The session's consumer that defines registries: a right to DOPA's Database API."""
    client = world.new_client("RGO", certificate=True)
    admin.grant(DATABASES, client.id)
    return client


@pytest.fixture(scope="module")
def dbapi(owner, database_spec) -> Registry:
    return Registry(owner, DATABASES, database_spec)


@pytest.fixture(scope="module")
def reg(world, admin, owner, dbapi, data_spec) -> RegistryUnderTest:
    name = f"t{world.sfx.lower()}"
    info = dbapi.call("POST", "/database/modify", 200, json=definition(name)).json()
    service = f"{CIVREG}/{name}-v1"
    admin.grant(service, owner.id)
    reader = world.new_client("RGN")
    admin.grant(service, reader.id, fields=NAMES)
    data = f"/data/{name}/1.0"
    return RegistryUnderTest(
        name, service, info,
        Registry(owner, service, data_spec, data),
        Registry(reader, service, data_spec, data),
    )


def new_id(prefix: str = "p") -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


def person(**fields) -> dict:
    record = {"id": new_id(), "firstName": "Somchai", "lastName": "Jaidee",
              "birthDate": "1990-04-13", "district": "Bang Rak"}
    record.update(fields)
    return record


def unique(word: str) -> str:
    """A value no other test (or session) uses, for searches."""
    return f"{word}{secrets.token_hex(4)}"


# ---- create, read, exists ------------------------------------------------------------------


def test_create_answers_the_record(reg):
    """create: 200 with {content} = the stored record."""
    rec = person()
    r = reg.owner.create(rec)
    assert r.json() == {"content": rec}, show(r)


def test_create_without_id_gets_one(reg):
    """create: a record without its id field gets a new UUID."""
    rec = person()
    del rec["id"]
    content = reg.owner.create(rec).json()["content"]
    assert uuid.UUID(content["id"]), content
    assert {k: v for k, v in content.items() if k != "id"} == rec, content


def test_create_duplicate_is_409(reg):
    """create: a second record with the same id is refused with 409."""
    rec = person()
    reg.owner.create(rec)
    reg.owner.create(rec, status=409)


def test_create_invalid_is_400(reg):
    """create: a record that breaks the schema, or a body without write.content, is 400."""
    reg.owner.create(person(birthDate="13 April 1990"), status=400)
    reg.owner.create(person(shoeSize="42"), status=400)  # additionalProperties: false
    reg.owner.create({"id": new_id()}, status=400)  # firstName and lastName are required
    reg.owner.op("POST", "/create", 400, json={"content": person()}, valid_request=False)
    reg.owner.op("POST", "/create", 400, data="not json",
                 headers={"Content-Type": "application/json"}, valid_request=False)


def test_read_found_and_not_found(reg):
    """read: 200 {content} for a match; 404 {detail: "no record found"} otherwise."""
    rec = person()
    reg.owner.create(rec)
    assert reg.owner.read({"id": rec["id"]}).json() == {"content": rec}
    r = reg.owner.read({"id": new_id()}, status=404)
    assert r.json() == {"detail": "no record found"}, show(r)


def test_read_by_indexed_field_and_more(reg):
    """read: by an indexed field, every other field of the query must match too."""
    last = unique("Read")
    a, b = person(lastName=last, firstName="Anan"), person(lastName=last, firstName="Boon")
    reg.owner.create(a)
    reg.owner.create(b)
    assert reg.owner.read({"lastName": last, "firstName": "Boon"}).json()["content"] == b
    reg.owner.read({"lastName": last, "firstName": "Chai"}, status=404)


def test_read_needs_id_or_indexed_field(reg):
    """read: a query on unindexed fields only (or an empty one, or a non-field) is 400."""
    reg.owner.read({"birthDate": "1990-04-13"}, status=400)
    reg.owner.read({}, status=400)
    reg.owner.read({"nosuch": "x"}, status=400)


def test_exists_true_and_false(reg):
    """exists: {answer: {status, message}}, true for a match and false otherwise."""
    rec = person()
    reg.owner.create(rec)
    yes = reg.owner.exists({"id": rec["id"], "firstName": rec["firstName"]}).json()["answer"]
    no = reg.owner.exists({"id": rec["id"], "firstName": "Other"}).json()["answer"]
    assert yes["status"] is True and no["status"] is False, (yes, no)
    assert yes.get("message") and no.get("message"), (yes, no)


# ---- update, updateEntries, updateOrCreate, delete -----------------------------------------
# The spec documents `update` and `updateEntries` as "200" with no content: nothing about their
# bodies can be validated, so the tests check them by reading the record back.


def test_update_changes_one_record(reg):
    """update: write.content's fields replace the record's; the query finds the record."""
    rec = person()
    reg.owner.create(rec)
    r = reg.owner.op("PUT", "/update", 200, json={
        "query": {"content": {"id": rec["id"]}},
        "write": {"content": {"district": "Pathum Wan"}},
    })
    assert r.json().get("content") == {**rec, "district": "Pathum Wan"}, show(r)
    assert reg.owner.read({"id": rec["id"]}).json()["content"]["district"] == "Pathum Wan"


def test_update_by_id_in_write(reg):
    """update: without a query, the id in write.content names the record."""
    rec = person()
    reg.owner.create(rec)
    reg.owner.op("PUT", "/update", 200, json={"write": {"content": {"id": rec["id"], "firstName": "Mana"}}})
    assert reg.owner.read({"id": rec["id"]}).json()["content"]["firstName"] == "Mana"


def test_update_refusals(reg):
    """update: 404 when nothing matches; 400 for a write that breaks the schema or changes the
    id, or one that names no record."""
    rec = person()
    reg.owner.create(rec)
    q = {"query": {"content": {"id": rec["id"]}}}
    reg.owner.op("PUT", "/update", 404, json={"query": {"content": {"id": new_id()}},
                                              "write": {"content": {"district": "X"}}})
    reg.owner.op("PUT", "/update", 400, json={**q, "write": {"content": {"birthDate": "soon"}}})
    reg.owner.op("PUT", "/update", 400, json={**q, "write": {"content": {"id": new_id()}}})
    reg.owner.op("PUT", "/update", 400, json={"write": {"content": {"district": "X"}}})
    assert reg.owner.read({"id": rec["id"]}).json()["content"] == rec, "a refused update changed the record"


@pytest.mark.parametrize("path", ["/updateEntries", "/update-entries"])
def test_update_entries_changes_every_match(reg, path):
    """updateEntries (and update-entries): every record matching the query changes."""
    last = unique("Entries")
    recs = [person(lastName=last) for _ in range(3)]
    other = person(lastName=unique("Other"))
    for rec in recs + [other]:
        reg.owner.create(rec)
    r = reg.owner.op("PUT", path, 200, json={"query": {"content": {"lastName": last}},
                                             "write": {"content": {"district": "Sathon"}}})
    assert r.json().get("updated") == 3, show(r)
    for rec in recs:
        assert reg.owner.read({"id": rec["id"]}).json()["content"]["district"] == "Sathon"
    assert reg.owner.read({"id": other["id"]}).json()["content"]["district"] == other["district"]
    r = reg.owner.op("PUT", path, 200, json={"query": {"content": {"lastName": unique("None")}},
                                             "write": {"content": {"district": "Sathon"}}})
    assert r.json().get("updated") == 0, show(r)


@pytest.mark.parametrize("path", ["/updateOrCreate", "/update-or-create"])
def test_update_or_create(reg, path):
    """updateOrCreate (and update-or-create): creates when nothing matches, else updates."""
    rec = person()
    r = reg.owner.op("POST", path, 200, json={"query": {"content": {"id": rec["id"]}},
                                              "write": {"content": rec}})
    assert r.json()["content"] == rec and r.json().get("created") is True, show(r)
    r = reg.owner.op("POST", path, 200, json={"query": {"content": {"id": rec["id"]}},
                                              "write": {"content": {"district": "Bang Na"}}})
    assert r.json()["content"] == {**rec, "district": "Bang Na"}, show(r)
    assert r.json().get("created") is False, show(r)
    assert reg.owner.read({"id": rec["id"]}).json()["content"]["district"] == "Bang Na"


def test_delete_then_gone(reg):
    """delete: 204 with no body; then read is 404, exists false, a second delete 404."""
    rec = person()
    reg.owner.create(rec)
    r = reg.owner.op("DELETE", f"/{rec['id']}/delete", 204)
    assert r.content == b"", show(r)
    reg.owner.read({"id": rec["id"]}, status=404)
    assert reg.owner.exists({"id": rec["id"]}).json()["answer"]["status"] is False
    reg.owner.op("DELETE", f"/{rec['id']}/delete", 404)


# ---- readValue, history --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["readValue", "read-value"])
def test_read_value(reg, path):
    """readValue (and read-value): {value} of one field; 404 for no record, 400 for a field
    the registry does not have or an extension other than .json."""
    rec = person()
    reg.owner.create(rec)
    r = reg.owner.op("GET", f"/{rec['id']}/{path}/birthDate.json", 200)
    assert r.json() == {"value": rec["birthDate"]}, show(r)
    reg.owner.op("GET", f"/{new_id()}/{path}/birthDate.json", 404)
    reg.owner.op("GET", f"/{rec['id']}/{path}/shoeSize.json", 400)
    reg.owner.op("GET", f"/{rec['id']}/{path}/birthDate.xml", 400)


def test_history_says_who_when_why(reg):
    """history (Saphan's extension): each revision with its operation, time, actor (the
    consumer), reason (X-Road-Issue) and content; it outlives the record."""
    rec = person()
    reg.owner.create(rec)
    reason = "Correction requested by the registrar"
    reg.owner.op("PUT", "/update", 200, headers={"X-Road-Issue": reason},
                 json={"write": {"content": {"id": rec["id"], "district": "Yannawa"}}})
    reg.owner.op("DELETE", f"/{rec['id']}/delete", 204)
    # Not in the GovStack spec: checked here only.
    r = reg.owner.op("GET", f"/{rec['id']}/history", 200, spec=False)
    entries = r.json()
    assert [e["operation"] for e in entries] == ["create", "update", "delete"], show(r)
    assert [e["revision"] for e in entries] == [1, 2, 3], show(r)
    assert all(e["actor"] == reg.owner.client.id for e in entries), show(r)
    assert all(e.get("at") for e in entries), show(r)
    assert entries[1].get("reason") == reason, show(r)
    assert entries[0]["content"] == rec, show(r)
    assert entries[1]["content"] == {**rec, "district": "Yannawa"}, show(r)
    assert "content" not in entries[2], show(r)
    reg.owner.op("GET", f"/{new_id()}/history", 404, spec=False)


# ---- list ----------------------------------------------------------------------------------


def test_list_by_query_field(reg):
    """list: query.<field> returns exactly the records whose indexed field equals the value."""
    district = unique("D")
    recs = [person(district=district) for _ in range(3)]
    for rec in recs:
        reg.owner.create(rec)
    r = reg.owner.list(**{"query.district": district})
    body = r.json()
    assert body["count"] == 3, show(r)
    assert sorted(x["id"] for x in body["results"]) == sorted(x["id"] for x in recs), show(r)
    r = reg.owner.list(**{"query.district": district, "query.lastName": "Nobody"})
    assert r.json()["count"] == 0 and r.json()["results"] == [], show(r)


def test_list_search_and_filter(reg):
    """list: search finds records by a prefix of an indexed field; filter names the field."""
    word = unique("Srch")
    a = person(lastName=word + "Alpha")
    b = person(district=word + "Beta")
    reg.owner.create(a)
    reg.owner.create(b)
    found = {x["id"] for x in reg.owner.list(search=word, pageSize=50).json()["results"]}
    assert found == {a["id"], b["id"]}, found
    found = {x["id"] for x in reg.owner.list(search=word, filter="district").json()["results"]}
    assert found == {b["id"]}, found
    reg.owner.list(400, search=word, filter="birthDate")  # not indexed


def test_list_pages_by_cursor_once_each(reg):
    """list: following `next` from a pageSize page visits every match exactly once, in order,
    with the same count on every page; the last page has no next."""
    district = unique("Page")
    ids = sorted(new_id("c") for _ in range(23))
    for i in ids:
        reg.owner.create(person(id=i, district=district))
    records, pages = walk(reg.owner, **{"query.district": district, "pageSize": 5})
    seen = [x["id"] for x in records]
    assert seen == ids, f"cursor paging gave {seen}, expected {ids}"
    assert len(pages) == 5, [len(p.json()["results"]) for p in pages]
    assert all(p.json()["count"] == 23 for p in pages), [p.json()["count"] for p in pages]
    assert not pages[-1].json().get("next"), show(pages[-1])
    records, _ = walk(reg.owner, **{"query.district": district, "pageSize": 7, "ordering": "descending"})
    assert [x["id"] for x in records] == ids[::-1], "descending paging is not the reverse"


def test_list_page_number(reg):
    """list: page=N (1-based) is the N-th page of pageSize records."""
    district = unique("Num")
    ids = sorted(new_id("n") for _ in range(7))
    for i in ids:
        reg.owner.create(person(id=i, district=district))
    second = reg.owner.list(**{"query.district": district, "pageSize": 3, "page": 2}).json()
    assert [x["id"] for x in second["results"]] == ids[3:6], second
    third = reg.owner.list(**{"query.district": district, "pageSize": 3, "page": 3}).json()
    assert [x["id"] for x in third["results"]] == ids[6:], third


def test_list_refuses_bad_parameters(reg):
    """list: 400 for pageSize/page below 1, an unknown ordering or parameter, an unindexed
    query field and a cursor the registry did not give."""
    reg.owner.list(400, pageSize=0)
    reg.owner.list(400, page=0)
    reg.owner.list(400, ordering="sideways")
    reg.owner.list(400, colour="red")
    reg.owner.list(400, **{"query.birthDate": "1990-04-13"})
    reg.owner.list(400, cursor="!!not-a-cursor!!")


def test_list_links_match_the_spec_as_written(reg, data_spec_as_written):
    """list: `next` and `previous` are `type: string, format: uri` in the spec; its
    `x-nullable` is not OpenAPI 3.0, so a page without a next or previous page must leave the
    link out rather than send null."""
    district = unique("Link")
    reg.owner.create(person(district=district))
    r = reg.owner.list(**{"query.district": district})
    reg.owner.check(r, api=with_server(data_spec_as_written, reg.owner.base))


# ---- the exchange around it ----------------------------------------------------------------


def test_mtls_reaches_the_same_registry(reg):
    """The registry answers the same over mutual TLS (X-Road-Client) as over a token."""
    rec = person()
    reg.owner.create(rec)
    r = reg.owner.client.call("POST", reg.service, f"/data/{reg.name}/1.0/read", via="mtls",
                              json={"query": {"content": {"id": rec["id"]}}})
    assert expect_ok(r).json() == {"content": rec}


def test_no_right_no_registry(reg, world):
    """A consumer without a right is refused by the exchange, not the registry."""
    stranger = world.new_client("RGX")
    r = stranger.call("POST", reg.service, f"/data/{reg.name}/1.0/read",
                      json={"query": {"content": {"id": "x"}}})
    expect_xroad_error(r, 403, DENIED)


def test_other_registry_through_this_service_is_refused(reg):
    """A registry's service carries that registry's paths only: person/1.0, or another version,
    through it is not an endpoint of the service, and the exchange refuses it (403)."""
    r = reg.owner.client.call("POST", reg.service, "/data/person/1.0/read",
                              json={"query": {"content": {"nationalId": "1101700203451"}}})
    expect_xroad_error(r, 403, DENIED)
    expect_xroad_error(reg.owner.client.get(reg.service, f"/data/{reg.name}/9.9"), 403, DENIED)


def published_openapi(reg) -> dict:
    owner = reg.owner.client
    code = reg.service.rsplit("/", 1)[1]
    r = owner.http.get(f"{owner.cfg.base}/r1/{CIVREG}/getOpenAPI", params={"serviceCode": code},
                       headers={"X-Road-Client": owner.id, **owner.auth_headers("token")}, timeout=30)
    return expect(r, 200).json()


def test_published_openapi_declares_every_operation(reg):
    """modify publishes the registry as an exchange service whose OpenAPI (getOpenAPI) declares
    every operation, camelCase and kebab-case."""
    doc = published_openapi(reg)
    d = f"/data/{reg.name}/1.0"
    expected = {
        ("get", d), ("post", f"{d}/create"), ("post", f"{d}/exists"), ("post", f"{d}/read"),
        ("put", f"{d}/update"), ("put", f"{d}/updateEntries"), ("put", f"{d}/update-entries"),
        ("post", f"{d}/updateOrCreate"), ("post", f"{d}/update-or-create"),
        ("delete", f"{d}/{{ID}}/delete"), ("get", f"{d}/{{uuid}}/readValue/{{field}}.{{ext}}"),
        ("get", f"{d}/{{uuid}}/read-value/{{field}}.{{ext}}"), ("get", f"{d}/{{uuid}}/history"),
        ("get", "/data/myPersonalDataUsage"),
    }
    declared = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert expected <= declared, f"missing operations: {sorted(expected - declared)}"


def test_published_openapi_is_valid(reg):
    """The published description is a valid OpenAPI document (openapi-spec-validator, through
    openapi-core). The test registry's schema carries `creationDate` and `filename`, which the
    GovStack Database API requires in a `modify` body's `schema`."""
    try:
        with_server(published_openapi(reg), reg.owner.base)
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"the registry's published OpenAPI is not valid:\n  {str(e)[:1500]}")


def test_answers_match_the_published_openapi(reg):
    """Requests the registry accepts, and its answers, match the registry's own published
    OpenAPI: every operation is tried and every mismatch reported. (The document is loaded
    without checking it: test_published_openapi_is_valid does that.)"""
    api = with_server(published_openapi(reg), reg.owner.base, check_document=False)
    rec = person()
    q = {"query": {"content": {"id": rec["id"]}}}
    calls = [
        lambda: reg.owner.create(rec),
        lambda: reg.owner.create(rec, status=409),
        lambda: reg.owner.read({"id": rec["id"]}),
        lambda: reg.owner.read({"id": new_id()}, status=404),
        lambda: reg.owner.exists({"id": rec["id"]}),
        lambda: reg.owner.list(**{"query.lastName": rec["lastName"], "pageSize": 2}),
        lambda: reg.owner.op("GET", f"/{rec['id']}/readValue/firstName.json", 200),
        lambda: reg.owner.op("GET", f"/{rec['id']}/read-value/firstName.json", 200),
        lambda: reg.owner.op("PUT", "/update", 200, json={**q, "write": {"content": {"district": "K"}}}),
        lambda: reg.owner.op("PUT", "/update-entries", 200, json={**q, "write": {"content": {"district": "L"}}}),
        lambda: reg.owner.op("POST", "/update-or-create", 200, json={**q, "write": {"content": {"district": "M"}}}),
        lambda: reg.owner.op("GET", f"/{rec['id']}/history", 200, spec=False),
        lambda: reg.owner.op("DELETE", f"/{rec['id']}/delete", 204),
    ]
    problems = []
    for call in calls:
        r = call()
        # The kebab-case paths are in the published document: checked as they are.
        prepared = r.request
        try:
            request = RequestsOpenAPIRequest(prepared)
            api.validate_request(request)
            api.validate_response(request, RequestsOpenAPIResponse(r))
        except Exception as e:  # noqa: BLE001
            problems.append(f"{prepared.method} {prepared.path_url} -> {r.status_code}: {explain(e)}")
    assert not problems, "answers or requests that do not match the registry's published OpenAPI:\n" + \
        "\n".join(problems)


# ---- field-level minimisation: the names-only right ----------------------------------------


@pytest.fixture(scope="module")
def named(reg) -> dict:
    """A record (owner-created) that the names-only consumer reads."""
    rec = person(lastName=unique("Named"), district=unique("Hidden"))
    reg.owner.create(rec)
    return rec


def only_names(record: dict) -> bool:
    return set(record) <= {"id", *NAMES}


def test_names_only_read(reg, named):
    """read by a names-only right: id and names, never birthDate or district."""
    content = reg.names.read({"id": named["id"]}).json()["content"]
    assert content == {k: named[k] for k in ("id", *NAMES)}, content


def test_names_only_list_and_search(reg, named):
    """list and search by a names-only right: results carry names only; search works on the
    released indexed field."""
    for params in ({"search": named["lastName"]}, {"query.lastName": named["lastName"]},
                   {"pageSize": 50}):
        r = reg.names.list(**params)
        results = r.json()["results"]
        assert results and all(only_names(x) for x in results), show(r)
    r = reg.names.list(search=named["lastName"])
    assert [x["id"] for x in r.json()["results"]] == [named["id"]], show(r)
    # district is indexed but not released: a search must not find records by it.
    r = reg.names.list(search=named["district"])
    assert r.json()["count"] == 0 and r.json()["results"] == [], show(r)


def test_names_only_read_value(reg, named):
    """readValue by a names-only right: 200 for a name, 403 for birthDate."""
    r = reg.names.op("GET", f"/{named['id']}/readValue/firstName.json", 200)
    assert r.json() == {"value": named["firstName"]}, show(r)
    for path in ("readValue", "read-value"):
        r = reg.names.op("GET", f"/{named['id']}/{path}/birthDate.json", 403)
        assert "1990" not in r.text, show(r)


def test_names_only_history(reg, named):
    """history by a names-only right: each revision's content carries names only."""
    reg.owner.op("PUT", "/update", 200, json={"write": {"content": {"id": named["id"], "birthDate": "1991-01-01"}}})
    r = reg.names.op("GET", f"/{named['id']}/history", 200, spec=False)  # not in the spec
    entries = r.json()
    assert len(entries) >= 2 and all(only_names(e["content"]) for e in entries), show(r)
    assert "birthDate" not in r.text, show(r)


def test_names_only_cannot_ask_about_birth_date(reg, named):
    """exists/read with birthDate in the query, query.birthDate and filter=birthDate or
    district are refused (403, or 400): asking would reveal the value."""
    reg.names.exists({"id": named["id"], "birthDate": named["birthDate"]}, status=403)
    reg.names.read({"id": named["id"], "birthDate": named["birthDate"]}, status=403)
    r = reg.names.client.call("GET", reg.service, reg.names.data, client_header=False,
                              headers={IM_CLIENT: reg.names.client.id},
                              params={"query.birthDate": named["birthDate"]})
    assert r.status_code in (400, 403), show(r)
    expect_problem(r, r.status_code)
    reg.names.list(403, **{"query.district": named["district"]})
    reg.names.list(403, search="Bang", filter="district")


def test_names_only_cannot_write_other_fields(reg, named):
    """Writes by a names-only right: names may change; any other field is 403, in every write
    operation."""
    rid = named["id"]
    body = {"query": {"content": {"id": rid}}, "write": {"content": {"birthDate": "2000-01-01"}}}
    reg.names.op("PUT", "/update", 403, json=body)
    reg.names.op("PUT", "/updateEntries", 403, json=body)
    reg.names.op("POST", "/updateOrCreate", 403, json=body)
    reg.names.create(person(), status=403)
    assert reg.owner.read({"id": rid}).json()["content"]["birthDate"] != "2000-01-01"
    r = reg.names.op("PUT", "/update", 200, json={"query": {"content": {"id": rid}},
                                                  "write": {"content": {"firstName": "Wichai"}}})
    assert r.json()["content"] == {"id": rid, "firstName": "Wichai", "lastName": named["lastName"]}, show(r)
    mine = {"id": new_id(), "firstName": "Kanya", "lastName": "Suksan"}
    assert reg.names.create(mine).json() == {"content": mine}


def test_names_only_cannot_delete(reg, named):
    """delete needs a right to every field: 403 for a names-only right."""
    reg.names.op("DELETE", f"/{named['id']}/delete", 403)
    reg.owner.read({"id": named["id"]})


# ---- the demo's person registry and the data-usage history ---------------------------------


def check_digit(first12: str) -> str:
    return str((11 - sum(int(d) * (13 - i) for i, d in enumerate(first12)) % 11) % 10)


@pytest.fixture(scope="module")
def demo_person(cfg) -> str:
    """A demo person's national id (an entry of demo-logins.json without nationality)."""
    for login in cfg.logins:
        ident = login.get("identifier", "")
        if not login.get("nationality") and len(ident) == 13 and ident.isdigit():
            return ident
    raise AssertionError("demo-logins.json has no Thai national id")


@pytest.fixture(scope="module")
def dbd_fields(admin) -> list:
    """The fields the demo's right releases to DBD's registry on person-v1 (names and status)."""
    rights = admin.req("GET", f"/api/v1/exchange/services/{path_of(PERSON)}/rights", 200).json()
    dbd = [x for x in rights if x["grantee"] == "TH/GOV/DBD/REGISTRY" and not x.get("revoked_at")]
    assert dbd and dbd[0].get("fields"), f"the demo's DBD right on person-v1 has no fields: {rights}"
    assert "birthDate" not in dbd[0]["fields"], dbd[0]
    return dbd[0]["fields"]


@pytest.fixture(scope="module")
def dbd_like(world, admin, data_spec, dbd_fields) -> Registry:
    """A fresh consumer granted on person-v1 as the demo grants DBD's registry: the same fields."""
    client = world.new_client("RGD")
    admin.grant(PERSON, client.id, fields=dbd_fields)
    return Registry(client, PERSON, data_spec, "/data/person/1.0")


@pytest.fixture(scope="module")
def usage_reader(world, admin, data_spec) -> Registry:
    """A consumer with a right to every field of person-v1 (what myPersonalDataUsage needs)."""
    client = world.new_client("RGU")
    admin.grant(PERSON, client.id)
    return Registry(client, PERSON, data_spec, "/data/person/1.0")


def about(nid: str) -> dict:
    """The header that makes a call concern a person (and shows it in their history)."""
    return {"Saphan-Data-Subject": "TH" + nid}


def test_demo_foreigner_is_in_the_immigration_registry(cfg, world, admin, data_spec):
    """The demo's foreigner (passport and nationality in demo-logins.json) is a record of
    foreigner/1.0 on the Immigration Bureau's subsystem, with a visa and permitted stay."""
    login = next(l for l in cfg.logins if l.get("nationality"))
    client = world.new_client("RGF")
    admin.grant("TH/GOV/IMM/IMMREG/foreigner-v1", client.id)
    imm = Registry(client, "TH/GOV/IMM/IMMREG/foreigner-v1", data_spec, "/data/foreigner/1.0")
    key = f"{login['nationality']}-{login['identifier']}"
    content = imm.read({"foreignerId": key}).json()["content"]
    assert content["passportNumber"] == login["identifier"], content
    assert content["nationality"] == login["nationality"], content
    assert content["firstName"] and content["visaType"] and content["permittedUntil"], content


def test_demo_person_names_only(dbd_like, dbd_fields, demo_person):
    """A demo person read with DBD's right: Thai and English names, no birth date."""
    content = dbd_like.read({"nationalId": demo_person}).json()["content"]
    assert content["nationalId"] == demo_person, content
    for field in ("firstNameTh", "lastNameTh", "firstNameEn", "lastNameEn"):
        assert isinstance(content.get(field), str) and content[field], (field, content)
    assert set(content) <= {"nationalId", *dbd_fields}, content
    for hidden in ("birthDate", "gender", "houseId", "fatherId", "motherId"):
        assert hidden not in content, content
    dbd_like.op("GET", f"/{demo_person}/readValue/birthDate.json", 403)


@pytest.mark.parametrize("path,spec_name", [
    ("/data/myPersonalDataUsage", DATA_SPEC_YAML),
    ("/data/mypersonalDataUsage", DATA_SPEC_JSON),
    ("/data/MyPersonalDataUsage/1.0", None),
])
def test_my_personal_data_usage_lists_our_reads(dbd_like, usage_reader, demo_person, data_spec_json, path, spec_name):
    """myPersonalDataUsage: the person's data-usage lists this consumer's reads of the person
    registry (readerApplicationName = the consumer subsystem). Asked by a consumer with a right
    to every field, about the person it declares as the call's data subject."""
    dbd_like.read({"nationalId": demo_person})
    params = {"userId": demo_person, "databaseId": "person"}
    # /data/MyPersonalDataUsage/1.0 is in neither edition (and would match `list`'s template).
    r = usage_reader.call("GET", path, 200, params=params, spec=spec_name == DATA_SPEC_YAML,
                          headers=about(demo_person))
    if spec_name == DATA_SPEC_JSON:
        usage_reader.check(r, api=with_server(data_spec_json, usage_reader.base))
    rows = r.json()
    ours = [x for x in rows if x.get("readerApplicationName") == dbd_like.client.id]
    assert ours, f"no read by {dbd_like.client.id} listed{show(r)}"
    member = dbd_like.client.id.rsplit("/", 1)[0]
    for row in ours:
        assert row.get("readerInstitutionId") == member, row
        assert row.get("refrences") == [{"ReferenceID": "person/1.0"}], row
        assert row.get("searchDateTime") and row.get("id"), row


def test_my_personal_data_usage_refusals(dbd_like, usage_reader, demo_person):
    """myPersonalDataUsage: 400 without userId or databaseId, for a userId that is not a
    national id or another registry's databaseId; 404 for a person nobody has read; 403 for a
    field-limited right or without the person declared as the data subject. A userId with a
    country prefix (the spec's example is `EE…`), here `TH…`, is accepted."""
    path = "/data/myPersonalDataUsage"
    me = about(demo_person)
    usage_reader.call("GET", path, 400, params={"userId": demo_person}, valid_request=False, headers=me)
    usage_reader.call("GET", path, 400, params={"userId": "12345", "databaseId": "person"}, headers=me)
    usage_reader.call("GET", path, 400, params={"userId": demo_person, "databaseId": "house"}, headers=me)
    unread = "8" + "".join(secrets.choice("0123456789") for _ in range(11))
    unread += check_digit(unread)
    usage_reader.call("GET", path, 404, params={"userId": unread, "databaseId": "person"},
                      headers=about(unread))
    dbd_like.read({"nationalId": demo_person})
    usage_reader.call("GET", path, 200, params={"userId": "TH" + demo_person, "databaseId": "person/1.0"},
                      headers=me)
    # Not for a names-only right, nor about a person the call does not declare.
    dbd_like.call("GET", path, 403, params={"userId": demo_person, "databaseId": "person"},
                  headers=me, spec=False)
    usage_reader.call("GET", path, 403, params={"userId": demo_person, "databaseId": "person"},
                      spec=False)
    usage_reader.call("GET", path, 403, params={"userId": demo_person, "databaseId": "person"},
                      headers=about(unread), spec=False)


# ---- the Database API ----------------------------------------------------------------------


def databases_in(body) -> list:
    """The databases of a /databases answer (the spec's object or a bare list)."""
    return body.get("databases", []) if isinstance(body, dict) else body


def test_databases_lists_the_test_registry(reg, dbapi):
    """GET /databases lists the subsystem's registries, the test registry among them."""
    r = dbapi.client.call("GET", DATABASES, "/databases", client_header=False,
                          headers={IM_CLIENT: dbapi.client.id})
    listed = {(d.get("name"), d.get("version")): d for d in databases_in(expect_ok(r).json())}
    assert (reg.name, "1.0") in listed and ("person", "1.0") in listed, f"{sorted(listed)}{show(r)}"
    assert listed[(reg.name, "1.0")]["id"] == reg.info["id"], show(r)
    assert not any(d.get("institution") != "GOV/DOPA/CIVREG" for d in listed.values()), show(r)


def test_databases_answer_matches_the_spec(reg, dbapi):
    """GET /databases: the spec's `DatabasesSchema` is an object (a database group with a
    `databases` array), not a bare array."""
    dbapi.call("GET", "/databases", 200)


def test_database_by_id(reg, dbapi, admin):
    """GET /database/{id}: the registry with its schema, tags (indexed fields) and flags
    (personal fields, primary key); 404 for an unknown id or another subsystem's registry."""
    r = dbapi.call("GET", f"/database/{reg.info['id']}", 200)
    info = r.json()
    assert (info["id"], info["name"], info["version"]) == (reg.info["id"], reg.name, "1.0"), show(r)
    assert info["schema"]["properties"].keys() == definition(reg.name)["schema"]["properties"].keys()
    assert {t["name"] for t in info["schemaTags"]} == {"lastName", "district"}, show(r)
    assert {"name": "primaryKey", "path": "/id"} in info["schemaFlags"], show(r)
    dbapi.call("GET", "/database/999999", 404)
    dbapi.call("GET", "/database/not-a-number", 400, valid_request=False)
    # juristic/1.0 is DBD's: its id, from DBD's own Database API, is not DOPA's to show.
    admin.grant("TH/GOV/DBD/REGISTRY/databases", dbapi.client.id)
    r = dbapi.client.call("GET", "TH/GOV/DBD/REGISTRY/databases", "/databases",
                          client_header=False, headers={IM_CLIENT: dbapi.client.id})
    juristic = [d for d in databases_in(expect_ok(r).json()) if d.get("name") == "juristic"]
    assert juristic, show(r)
    dbapi.call("GET", f"/database/{juristic[0]['id']}", 404)


def test_modify_changes_the_definition(reg, world, dbapi):
    """POST /database/modify on an existing name and version changes its definition (a new
    field becomes writable); an invalid definition is 400."""
    name = f"m{world.sfx.lower()}"
    first = dbapi.call("POST", "/database/modify", 200, json=definition(name)).json()
    again = dbapi.call("POST", "/database/modify", 200,
                       json=definition(name, note={"type": "string"})).json()
    assert again["id"] == first["id"] and "note" in again["schema"]["properties"], again
    bad = definition(f"Bad{world.sfx}")  # upper-case name
    dbapi.call("POST", "/database/modify", 400, json=bad)
    bad = definition(f"b{world.sfx.lower()}")
    bad["id_field"] = "birthDate2"
    dbapi.call("POST", "/database/modify", 400, json=bad)


def test_modify_cannot_take_over_another_service(world, dbapi):
    """POST /database/modify refuses a service code that is already another service of the
    subsystem (its rights and consent would open the registry), and a registry's service code
    cannot change."""
    name = f"s{world.sfx.lower()}"
    taken = definition(name)
    taken["service_code"] = "databases"
    r = dbapi.call("POST", "/database/modify", 409, json=taken, spec=False)
    assert "already a service" in r.json()["detail"], show(r)
    dbapi.call("POST", "/database/modify", 200, json=definition(name))
    moved = definition(name)
    moved["service_code"] = f"{name}-v2"
    r = dbapi.call("POST", "/database/modify", 400, json=moved, spec=False)
    assert "cannot change" in r.json()["detail"], show(r)


def test_database_delete_refused_while_records_remain(world, admin, dbapi, data_spec):
    """DELETE /database/{id} is refused while the registry holds records, and succeeds
    ("Success") once they are deleted; the registry is then gone."""
    name = f"d{world.sfx.lower()}"
    info = dbapi.call("POST", "/database/modify", 200, json=definition(name)).json()
    service = f"{CIVREG}/{name}-v1"
    admin.grant(service, dbapi.client.id)
    data = Registry(dbapi.client, service, data_spec, f"/data/{name}/1.0")
    rec = person()
    data.create(rec)
    r = dbapi.call("DELETE", f"/database/{info['id']}", 400)
    assert "record" in r.json()["detail"], show(r)
    data.read({"id": rec["id"]})
    data.op("DELETE", f"/{rec['id']}/delete", 204)
    r = dbapi.call("DELETE", f"/database/{info['id']}", 200)
    assert r.json() == "Success", show(r)
    dbapi.call("GET", f"/database/{info['id']}", 404)
    listed = databases_in(dbapi.client.call("GET", DATABASES, "/databases", client_header=False,
                                            headers={IM_CLIENT: dbapi.client.id}).json())
    assert name not in {d.get("name") for d in listed}, listed
    data.read({"id": rec["id"]}, status=404, spec=False)  # the registry, not the record, is gone


# ---- the backend answers the exchange only -------------------------------------------------


def test_backend_refuses_direct_calls(cfg, reg, platform_jwks):
    """/registry-backend/... without the exchange's assertion, or with a forged one (naming a
    platform key but signed with another), is 401."""
    base = cfg.base + "/registry-backend"
    calls = [
        ("GET", f"/data/{reg.name}/1.0", None),
        ("POST", f"/data/{reg.name}/1.0/read", {"query": {"content": {"id": "x"}}}),
        ("POST", "/data/person/1.0/read", {"query": {"content": {"nationalId": "1101700203451"}}}),
        ("GET", "/databases", None),
        ("GET", "/data/myPersonalDataUsage?userId=1101700203451&databaseId=person", None),
    ]
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    forged = jwt.encode(
        {"iss": "platform", "sub": reg.owner.client.id, "aud": reg.service, "iat": now,
         "exp": now + 60, "jti": str(uuid.uuid4())},
        key, algorithm="ES256", headers={"kid": platform_jwks["keys"][0]["kid"]},
    )
    for method, path, body in calls:
        for headers in ({}, {"Saphan-Exchange-Assertion": forged},
                        {"Saphan-Exchange-Assertion": "not-a-jwt"}):
            r = requests.request(method, base + path, json=body, headers=headers, timeout=30)
            expect_problem(r, 401)
