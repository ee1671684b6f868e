//! The deterministic generator. Every household, company and foreigner is a pure function of
//! the seed and its index, so a population of any size streams out in constant memory, can be
//! resumed from any index, and is the same on every machine.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use saphan_core::NationalId;
use serde_json::{json, Map, Value};

use crate::data::{facts, Subdistrict};

/// The year the population's ages are counted from.
const THIS_YEAR: i32 = 2026;
/// Members per household at most (person ids are spaced by this).
const MAX_MEMBERS: u64 = 8;
/// Persons per company, on average.
pub const PERSONS_PER_COMPANY: u64 = 60;
/// Persons per foreigner recorded, on average.
pub const PERSONS_PER_FOREIGNER: u64 = 150;

/// One household: its house record, its members' person records (householder first) and the
/// ID cards of those old enough to hold one (with the laser code in clear, to be hashed by the
/// registry).
#[derive(Debug, Clone)]
pub struct Household {
    pub house: Value,
    pub persons: Vec<Value>,
    pub cards: Vec<Value>,
}

/// A laser code as on the back of a Thai ID card: two letters, ten digits.
pub fn laser_code(rng: &mut impl Rng) -> String {
    format!(
        "{}{}{:010}",
        char::from(b'A' + rng.gen_range(0..26)),
        char::from(b'A' + rng.gen_range(0..26)),
        rng.gen_range(0..10_000_000_000u64)
    )
}

/// The ID card of `person` (a person record), issued in `issued_year`.
pub fn card_of(person: &Value, laser: &str, issued_year: i32, rng: &mut impl Rng) -> Value {
    let issued = date(issued_year, rng);
    let expiry = format!("{}{}", issued_year + 8, &issued[4..]);
    let mut card = Map::new();
    for field in [
        "nationalId",
        "firstNameTh",
        "lastNameTh",
        "firstNameEn",
        "lastNameEn",
        "birthDate",
    ] {
        if let Some(v) = person.get(field) {
            card.insert(field.into(), v.clone());
        }
    }
    card.insert("laserCode".into(), json!(laser));
    card.insert("issuedDate".into(), json!(issued));
    card.insert("expiryDate".into(), json!(expiry));
    card.insert("status".into(), json!("valid"));
    Value::Object(card)
}

#[derive(Debug, Clone, Copy)]
pub struct Generator {
    seed: u64,
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser: decorrelates neighbouring indexes.
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A bijection on 0..10^digits (multiplication by a unit mod 10^n, then an offset): distinct
/// inputs give distinct, random-looking outputs.
fn scramble(n: u64, digits: u32) -> u64 {
    let modulus = 10u64.pow(digits);
    ((u128::from(n % modulus) * 7_380_235_473_u128 + 1_234_567) % u128::from(modulus)) as u64
}

fn date(year: i32, rng: &mut impl Rng) -> String {
    format!(
        "{year:04}-{:02}-{:02}",
        rng.gen_range(1..=12),
        rng.gen_range(1..=28)
    )
}

fn address(sub: &Subdistrict, rng: &mut impl Rng) -> Map<String, Value> {
    let bangkok = sub.province_code == "10";
    let mut a = Map::new();
    let house_no = if rng.gen_bool(0.3) {
        format!("{}/{}", rng.gen_range(1..400), rng.gen_range(1..60))
    } else {
        rng.gen_range(1..999).to_string()
    };
    a.insert("houseNo".into(), json!(house_no));
    if !bangkok {
        a.insert("moo".into(), json!(rng.gen_range(1..=15)));
    }
    if bangkok || rng.gen_bool(0.2) {
        a.insert("soi".into(), json!(format!("ซอย {}", rng.gen_range(1..80))));
    }
    for (k, v) in [
        ("subdistrictCode", sub.code),
        ("subdistrictTh", sub.name_th),
        ("subdistrictEn", sub.name_en),
        ("districtCode", sub.district_code),
        ("districtTh", sub.district_th),
        ("districtEn", sub.district_en),
        ("provinceCode", sub.province_code),
        ("provinceTh", sub.province_th),
        ("provinceEn", sub.province_en),
        ("postcode", sub.postcode),
    ] {
        a.insert(k.into(), json!(v));
    }
    a
}

struct Member {
    id: String,
    male: bool,
    age: i32,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator { seed }
    }

    fn rng(&self, kind: u64, index: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(mix(self.seed ^ mix(kind ^ mix(index))))
    }

    /// A sub-district, its province drawn by registered population.
    fn place(&self, rng: &mut impl Rng) -> &'static Subdistrict {
        let f = facts();
        let total = *f.cumulative.last().expect("provinces");
        let pick = rng.gen_range(0..total);
        let p = f.cumulative.partition_point(|&c| c <= pick);
        let province = &f.provinces[p.min(f.provinces.len() - 1)];
        &f.subdistricts[province.subdistricts[rng.gen_range(0..province.subdistricts.len())]]
    }

    /// The national id of member `m` of household `h`: distinct for every (h, m).
    pub fn person_id(&self, h: u64, m: u64, born: i32) -> String {
        // Thai numbers start with 1 for people registered at birth since 1984, 3 before.
        let first = if born >= 1984 { 1 } else { 3 };
        NationalId::from_parts(first, scramble(h * MAX_MEMBERS + m, 11))
            .expect("first digit and body in range")
            .digits()
    }

    /// The house id of household `h`: its district's code and a distinct running number.
    fn house_id(&self, h: u64, district: &str) -> String {
        format!("{district}{:07}", scramble(h, 7))
    }

    /// Household `h`. Up to 10^7 households (about 30 million people) are distinct.
    pub fn household(&self, h: u64) -> Household {
        let f = facts();
        let mut rng = self.rng(1, h);
        let sub = self.place(&mut rng);
        let house_id = self.house_id(h, sub.district_code);
        let (family_th, family_en) = f.family[rng.gen_range(0..f.family.len())];
        let mut members: Vec<Member> = Vec::new();
        let mut persons: Vec<Value> = Vec::new();
        let head_age = rng.gen_range(22..85);
        let head_male = rng.gen_bool(0.6);
        let couple = head_age > 24 && rng.gen_bool(0.65);
        let children = if couple && head_age < 70 {
            rng.gen_range(0..=3)
        } else {
            0
        };
        let grandparent = head_age < 55 && rng.gen_bool(0.15);
        let mut plan = vec![(head_male, head_age)];
        if couple {
            plan.push((!head_male, (head_age + rng.gen_range(-5..=5)).max(20)));
        }
        for _ in 0..children {
            plan.push((
                rng.gen_bool(0.51),
                rng.gen_range(0..(head_age - 18).clamp(1, 30)),
            ));
        }
        if grandparent {
            plan.push((
                rng.gen_bool(0.4),
                (head_age + rng.gen_range(22..32)).min(99),
            ));
        }
        for (m, (male, age)) in plan.iter().enumerate() {
            members.push(Member {
                id: self.person_id(h, m as u64, THIS_YEAR - age),
                male: *male,
                age: *age,
            });
        }
        for (m, member) in members.iter().enumerate() {
            let (given_th, given_en) = if member.male {
                f.male[rng.gen_range(0..f.male.len())]
            } else {
                f.female[rng.gen_range(0..f.female.len())]
            };
            let (title_th, title_en) = match (member.male, member.age) {
                (true, a) if a < 15 => ("เด็กชาย", "Master"),
                (false, a) if a < 15 => ("เด็กหญิง", "Miss"),
                (true, _) => ("นาย", "Mr."),
                (false, _) if m < 2 && couple => ("นาง", "Mrs."),
                (false, _) => ("นางสาว", "Miss"),
            };
            let born = THIS_YEAR - member.age;
            let mut p = Map::new();
            p.insert("nationalId".into(), json!(member.id));
            p.insert("titleTh".into(), json!(title_th));
            p.insert("firstNameTh".into(), json!(given_th));
            p.insert("lastNameTh".into(), json!(family_th));
            p.insert("titleEn".into(), json!(title_en));
            p.insert("firstNameEn".into(), json!(given_en));
            p.insert("lastNameEn".into(), json!(family_en));
            p.insert("birthDate".into(), json!(date(born, &mut rng)));
            p.insert(
                "gender".into(),
                json!(if member.male { "male" } else { "female" }),
            );
            p.insert("nationality".into(), json!("THA"));
            let dead = member.age > 60 && rng.gen_bool(0.01);
            p.insert("status".into(), json!(if dead { "dead" } else { "alive" }));
            if dead {
                p.insert("deathDate".into(), json!(date(THIS_YEAR - 1, &mut rng)));
            }
            p.insert("houseId".into(), json!(house_id));
            if couple && m < 2 {
                p.insert("spouseId".into(), json!(members[1 - m].id));
            }
            let is_child = couple && m >= 2 && m < 2 + children;
            if is_child {
                let (father, mother) = if members[0].male { (0, 1) } else { (1, 0) };
                p.insert("fatherId".into(), json!(members[father].id));
                p.insert("motherId".into(), json!(members[mother].id));
            }
            persons.push(Value::Object(p));
        }
        let mut cards = Vec::new();
        for (person, member) in persons.iter().zip(&members) {
            if member.age >= 7 && person["status"] == "alive" {
                let laser = laser_code(&mut rng);
                let issued = THIS_YEAR - rng.gen_range(0..8);
                cards.push(card_of(person, &laser, issued, &mut rng));
            }
        }
        let mut house = address(sub, &mut rng);
        house.insert("houseId".into(), json!(house_id));
        house.insert("householderId".into(), json!(members[0].id));
        house.insert(
            "members".into(),
            json!(members.iter().map(|m| m.id.clone()).collect::<Vec<_>>()),
        );
        Household {
            house: Value::Object(house),
            persons,
            cards,
        }
    }

    /// Company `c`: its directors are the adults of households near `c`'s share of the
    /// population (regenerated, so nothing is kept in memory).
    pub fn company(&self, c: u64, households: u64) -> Value {
        let mut rng = self.rng(2, c);
        let sub = self.place(&mut rng);
        let mut directors = Vec::new();
        let want = rng.gen_range(1..=3);
        let mut h = (c * PERSONS_PER_COMPANY / 3) % households.max(1);
        let mut visited = 0;
        while directors.len() < want && visited < households.max(1) {
            visited += 1;
            let household = self.household(h);
            if let Some(adult) = household.persons.iter().find(|p| {
                p["birthDate"]
                    .as_str()
                    .and_then(|d| d[..4].parse::<i32>().ok())
                    .is_some_and(|y| THIS_YEAR - y >= 20)
                    && !directors.contains(&p["nationalId"])
            }) {
                directors.push(adult["nationalId"].clone());
            }
            h = (h + 1) % households.max(1);
        }
        const WORDS: &[(&str, &str)] = &[
            ("รุ่งเรือง", "Rungruang"),
            ("สยาม", "Siam"),
            ("ไทยพัฒนา", "Thai Phatthana"),
            ("มั่นคง", "Mankhong"),
            ("เจริญ", "Charoen"),
            ("ก้าวหน้า", "Kaona"),
            ("ศรีสุข", "Srisuk"),
            ("อุดม", "Udom"),
        ];
        const TRADES: &[(&str, &str)] = &[
            ("อาหาร", "Food"),
            ("ก่อสร้าง", "Construction"),
            ("เทรดดิ้ง", "Trading"),
            ("เทคโนโลยี", "Technology"),
            ("ขนส่ง", "Logistics"),
            ("การเกษตร", "Agriculture"),
        ];
        let (w_th, w_en) = WORDS[rng.gen_range(0..WORDS.len())];
        let (t_th, t_en) = TRADES[rng.gen_range(0..TRADES.len())];
        let kind = match rng.gen_range(0..100) {
            0..=79 => "company-limited",
            80..=81 => "public-company-limited",
            82..=94 => "limited-partnership",
            _ => "registered-ordinary-partnership",
        };
        let (prefix_th, suffix_th, suffix_en) = match kind {
            "company-limited" => ("บริษัท ", " จำกัด", " Co., Ltd."),
            "public-company-limited" => ("บริษัท ", " จำกัด (มหาชน)", " Public Co., Ltd."),
            "limited-partnership" => ("ห้างหุ้นส่วนจำกัด ", "", " Limited Partnership"),
            _ => ("ห้างหุ้นส่วนสามัญนิติบุคคล ", "", " Registered Partnership"),
        };
        let id = juristic_id(c);
        let mut r = address(sub, &mut rng);
        r.insert("juristicId".into(), json!(id));
        r.insert(
            "nameTh".into(),
            json!(format!("{prefix_th}{w_th}{t_th} {}{suffix_th}", c % 1000)),
        );
        r.insert(
            "nameEn".into(),
            json!(format!("{w_en} {t_en} {}{suffix_en}", c % 1000)),
        );
        r.insert("type".into(), json!(kind));
        r.insert(
            "registeredCapital".into(),
            json!(rng.gen_range(1..=500) * 100_000),
        );
        r.insert(
            "registeredDate".into(),
            json!(date(rng.gen_range(1980..THIS_YEAR), &mut rng)),
        );
        r.insert("directors".into(), json!(directors));
        r.insert(
            "status".into(),
            json!(match rng.gen_range(0..100) {
                0..=87 => "active",
                88..=95 => "dissolved",
                _ => "closed",
            }),
        );
        r.insert("objective".into(), json!(format!("{t_th} / {t_en}")));
        Value::Object(r)
    }

    /// Foreigner `k`.
    pub fn foreigner(&self, k: u64) -> Value {
        const NATIONS: &[(&str, u32)] = &[
            ("MMR", 30),
            ("KHM", 15),
            ("LAO", 12),
            ("CHN", 12),
            ("JPN", 5),
            ("IND", 4),
            ("GBR", 4),
            ("USA", 4),
            ("DEU", 3),
            ("FRA", 3),
            ("KOR", 3),
            ("VNM", 3),
            ("AUS", 2),
        ];
        const GIVEN: &[&str] = &[
            "Aung", "Sokha", "Khamla", "Wei", "Yuki", "Arjun", "Oliver", "Emma", "Lukas", "Lea",
            "Minjun", "Linh", "Jack", "Mya", "Dara", "Noy", "Li", "Haruto", "Priya", "Sophie",
        ];
        const FAMILY: &[&str] = &[
            "Win",
            "Chan",
            "Phommavong",
            "Wang",
            "Sato",
            "Sharma",
            "Smith",
            "Muller",
            "Martin",
            "Kim",
            "Nguyen",
            "Brown",
            "Tun",
            "Sok",
            "Zhang",
            "Tanaka",
            "Patel",
            "Dubois",
        ];
        const VISAS: &[&str] = &[
            "Non-Immigrant B",
            "Non-Immigrant O",
            "Non-Immigrant O-A",
            "Non-Immigrant ED",
            "Non-Immigrant L-A",
            "Tourist TR",
            "Long-Term Resident",
        ];
        let mut rng = self.rng(3, k);
        let total: u32 = NATIONS.iter().map(|(_, w)| w).sum();
        let mut pick = rng.gen_range(0..total);
        let nation = NATIONS
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map(|(n, _)| *n)
            .unwrap_or("MMR");
        let passport = format!(
            "{}{}{:07}",
            char::from(b'A' + rng.gen_range(0..26)),
            char::from(b'A' + rng.gen_range(0..26)),
            scramble(k, 7)
        );
        let sub = self.place(&mut rng);
        let arrived_days = rng.gen_range(1..700);
        let arrival = days_before(THIS_YEAR, arrived_days);
        let mut r = address(sub, &mut rng);
        r.insert("foreignerId".into(), json!(format!("{nation}-{passport}")));
        r.insert("passportNumber".into(), json!(passport));
        r.insert("nationality".into(), json!(nation));
        r.insert(
            "firstName".into(),
            json!(GIVEN[rng.gen_range(0..GIVEN.len())]),
        );
        r.insert(
            "lastName".into(),
            json!(FAMILY[rng.gen_range(0..FAMILY.len())]),
        );
        r.insert(
            "birthDate".into(),
            json!(date(THIS_YEAR - rng.gen_range(20..70), &mut rng)),
        );
        r.insert(
            "gender".into(),
            json!(if rng.gen_bool(0.5) { "male" } else { "female" }),
        );
        r.insert(
            "visaType".into(),
            json!(VISAS[rng.gen_range(0..VISAS.len())]),
        );
        r.insert("arrivalDate".into(), json!(arrival));
        r.insert(
            "permittedUntil".into(),
            json!(days_before(THIS_YEAR, arrived_days - 365)),
        );
        r.insert(
            "tm6Number".into(),
            json!(format!(
                "{}{:06}",
                char::from(b'A' + rng.gen_range(0..26)),
                rng.gen_range(0..1_000_000)
            )),
        );
        if arrived_days > 90 {
            let since_report = rng.gen_range(0..90);
            r.insert(
                "last90DayReport".into(),
                json!(days_before(THIS_YEAR, since_report)),
            );
        }
        Value::Object(r)
    }
}

/// The date `days` days before 1 July of `year` (negative: after), as YYYY-MM-DD.
fn days_before(year: i32, days: i64) -> String {
    let base = time::Date::from_calendar_date(year, time::Month::July, 1).expect("valid date");
    let d = base - time::Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A juristic-person id for company `c`: 0, eleven digits, the check digit (mod 11, as the
/// national id's).
fn juristic_id(c: u64) -> String {
    let body = format!("0{:011}", scramble(c, 11));
    let digits: Vec<u32> = body
        .chars()
        .map(|ch| ch.to_digit(10).unwrap_or(0))
        .collect();
    let sum: u32 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| d * (13 - i as u32))
        .sum();
    format!("{body}{}", (11 - sum % 11) % 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generation_is_deterministic_distinct_and_valid() {
        let g = Generator::new(42);
        let mut ids = HashSet::new();
        let mut houses = HashSet::new();
        for h in 0..2000 {
            let a = g.household(h);
            let b = Generator::new(42).household(h);
            assert_eq!(a.house, b.house);
            assert_eq!(a.persons, b.persons);
            assert!(houses.insert(a.house["houseId"].as_str().unwrap().to_string()));
            for p in &a.persons {
                let id = p["nationalId"].as_str().unwrap();
                assert!(id.parse::<NationalId>().is_ok(), "{id}");
                assert!(ids.insert(id.to_string()), "duplicate {id}");
            }
        }
        assert_ne!(Generator::new(43).household(0).house, g.household(0).house);
        let company = g.company(5, 2000);
        assert!(saphan_core::parse_juristic_id(company["juristicId"].as_str().unwrap()).is_ok());
        assert!(!company["directors"].as_array().unwrap().is_empty());
        let f = g.foreigner(3);
        assert!(f["foreignerId"].as_str().unwrap().contains('-'));
    }

    #[test]
    fn the_demo_definitions_accept_what_the_generator_makes() {
        let g = Generator::new(7);
        let person = jsonschema::validator_for(&crate::definitions::person().schema).unwrap();
        let house = jsonschema::validator_for(&crate::definitions::house().schema).unwrap();
        let juristic = jsonschema::validator_for(&crate::definitions::juristic().schema).unwrap();
        let foreigner = jsonschema::validator_for(&crate::definitions::foreigner().schema).unwrap();
        let card = jsonschema::validator_for(&crate::definitions::idcard().schema).unwrap();
        for h in 0..300 {
            let hh = g.household(h);
            assert!(house.is_valid(&hh.house), "{}", hh.house);
            for c in &hh.cards {
                assert!(card.is_valid(c), "{c}");
            }
            for p in &hh.persons {
                let errors: Vec<String> = person.iter_errors(p).map(|e| e.to_string()).collect();
                assert!(errors.is_empty(), "{p}: {errors:?}");
            }
        }
        for c in 0..50 {
            let r = g.company(c, 300);
            assert!(juristic.is_valid(&r), "{r}");
            let f = g.foreigner(c);
            assert!(foreigner.is_valid(&f), "{f}");
        }
    }
}
