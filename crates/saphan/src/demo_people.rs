//! The demo's people: agencies, synthetic citizens, a foreigner, a business representative and
//! officials with roles, created through the same directory calls as real ones. Their sign-ins
//! are written to `demo-logins.json` in the data directory (owner-only) and a few are printed.

use std::path::PathBuf;

use futures::future::BoxFuture;
use rand::Rng;
use saphan_core::{NationalId, Text};
use saphan_identity::{totp, ActFor, Agency, Directory, Ial, LoginId, NewIdentity, Role, Subject};
use saphan_seed::{SeedContext, SeedResult, SeedStep};
use serde::{Deserialize, Serialize};

pub const LOGINS_FILE: &str = "demo-logins.json";

/// One demo sign-in, as `demo-logins.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoLogin {
    pub label: String,
    pub kind: String,
    pub identifier: String,
    pub nationality: Option<String>,
    pub password: String,
    pub totp_secret: Option<String>,
    pub ial: String,
    pub aal: u8,
}

const FIRST: &[(&str, &str)] = &[
    ("สมชาย", "Somchai"),
    ("สมหญิง", "Somying"),
    ("วิภา", "Wipa"),
    ("ประยุทธ", "Prayut"),
    ("กมล", "Kamon"),
    ("ชนิดา", "Chanida"),
    ("ธนพล", "Thanaphon"),
    ("พิมพ์ชนก", "Phimchanok"),
    ("อนุชา", "Anucha"),
    ("ศิริพร", "Siriporn"),
    ("วีระ", "Weera"),
    ("นภา", "Napha"),
];
const LAST: &[(&str, &str)] = &[
    ("ใจดี", "Jaidee"),
    ("รักไทย", "Rakthai"),
    ("ศรีสุข", "Srisuk"),
    ("มั่นคง", "Mankhong"),
    ("สุขสวัสดิ์", "Suksawat"),
    ("วงศ์ใหญ่", "Wongyai"),
    ("ทองดี", "Thongdee"),
    ("แก้วมณี", "Kaewmanee"),
];

pub struct DemoPeople {
    pub data_dir: PathBuf,
    /// Extra password-only citizens, for lists and load.
    pub extra_citizens: usize,
}

fn name(rng: &mut impl Rng) -> Text {
    let (f_th, f_en) = FIRST[rng.gen_range(0..FIRST.len())];
    let (l_th, l_en) = LAST[rng.gen_range(0..LAST.len())];
    Text::owned(format!("{f_th} {l_th}"), format!("{f_en} {l_en}"))
}

fn password(rng: &mut impl Rng) -> String {
    const WORDS: &[&str] = &[
        "mango", "river", "lotus", "temple", "monsoon", "orchid", "silk", "elephant", "jasmine",
        "bridge",
    ];
    format!(
        "{}-{}-{}",
        WORDS[rng.gen_range(0..WORDS.len())],
        WORDS[rng.gen_range(0..WORDS.len())],
        rng.gen_range(1000..10000)
    )
}

/// A juristic-person id shaped like the Department of Business Development's: 0, then eleven
/// digits, then the check digit.
fn juristic_id(rng: &mut impl Rng) -> String {
    loop {
        let body: String = std::iter::once('0')
            .chain((0..11).map(|_| char::from(b'0' + rng.gen_range(0..10u8))))
            .collect();
        for check in 0..10 {
            let candidate = format!("{body}{check}");
            if saphan_core::parse_juristic_id(&candidate).is_ok() {
                return candidate;
            }
        }
    }
}

struct Person {
    label: &'static str,
    kind: &'static str,
    login: LoginId,
    ial: Ial,
    proofing: &'static str,
    totp: bool,
    roles: Vec<(&'static str, Role)>,
    act_for: Option<(&'static str, &'static str)>,
}

impl SeedStep for DemoPeople {
    fn name(&self) -> &'static str {
        "identity.demo-people"
    }

    fn run<'a>(&'a self, ctx: &'a mut SeedContext) -> BoxFuture<'a, SeedResult> {
        Box::pin(async move {
            let directory = ctx
                .service::<Directory>()
                .ok_or_else(|| ctx.fail("the directory is not available"))?;
            let fail = |e: saphan_identity::IdentityError| ctx.fail(e);
            // The agencies the demo's procedures name, and DBD.
            for (code, th, en) in saphan_procedures::demo::AGENCIES.into_iter().chain([(
                "dbd",
                "กรมพัฒนาธุรกิจการค้า",
                "Department of Business Development",
            )]) {
                directory
                    .upsert_agency(
                        "system:demo",
                        &Agency {
                            code: code.into(),
                            name: Text::owned(th, en),
                        },
                    )
                    .await
                    .map_err(fail)?;
            }
            let mut rng = ctx.rng.clone();
            let mut nid = || LoginId::NationalId(NationalId::synthetic(&mut rng));
            let people = vec![
                Person {
                    label: "citizen (password + TOTP)",
                    kind: "citizen",
                    login: nid(),
                    ial: Ial::L2_3,
                    proofing: "counter:chip-card",
                    totp: true,
                    roles: vec![],
                    act_for: None,
                },
                Person {
                    label: "citizen (password only)",
                    kind: "citizen",
                    login: nid(),
                    ial: Ial::L2_1,
                    proofing: "remote:dopa-registry",
                    totp: false,
                    roles: vec![],
                    act_for: None,
                },
                Person {
                    label: "business representative",
                    kind: "business",
                    login: nid(),
                    ial: Ial::L2_3,
                    proofing: "counter:chip-card",
                    totp: true,
                    roles: vec![],
                    act_for: Some(("บริษัท สาธิตการค้า จำกัด", "director")),
                },
                Person {
                    label: "official: DOPA agency administrator and procedure editor",
                    kind: "official",
                    login: nid(),
                    ial: Ial::L2_3,
                    proofing: "counter:chip-card",
                    totp: true,
                    roles: vec![("dopa", Role::AgencyAdmin), ("dopa", Role::ProcedureEditor)],
                    act_for: None,
                },
                Person {
                    label: "official: DOPA reviewer",
                    kind: "official",
                    login: nid(),
                    ial: Ial::L2_3,
                    proofing: "counter:chip-card",
                    totp: true,
                    roles: vec![("dopa", Role::Reviewer)],
                    act_for: None,
                },
                Person {
                    label: "official: DBD approver and signer",
                    kind: "official",
                    login: nid(),
                    ial: Ial::L2_3,
                    proofing: "counter:chip-card",
                    totp: true,
                    roles: vec![("dbd", Role::Approver), ("dbd", Role::Signer)],
                    act_for: None,
                },
                Person {
                    label: "official: platform administrator (DGA)",
                    kind: "official",
                    login: nid(),
                    ial: Ial::L3,
                    proofing: "counter:biometric",
                    totp: true,
                    roles: vec![("dga", Role::PlatformAdmin)],
                    act_for: None,
                },
                Person {
                    label: "official: DOPA approver",
                    kind: "official",
                    login: nid(),
                    ial: Ial::L2_3,
                    proofing: "counter:chip-card",
                    totp: true,
                    roles: vec![("dopa", Role::Approver)],
                    act_for: None,
                },
                Person {
                    label: "official: Demo City reviewer and approver",
                    kind: "official",
                    login: nid(),
                    ial: Ial::L2_3,
                    proofing: "counter:chip-card",
                    totp: true,
                    roles: vec![("demo-city", Role::Reviewer), ("demo-city", Role::Approver)],
                    act_for: None,
                },
                Person {
                    label: "official: DPT reviewer and approver",
                    kind: "official",
                    login: nid(),
                    ial: Ial::L2_3,
                    proofing: "counter:chip-card",
                    totp: true,
                    roles: vec![("dpt", Role::Reviewer), ("dpt", Role::Approver)],
                    act_for: None,
                },
                Person {
                    label: "official: Immigration approver",
                    kind: "official",
                    login: nid(),
                    ial: Ial::L2_3,
                    proofing: "counter:chip-card",
                    totp: true,
                    roles: vec![("imm", Role::Approver)],
                    act_for: None,
                },
            ];
            let passport = format!("P{}", rng.gen_range(10_000_000..99_999_999));
            let later_passport = format!("P{}", rng.gen_range(10_000_000..99_999_999));
            let mut people = people;
            // A second foreigner, whose 90-day report is not due yet (the filing window's
            // refusal, to try).
            people.push(Person {
                label: "foreigner, 90-day report not yet due (passport, password + TOTP)",
                kind: "foreigner",
                login: LoginId::Passport {
                    number: later_passport,
                    nationality: "JPN".into(),
                },
                ial: Ial::L2_1,
                proofing: "counter:passport",
                totp: true,
                roles: vec![],
                act_for: None,
            });
            people.insert(
                2,
                Person {
                    label: "foreigner (passport, password + TOTP)",
                    kind: "foreigner",
                    login: LoginId::Passport {
                        number: passport,
                        nationality: "GBR".into(),
                    },
                    ial: Ial::L2_1,
                    proofing: "counter:passport",
                    totp: true,
                    roles: vec![],
                    act_for: None,
                },
            );

            let bar = ctx.progress((people.len() + self.extra_citizens) as u64);
            let mut logins = Vec::new();
            for person in people {
                let password = password(&mut rng);
                let identity = match directory
                    .create(
                        "system:demo",
                        NewIdentity {
                            login: person.login.clone(),
                            name: name(&mut rng),
                            ial: person.ial,
                            proofing: person.proofing.into(),
                        },
                    )
                    .await
                {
                    Ok(i) => i,
                    // A run cut short earlier made this one already.
                    Err(saphan_identity::IdentityError::Duplicate) => directory
                        .find(&person.login)
                        .await
                        .map_err(fail)?
                        .ok_or_else(|| ctx.fail("identity vanished"))?,
                    Err(e) => return Err(fail(e)),
                };
                directory
                    .set_password("system:demo", &identity.id, &password)
                    .await
                    .map_err(fail)?;
                let secret: Option<Vec<u8>> =
                    person.totp.then(|| (0..20).map(|_| rng.gen()).collect());
                if let Some(secret) = &secret {
                    directory
                        .store_totp_secret(&identity.id, secret)
                        .await
                        .map_err(fail)?;
                }
                for (agency, role) in &person.roles {
                    directory
                        .grant_role(&Subject::Operator, &identity.id, agency, *role)
                        .await
                        .map_err(fail)?;
                }
                if let Some((company, capacity)) = person.act_for {
                    directory
                        .add_act_for(
                            "system:demo",
                            &identity.id,
                            &ActFor {
                                juristic_id: juristic_id(&mut rng),
                                juristic_name: company.into(),
                                capacity: capacity.into(),
                                source: "dbd:registry".into(),
                                valid_from: "2024-01-01T00:00:00.000000Z".into(),
                                valid_until: None,
                            },
                        )
                        .await
                        .map_err(fail)?;
                }
                let (identifier, nationality) = match &person.login {
                    LoginId::NationalId(n) => (n.digits(), None),
                    LoginId::Passport {
                        number,
                        nationality,
                    } => (number.clone(), Some(nationality.clone())),
                };
                logins.push(DemoLogin {
                    label: person.label.into(),
                    kind: person.kind.into(),
                    identifier,
                    nationality,
                    password,
                    totp_secret: secret.map(|s| totp::base32_encode(&s)),
                    ial: person.ial.as_str().into(),
                    aal: if person.totp { 2 } else { 1 },
                });
                bar.inc(1);
            }
            // Bulk citizens share one hash: hashing is the costly part, and nobody signs in as them
            // with a password they could not read from the logins file anyway.
            let shared = directory.hasher().hash(&password(&mut rng)).map_err(fail)?;
            for _ in 0..self.extra_citizens {
                let login = LoginId::NationalId(NationalId::synthetic(&mut rng));
                match directory
                    .create(
                        "system:demo",
                        NewIdentity {
                            login,
                            name: name(&mut rng),
                            ial: Ial::L2_1,
                            proofing: "remote:dopa-registry".into(),
                        },
                    )
                    .await
                {
                    Ok(identity) => directory
                        .store_password_hash(&identity.id, &shared)
                        .await
                        .map_err(fail)?,
                    Err(saphan_identity::IdentityError::Duplicate) => {}
                    Err(e) => return Err(fail(e)),
                }
                bar.inc(1);
            }
            bar.finish_and_clear();
            let text = serde_json::to_string_pretty(&logins).expect("json");
            crate::platform::write_private_file(&self.data_dir.join(LOGINS_FILE), &text, true)
                .map_err(|e| ctx.fail(e))?;
            Ok(())
        })
    }
}

/// The demo's sign-ins from `demo-logins.json` (none if it is missing or unreadable).
pub fn read_logins(data_dir: &std::path::Path) -> Vec<DemoLogin> {
    std::fs::read_to_string(data_dir.join(LOGINS_FILE))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Prints the demo's sign-ins from `demo-logins.json`, if it exists.
pub fn print_logins(data_dir: &std::path::Path, base: &str) {
    let path = data_dir.join(LOGINS_FILE);
    let logins = read_logins(data_dir);
    if logins.is_empty() {
        return;
    }
    println!(
        "  Sign in / เข้าสู่ระบบ:        {base}/account   (synthetic people; all in {})",
        path.display()
    );
    for login in logins.iter().take(4) {
        let id = match &login.nationality {
            Some(n) => format!("passport {} nationality {n}", login.identifier),
            None => login.identifier.clone(),
        };
        let second = login
            .totp_secret
            .as_ref()
            .map(|s| format!(" + TOTP secret {s}"))
            .unwrap_or_default();
        println!(
            "    {:<38} {id}  password {}{second}",
            login.label, login.password
        );
    }
}
