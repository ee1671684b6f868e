//! The registry engine's HTTP backend: the GovStack Digital Registries Data API
//! (`/data/{registry}/{version}/...`, camelCase and kebab-case paths) and Database API
//! (`/databases`, `/database/...`) under [`PREFIX`], the backend address of the registries'
//! exchange services.
//!
//! Only the exchange may call it: every request must carry the gateway's signed assertion
//! (`Saphan-Exchange-Assertion`) for the very service the path belongs to, bound to this
//! request line, these headers and this body. The assertion says who the consumer is and which
//! fields its right releases; the engine does the rest. Answers are `application/json` as the
//! specification gives them; refusals are problem objects in the same media type.

use axum::body::{to_bytes, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use saphan_exchange::assertion::{self, Claims};
use saphan_exchange::protocol as p;
use saphan_registry::{service, Caller, Definition, ListQuery, RegistryError};
use serde_json::{json, Map, Value};

use crate::state::AppState;

/// Where the registries' backend answers; their services' backend URL is the public URL + this.
pub const PREFIX: &str = "/registry-backend";
/// The largest request body (a `createEntries` batch).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A refusal, answered as JSON (`detail` in English; `title_th`/`title` name the kind of
/// problem).
struct Refusal {
    status: StatusCode,
    detail: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (title_th, title) = match self.status.as_u16() {
            400 => ("ข้อมูลไม่ถูกต้อง", "The request is not valid"),
            401 => (
                "ต้องเรียกผ่านระบบแลกเปลี่ยนข้อมูล",
                "Call through the data exchange",
            ),
            403 => (
                "สิทธิ์ของท่านไม่ครอบคลุมข้อมูลนี้",
                "Your right does not cover this data",
            ),
            404 => ("ไม่พบข้อมูล", "Not found"),
            409 => ("มีข้อมูลนี้อยู่แล้ว", "This record already exists"),
            413 => ("ข้อมูลมีขนาดใหญ่เกินไป", "The body is too large"),
            _ => (
                "ระบบทะเบียนขัดข้องชั่วคราว",
                "The registry is temporarily unavailable",
            ),
        };
        (
            self.status,
            Json(json!({"status": self.status.as_u16(), "title": title, "title_th": title_th, "detail": self.detail})),
        )
            .into_response()
    }
}

impl From<Refusal> for Response {
    fn from(r: Refusal) -> Response {
        r.into_response()
    }
}

/// A refusal, as whichever of [`Refusal`] or [`Response`] the caller returns.
fn refuse<T: From<Refusal>>(status: StatusCode, detail: &str) -> T {
    T::from(Refusal {
        status,
        detail: detail.to_string(),
    })
}

fn registry_error(e: RegistryError) -> Refusal {
    let status = match &e {
        RegistryError::Invalid(_) => StatusCode::BAD_REQUEST,
        RegistryError::Forbidden(_) => StatusCode::FORBIDDEN,
        RegistryError::NotFound(_) => StatusCode::NOT_FOUND,
        RegistryError::Duplicate(_) => StatusCode::CONFLICT,
        _ => {
            tracing::error!(error = %e, "registry failure");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the registry could not answer; try again",
            );
        }
    };
    let detail = match e {
        RegistryError::Invalid(m)
        | RegistryError::Forbidden(m)
        | RegistryError::NotFound(m)
        | RegistryError::Duplicate(m) => m,
        _ => String::new(),
    };
    refuse(status, &detail)
}

/// The caller the gateway vouches for, or the refusal.
fn authenticate(
    state: &AppState,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Claims, Refusal> {
    let unauthenticated = |why: &str| refuse(StatusCode::UNAUTHORIZED, why);
    let Some(jwt) = p::last(headers, p::ASSERTION) else {
        return Err(unauthenticated(
            "this registry answers only calls that come through the data exchange (/r1/...)",
        ));
    };
    // The audience names the service; the signature, audience and lifetime are then checked.
    let audience = saphan_oidc::jose::Unverified::parse(&jwt)
        .and_then(|u| {
            u.claims
                .get("aud")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .ok_or_else(|| unauthenticated("the exchange assertion is malformed"))?;
    let claims = assertion::verify(
        &jwt,
        &state.keys.public_keys(),
        &audience,
        saphan_core::clock::now_unix(),
    )
    .ok_or_else(|| unauthenticated("the exchange assertion is not valid or has expired"))?;
    // Bound to this request: an assertion for one call opens no other.
    let listed = p::connection_listed(headers);
    let mut forwarded = HeaderMap::new();
    for (name, value) in headers {
        if p::passes(name, &listed) {
            forwarded.append(name.clone(), value.clone());
        }
    }
    let digest = p::headers_digest(method.as_str(), path_and_query, &forwarded);
    let headers_hash = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(digest)
    };
    if headers_hash != claims.req_headers_hash {
        tracing::debug!(
            headers = ?forwarded.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            path = %saphan_core::redact::redact(path_and_query),
            "an assertion's request binding does not match"
        );
        return Err(unauthenticated(
            "the exchange assertion was issued for another request",
        ));
    }
    if let Some(expected) = &claims.req_hash {
        use sha2::Digest;
        let body_digest: [u8; 64] = sha2::Sha512::digest(body).into();
        if p::message_hash(&digest, &body_digest) != *expected {
            return Err(unauthenticated(
                "the exchange assertion was issued for another request body",
            ));
        }
    }
    Ok(claims)
}

/// Assertions already used for a change, until they expire: a change is made once per
/// assertion (a replayed `create` or `update` is refused). Per node; reads may repeat.
static SPENT: std::sync::Mutex<Option<std::collections::HashMap<String, i64>>> =
    std::sync::Mutex::new(None);

fn spend(claims: &Claims) -> bool {
    let now = saphan_core::clock::now_unix();
    let mut guard = SPENT.lock().unwrap_or_else(|e| e.into_inner());
    let spent = guard.get_or_insert_with(Default::default);
    if spent.len() > 100_000 {
        spent.retain(|_, exp| *exp > now);
    }
    spent.insert(claims.jti.clone(), claims.exp).is_none()
}

/// Whether a request changes something (anything but GET, `read` and `exists`).
fn changes(method: &Method, path: &str) -> bool {
    *method != Method::GET && !path.ends_with("/read") && !path.ends_with("/exists")
}

fn caller(claims: &Claims) -> Caller {
    Caller {
        consumer: claims.sub.clone(),
        user: claims.user.clone(),
        reason: claims.issue.clone().or_else(|| claims.purpose.clone()),
        fields: claims.fields.clone(),
    }
}

/// `CLASS/MEMBER/SUBSYSTEM` and the service code of an audience `INSTANCE/CLASS/MEMBER/SUBSYSTEM/CODE`.
fn split_audience<'a>(state: &AppState, audience: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = audience.strip_prefix(state.config.exchange.instance.as_str())?;
    let rest = rest.strip_prefix('/')?;
    let (provider, code) = rest.rsplit_once('/')?;
    (provider.split('/').count() == 3).then_some((provider, code))
}

fn decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn json_body(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(refuse(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        )),
        Err(e) => Err(refuse(
            StatusCode::BAD_REQUEST,
            &format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// `body[key].content` as an object (`write`, `query`).
fn content<'a>(
    body: &'a Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Option<&'a Map<String, Value>>, Refusal> {
    match body.get(key) {
        None if !required => Ok(None),
        None => Err(refuse(
            StatusCode::BAD_REQUEST,
            &format!("{key}.content is required"),
        )),
        Some(v) => match v.get("content") {
            Some(Value::Object(c)) => Ok(Some(c)),
            _ => Err(refuse(
                StatusCode::BAD_REQUEST,
                &format!("{key}.content must be an object"),
            )),
        },
    }
}

pub(crate) async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {MAX_BODY} bytes"),
            )
        }
    };
    let path = parts.uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let claims = match authenticate(
        &state,
        &parts.method,
        &path_and_query,
        &parts.headers,
        &body,
    ) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    if changes(&parts.method, path) && !spend(&claims) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "this exchange assertion was already used for a change",
        );
    }
    let Some((provider, code)) = split_audience(&state, &claims.aud) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "the assertion names no registry service",
        );
    };
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    match seg.as_slice() {
        ["databases"] | ["database", ..] => {
            if code != service::DATABASES_SERVICE {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "the Database API is the databases service",
                );
            }
            database_api(&state, &parts.method, &seg, provider, &claims, &body).await
        }
        ["data", "myPersonalDataUsage" | "mypersonalDataUsage"]
        | ["data", "MyPersonalDataUsage", "1.0"] => {
            let Ok(Some(def)) = state.registries.published_as(provider, code).await else {
                return refuse(
                    StatusCode::NOT_FOUND,
                    "no registry is published as this service",
                );
            };
            personal_data_usage(&state, &def, &claims, &query).await
        }
        ["data", name, version, rest @ ..] => {
            let def = match state.registries.definition(name, version).await {
                Ok(Some(d)) => d,
                Ok(None) => {
                    return refuse(
                        StatusCode::NOT_FOUND,
                        &format!("no registry {name}/{version}"),
                    )
                }
                Err(e) => return registry_error(e).into_response(),
            };
            if def.provider != provider || def.spec.service_code != code {
                return refuse(
                    StatusCode::FORBIDDEN,
                    &format!("{name}/{version} is not the registry of the service you called"),
                );
            }
            let base_url = format!(
                "{}/r1/{}/data/{name}/{version}",
                state.config.public_url.trim_end_matches('/'),
                claims.aud
            );
            data_api(
                &state,
                &parts.method,
                rest,
                &def,
                &caller(&claims),
                &query,
                &body,
                &base_url,
            )
            .await
        }
        _ => refuse(StatusCode::NOT_FOUND, "no such registry operation"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn data_api(
    state: &AppState,
    method: &Method,
    rest: &[&str],
    def: &Definition,
    caller: &Caller,
    query: &[(String, String)],
    body: &Bytes,
    base_url: &str,
) -> Response {
    let regs = &state.registries;
    let m = method.as_str();
    let result: Result<Response, Refusal> = async {
        match (m, rest) {
            ("GET", []) => list(state, def, caller, query, base_url).await,
            ("POST", ["create"]) => {
                let body = json_body(body)?;
                let write = content(&body, "write", true)?.cloned().unwrap_or_default();
                let record = regs
                    .create(def, caller, Value::Object(write))
                    .await
                    .map_err(registry_error)?;
                Ok(Json(json!({"content": caller.minimise(def, record)})).into_response())
            }
            ("POST", ["exists"]) => {
                let body = json_body(body)?;
                let q = content(&body, "query", true)?.cloned().unwrap_or_default();
                let found = regs.exists(def, caller, &q).await.map_err(registry_error)?;
                Ok(Json(json!({"answer": {
                    "status": found,
                    "message": if found { "Object found from database" } else { "Object not found from database" }
                }}))
                .into_response())
            }
            ("POST", ["read"]) => {
                let body = json_body(body)?;
                let q = content(&body, "query", true)?.cloned().unwrap_or_default();
                match regs.read(def, caller, &q).await.map_err(registry_error)? {
                    Some(record) => Ok(Json(json!({"content": record})).into_response()),
                    None => Ok((StatusCode::NOT_FOUND, Json(json!({"detail": "no record found"})))
                        .into_response()),
                }
            }
            ("PUT", ["update"]) => {
                let body = json_body(body)?;
                let q = content(&body, "query", false)?;
                let write = content(&body, "write", true)?.cloned().unwrap_or_default();
                let record = regs
                    .update(def, caller, q, &write)
                    .await
                    .map_err(registry_error)?;
                Ok(Json(json!({"content": caller.minimise(def, record)})).into_response())
            }
            ("PUT", ["updateEntries" | "update-entries"]) => {
                let body = json_body(body)?;
                let q = content(&body, "query", true)?.cloned().unwrap_or_default();
                let write = content(&body, "write", true)?.cloned().unwrap_or_default();
                let n = regs
                    .update_entries(def, caller, &q, &write)
                    .await
                    .map_err(registry_error)?;
                Ok(Json(json!({"updated": n})).into_response())
            }
            ("POST", ["updateOrCreate" | "update-or-create"]) => {
                let body = json_body(body)?;
                let q = content(&body, "query", false)?;
                let write = content(&body, "write", true)?.cloned().unwrap_or_default();
                let outcome = regs
                    .update_or_create(def, caller, q, &write)
                    .await
                    .map_err(registry_error)?;
                Ok(Json(json!({"content": caller.minimise(def, outcome.record), "created": outcome.created}))
                    .into_response())
            }
            ("DELETE", [id, "delete"]) => {
                regs.delete(def, caller, id).await.map_err(registry_error)?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            ("GET", [id, "readValue" | "read-value", field_ext]) => {
                let (field, ext) = field_ext.rsplit_once('.').unwrap_or((field_ext, ""));
                if ext != "json" {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "readValue answers in JSON only: end the path with .json",
                    ));
                }
                let value = regs
                    .read_value(def, caller, id, field)
                    .await
                    .map_err(registry_error)?;
                Ok(Json(json!({"value": value})).into_response())
            }
            ("GET", [id, "history"]) => {
                let history = regs.history(def, caller, id).await.map_err(registry_error)?;
                Ok(Json(history).into_response())
            }
            _ => Err(refuse(
                StatusCode::NOT_FOUND,
                &format!("no operation {m} {} on {}", rest.join("/"), def.key()),
            )),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn list(
    state: &AppState,
    def: &Definition,
    caller: &Caller,
    query: &[(String, String)],
    base_url: &str,
) -> Result<Response, Refusal> {
    let mut q = ListQuery {
        page_size: 10,
        ..ListQuery::default()
    };
    let number = |name: &str, v: &str| {
        v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            refuse(
                StatusCode::BAD_REQUEST,
                &format!("{name}: a whole number from 1"),
            )
        })
    };
    for (k, v) in query {
        match k.as_str() {
            "search" => q.search = Some(v.clone()),
            "filter" => q.filter = Some(v.clone()),
            "ordering" => {
                q.descending = match v.as_str() {
                    "descending" | "desc" | "-id" => true,
                    "ascending" | "asc" | "id" => false,
                    _ => {
                        return Err(refuse(
                            StatusCode::BAD_REQUEST,
                            "ordering: ascending or descending",
                        ))
                    }
                }
            }
            "page" => q.page = Some(number("page", v)?),
            "pageSize" => q.page_size = number("pageSize", v)?,
            "cursor" => q.cursor = Some(v.clone()),
            other => match other.strip_prefix("query.") {
                Some(field) => q.equals.push((field.to_string(), v.clone())),
                None => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        &format!("unknown parameter {other}"),
                    ))
                }
            },
        }
    }
    let page = state
        .registries
        .list(def, caller, &q)
        .await
        .map_err(registry_error)?;
    let link = |cursor: &str| {
        let mut params = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().filter(|(k, _)| k != "cursor" && k != "page") {
            params.append_pair(k, v);
        }
        params.append_pair("cursor", cursor);
        format!("{base_url}?{}", params.finish())
    };
    // `next` and `previous` are URIs in the spec (not nullable): absent when there is none.
    // Cursors run forwards only, so there is no `previous`.
    let mut answer = json!({"count": page.count, "results": page.results});
    if let Some(cursor) = page.next_cursor.as_deref() {
        answer["next"] = json!(link(cursor));
    }
    Ok(Json(answer).into_response())
}

/// Who read a person's records. Only for a caller with a right to every field that declared
/// this very person as the call's data subject (`Saphan-Data-Subject`), so that asking is itself
/// in the person's access history.
async fn personal_data_usage(
    state: &AppState,
    def: &Definition,
    claims: &Claims,
    query: &[(String, String)],
) -> Response {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim());
    let (Some(user), Some(database)) = (get("userId"), get("databaseId")) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "userId and databaseId are required",
        );
    };
    if database != def.name() && database != def.key() && database != def.id.to_string() {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("databaseId: this service is the registry {}", def.key()),
        );
    }
    let digits = user.strip_prefix("TH").unwrap_or(user);
    let Ok(nid) = digits.parse::<saphan_core::NationalId>() else {
        return refuse(StatusCode::BAD_REQUEST, "userId: a Thai national id");
    };
    if claims.fields.is_some() {
        return refuse(
            StatusCode::FORBIDDEN,
            "a person's data usage needs a right to all fields of the registry",
        );
    }
    if claims.data_subject_id.as_deref() != Some(format!("TH{}", nid.digits()).as_str()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "declare the person as the call's data subject (Saphan-Data-Subject: TH<national id>)",
        );
    }
    let usage = match state
        .registries
        .personal_data_usage(&nid.digits(), 200)
        .await
    {
        Ok(u) => u,
        Err(e) => return registry_error(e).into_response(),
    };
    let key = def.key();
    let rows: Vec<Value> = usage
        .into_iter()
        .filter(|u| u.registry == key)
        .map(|u| {
            let member = u.reader.split('/').take(3).collect::<Vec<_>>().join("/");
            json!({
                "id": u.seq.to_string(),
                "readerId": u.user.clone().unwrap_or_else(|| u.reader.clone()),
                "readerInstitutionId": member,
                "readerApplicationName": u.reader,
                "searchDateTime": u.at,
                "refrences": [{"ReferenceID": u.registry}],
            })
        })
        .collect();
    if rows.is_empty() {
        return refuse(
            StatusCode::NOT_FOUND,
            "no reads of this person's data are recorded",
        );
    }
    Json(rows).into_response()
}

fn database_info(state: &AppState, def: &Definition) -> Value {
    let flags: Vec<Value> = def
        .spec
        .personal
        .iter()
        .map(|f| json!({"name": "personal", "path": format!("/{f}")}))
        .chain(
            def.spec
                .sensitive
                .iter()
                .map(|f| json!({"name": "sensitive", "path": format!("/{f}")})),
        )
        .chain(std::iter::once(
            json!({"name": "primaryKey", "path": format!("/{}", def.spec.id_field)}),
        ))
        .collect();
    json!({
        "id": def.id,
        "version": def.version(),
        "name": def.name(),
        "description": def.spec.description,
        "institution": def.provider,
        "schema": def.spec.schema,
        "schemaTags": def.spec.indexed.iter().map(|f| json!({"name": f, "path": format!("/{f}"), "isFulltext": false})).collect::<Vec<_>>(),
        "schemaFlags": flags,
        "isDraft": false,
        "isDisabled": false,
        "isArchived": false,
        "modifiedAt": def.modified_at,
        "byUserName": def.modified_by,
        "service": format!("{}/{}/{}", state.config.exchange.instance, def.provider, def.spec.service_code),
        "definition": def.spec,
    })
}

async fn database_api(
    state: &AppState,
    method: &Method,
    seg: &[&str],
    provider: &str,
    claims: &Claims,
    body: &Bytes,
) -> Response {
    let regs = &state.registries;
    if let ["database", id] = seg {
        if *id != "modify" && id.parse::<i64>().is_err() {
            return refuse(
                StatusCode::BAD_REQUEST,
                "id: a database id is a whole number",
            );
        }
    }
    let id = seg.get(1).and_then(|s| s.parse::<i64>().ok());
    let owned = || async move {
        regs.definition_by_id(id?)
            .await
            .ok()
            .flatten()
            .filter(|d| d.provider == provider)
    };
    match (method.as_str(), seg) {
        // The spec's `databasesSchema`: one group (this provider subsystem) and its databases.
        ("GET", ["databases"]) => match regs.definitions(Some(provider)).await {
            Ok(defs) => Json(json!({
                "id": 1,
                "name": provider,
                "code": provider.rsplit('/').next().unwrap_or(provider),
                "groupId": 1,
                "order": 1,
                "dataIndexIncrement": 1,
                "databases": defs.iter().map(|d| database_info(state, d)).collect::<Vec<_>>(),
            }))
            .into_response(),
            Err(e) => registry_error(e).into_response(),
        },
        ("GET", ["database", _]) => match owned().await {
            Some(def) => Json(database_info(state, &def)).into_response(),
            None => refuse(StatusCode::NOT_FOUND, "no such database of this provider"),
        },
        ("DELETE", ["database", _]) => match owned().await {
            Some(def) => match regs.retire(&def, &claims.sub).await {
                Ok(()) => Json(json!("Success")).into_response(),
                Err(e) => registry_error(e).into_response(),
            },
            None => refuse(StatusCode::NOT_FOUND, "no such database of this provider"),
        },
        ("POST", ["database", "modify"]) => {
            let mut body = match json_body(body) {
                Ok(b) => b,
                Err(r) => return r.into_response(),
            };
            for ignored in ["groupName", "catalogName", "code"] {
                body.remove(ignored);
            }
            let spec = match serde_json::from_value(Value::Object(body)) {
                Ok(s) => s,
                Err(e) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        &format!("not a registry definition: {e}"),
                    )
                }
            };
            let backend = format!("{}{PREFIX}", state.config.public_url.trim_end_matches('/'));
            match service::define_and_publish(
                regs,
                state.exchange.registry(),
                provider,
                spec,
                &claims.sub,
                &backend,
            )
            .await
            {
                Ok(def) => Json(database_info(state, &def)).into_response(),
                Err(e) => registry_error(e).into_response(),
            }
        }
        _ => refuse(StatusCode::NOT_FOUND, "no such Database API operation"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str) -> Claims {
        Claims {
            iss: "i".into(),
            aud: "TH/GOV/DOPA/CIVREG/person-v1".into(),
            sub: "TH/GOV/DBD/REGISTRY".into(),
            iat: 0,
            exp: saphan_core::clock::now_unix() + 60,
            jti: jti.into(),
            x_road_id: "x".into(),
            user: None,
            data_subject_id: None,
            data_subject: None,
            purpose: None,
            consent: None,
            issue: None,
            req_hash: None,
            req_headers_hash: String::new(),
            fields: None,
        }
    }

    #[test]
    fn an_assertion_makes_one_change_only() {
        let c = claims(&uuid::Uuid::new_v4().to_string());
        assert!(spend(&c));
        assert!(!spend(&c), "a replayed change is refused");
        assert!(spend(&claims(&uuid::Uuid::new_v4().to_string())));
        assert!(changes(&Method::POST, "/data/person/1.0/create"));
        assert!(changes(&Method::PUT, "/data/person/1.0/update"));
        assert!(changes(&Method::DELETE, "/data/person/1.0/1/delete"));
        assert!(!changes(&Method::POST, "/data/person/1.0/read"));
        assert!(!changes(&Method::POST, "/data/person/1.0/exists"));
        assert!(!changes(&Method::GET, "/data/person/1.0"));
    }
}
