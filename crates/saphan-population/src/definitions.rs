//! The demo registries: who hosts each (an exchange subsystem) and its definition.

use saphan_registry::NewDefinition;
use serde_json::{json, Value};

/// The civil-registration subsystem (persons, houses).
pub const CIVIL: &str = "GOV/DOPA/CIVREG";
/// The business registry's subsystem (juristic persons).
pub const BUSINESS: &str = "GOV/DBD/REGISTRY";
/// The immigration registry's subsystem (foreigners).
pub const IMMIGRATION: &str = "GOV/IMM/IMMREG";

fn address_properties() -> Value {
    json!({
        "houseNo": {"type": "string", "maxLength": 20, "description": "บ้านเลขที่"},
        "moo": {"type": "integer", "minimum": 1, "maximum": 99, "description": "หมู่ที่"},
        "soi": {"type": "string", "maxLength": 100},
        "road": {"type": "string", "maxLength": 100},
        "subdistrictCode": {"type": "string", "pattern": "^[0-9]{6}$", "description": "DOPA sub-district (tambon/khwaeng) code"},
        "subdistrictTh": {"type": "string"}, "subdistrictEn": {"type": "string"},
        "districtCode": {"type": "string", "pattern": "^[0-9]{4}$"},
        "districtTh": {"type": "string"}, "districtEn": {"type": "string"},
        "provinceCode": {"type": "string", "pattern": "^[0-9]{2}$"},
        "provinceTh": {"type": "string"}, "provinceEn": {"type": "string"},
        "postcode": {"type": "string", "pattern": "^[0-9]{5}$"}
    })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties})
}

fn merge(a: Value, b: Value) -> Value {
    let mut a = a;
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

fn definition(v: Value) -> NewDefinition {
    serde_json::from_value(v).expect("the demo definitions are well-formed (checked by a test)")
}

/// Persons of the civil registry (ทะเบียนราษฎร).
pub fn person() -> NewDefinition {
    let nid = json!({"type": "string", "pattern": "^[1-8][0-9]{12}$"});
    definition(json!({
        "name": "person", "version": "1.0", "service_code": "person-v1",
        "title_th": "ข้อมูลบุคคลตามทะเบียนราษฎร (สังเคราะห์)",
        "title_en": "Persons in the civil registry (synthetic)",
        "description": "One person by 13-digit national id: names in Thai and English, birth date, gender, nationality, alive or dead, house, parents and spouse.",
        "schema": object(
            &["nationalId", "titleTh", "firstNameTh", "lastNameTh", "birthDate", "gender", "nationality", "status"],
            json!({
                "nationalId": nid,
                "titleTh": {"type": "string"}, "firstNameTh": {"type": "string", "minLength": 1}, "lastNameTh": {"type": "string", "minLength": 1},
                "titleEn": {"type": "string"}, "firstNameEn": {"type": "string"}, "lastNameEn": {"type": "string"},
                "birthDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                "gender": {"type": "string", "enum": ["male", "female"]},
                "nationality": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "status": {"type": "string", "enum": ["alive", "dead"]},
                "deathDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                "houseId": {"type": "string", "pattern": "^[0-9]{11}$"},
                "fatherId": nid, "motherId": nid, "spouseId": nid
            })
        ),
        "id_field": "nationalId",
        "personal": ["titleTh", "firstNameTh", "lastNameTh", "titleEn", "firstNameEn", "lastNameEn", "birthDate", "gender", "nationality", "status", "deathDate", "houseId", "fatherId", "motherId", "spouseId"],
        "indexed": ["lastNameTh", "firstNameTh", "houseId", "fatherId", "motherId"],
        "subject_field": "nationalId"
    }))
}

/// Houses of the house registration (ทะเบียนบ้าน).
pub fn house() -> NewDefinition {
    definition(json!({
        "name": "house", "version": "1.0", "service_code": "house-v1",
        "title_th": "ข้อมูลทะเบียนบ้าน (สังเคราะห์)",
        "title_en": "House registration (synthetic)",
        "description": "One house by its 11-digit house id (district code + running number): the full Thai address with DOPA codes and postcode, its householder and members.",
        "schema": object(
            &["houseId", "houseNo", "subdistrictCode", "districtCode", "provinceCode", "postcode", "members"],
            merge(address_properties(), json!({
                "houseId": {"type": "string", "pattern": "^[0-9]{11}$"},
                "householderId": {"type": "string", "pattern": "^[0-9]{13}$"},
                "members": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]{13}$"}}
            }))
        ),
        "id_field": "houseId",
        "personal": ["householderId", "members"],
        "indexed": ["subdistrictCode", "districtCode", "provinceCode", "postcode", "householderId"]
    }))
}

/// Juristic persons of the business registry (นิติบุคคล).
pub fn juristic() -> NewDefinition {
    definition(json!({
        "name": "juristic", "version": "1.0", "service_code": "juristic-v1",
        "title_th": "ข้อมูลนิติบุคคล (สังเคราะห์)",
        "title_en": "Juristic persons (synthetic)",
        "description": "One company or partnership by 13-digit juristic-person id: names, type, registered capital, directors (national ids), registered address and status.",
        "schema": object(
            &["juristicId", "nameTh", "type", "registeredCapital", "registeredDate", "directors", "status", "provinceCode"],
            merge(address_properties(), json!({
                "juristicId": {"type": "string", "pattern": "^0[0-9]{12}$"},
                "nameTh": {"type": "string"}, "nameEn": {"type": "string"},
                "type": {"type": "string", "enum": ["company-limited", "public-company-limited", "limited-partnership", "registered-ordinary-partnership"]},
                "registeredCapital": {"type": "integer", "minimum": 0},
                "registeredDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                "directors": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]{13}$"}},
                "status": {"type": "string", "enum": ["active", "dissolved", "closed"]},
                "objective": {"type": "string"}
            }))
        ),
        "id_field": "juristicId",
        "personal": ["directors"],
        "indexed": ["nameTh", "type", "status", "provinceCode"]
    }))
}

/// Foreigners known to the immigration registry (คนต่างด้าว).
pub fn foreigner() -> NewDefinition {
    definition(json!({
        "name": "foreigner", "version": "1.0", "service_code": "foreigner-v1",
        "title_th": "ข้อมูลคนต่างด้าว (สังเคราะห์)",
        "title_en": "Foreigners in Thailand (synthetic)",
        "description": "One foreigner by `<nationality>-<passport>`: passport, nationality, visa, arrival, permitted stay, address in Thailand and the last 90-day report (TM.47).",
        "schema": object(
            &["foreignerId", "passportNumber", "nationality", "firstName", "lastName", "birthDate", "gender", "visaType", "arrivalDate", "permittedUntil", "subdistrictCode", "provinceCode"],
            merge(address_properties(), json!({
                "foreignerId": {"type": "string", "pattern": "^[A-Z]{3}-[A-Z0-9]{6,12}$"},
                "passportNumber": {"type": "string", "pattern": "^[A-Z0-9]{6,12}$"},
                "nationality": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "firstName": {"type": "string"}, "lastName": {"type": "string"},
                "birthDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                "gender": {"type": "string", "enum": ["male", "female"]},
                "visaType": {"type": "string"},
                "arrivalDate": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                "permittedUntil": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                "tm6Number": {"type": "string"},
                "last90DayReport": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
            }))
        ),
        "id_field": "foreignerId",
        "personal": ["passportNumber", "firstName", "lastName", "birthDate", "gender", "houseNo", "moo", "soi", "road", "last90DayReport", "tm6Number"],
        "indexed": ["nationality", "passportNumber", "visaType", "provinceCode"]
    }))
}

/// National ID cards as issued (บัตรประจำตัวประชาชน): what is printed on the card, and its laser
/// code kept only as a keyed hash. Agencies check a card with `exists` (national id, names,
/// birth date and laser code together), as they do with DOPA's card-check service today.
pub fn idcard() -> NewDefinition {
    let date = json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"});
    definition(json!({
        "name": "idcard", "version": "1.0", "service_code": "idcard-v1",
        "title_th": "ตรวจสอบบัตรประจำตัวประชาชน (สังเคราะห์)",
        "title_en": "National ID card check (synthetic)",
        "description": "One card per national id. Ask `exists` with nationalId, firstNameTh, lastNameTh, birthDate and laserCode (two letters and ten digits, as on the back of the card): true when all match a card in force. The laser code is stored only as a keyed hash and never returned.",
        "schema": object(
            &["nationalId", "firstNameTh", "lastNameTh", "birthDate", "issuedDate", "expiryDate", "status"],
            json!({
                "nationalId": {"type": "string", "pattern": "^[1-8][0-9]{12}$"},
                "firstNameTh": {"type": "string"}, "lastNameTh": {"type": "string"},
                "firstNameEn": {"type": "string"}, "lastNameEn": {"type": "string"},
                "birthDate": date,
                "laserCode": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{10}$"},
                "issuedDate": date, "expiryDate": date,
                "status": {"type": "string", "enum": ["valid", "expired", "revoked"]}
            })
        ),
        "id_field": "nationalId",
        "personal": ["firstNameTh", "lastNameTh", "firstNameEn", "lastNameEn", "birthDate", "issuedDate", "expiryDate"],
        "sensitive": ["laserCode"],
        "hashed": ["laserCode"],
        "subject_field": "nationalId"
    }))
}

/// Every demo registry with the subsystem that hosts it.
pub fn all() -> Vec<(&'static str, NewDefinition)> {
    vec![
        (CIVIL, person()),
        (CIVIL, house()),
        (CIVIL, idcard()),
        (BUSINESS, juristic()),
        (IMMIGRATION, foreigner()),
    ]
}
