//! Seeding the demo registries: their members and subsystems on the exchange, their
//! definitions published as services, a generated population streamed in batches
//! (`saphan seed population`, and a small one in `saphan demo`), and the demo's own people made
//! persons of that population (same national ids and names, each in a generated house).

use std::sync::Arc;

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use saphan_exchange::registry::{NewMember, NewRight};
use saphan_exchange::MemberId;
use saphan_identity::{Directory, Subject};
use saphan_population::{definitions, load, DemoRegistries, Generator};
use saphan_registry::{service, Caller, Registries};
use saphan_seed::{SeedContext, SeedResult, SeedStep};
use serde_json::{json, Value};

/// The registries' hosts: members (with the agency whose officials administer them) and
/// subsystems.
const HOSTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "DOPA",
        "dopa",
        "กรมการปกครอง",
        "Department of Provincial Administration",
        "CIVREG",
    ),
    (
        "DBD",
        "dbd",
        "กรมพัฒนาธุรกิจการค้า",
        "Department of Business Development",
        "REGISTRY",
    ),
    (
        "IMM",
        "imm",
        "สำนักงานตรวจคนเข้าเมือง",
        "Immigration Bureau",
        "IMMREG",
    ),
];

/// The demo registries, defined and published on the exchange (idempotent).
pub async fn publish_demo_registries(
    registries: &Registries,
    exchange: &saphan_exchange::Registry,
    public_url: &str,
) -> Result<DemoRegistries> {
    let operator = Subject::Operator;
    for (code, agency, th, en, subsystem) in HOSTS {
        let made = exchange
            .create_member(
                &operator,
                &NewMember {
                    class: "GOV".into(),
                    code: (*code).into(),
                    name_th: (*th).into(),
                    name_en: (*en).into(),
                    agency: Some((*agency).into()),
                },
            )
            .await;
        already_there(made.map(|_| ()))?;
        let member = MemberId::parse(&format!("GOV/{code}"))?;
        already_there(
            exchange
                .create_subsystem(&operator, &member, subsystem)
                .await
                .map(|_| ()),
        )?;
    }
    let backend = format!(
        "{}{}",
        public_url.trim_end_matches('/'),
        saphan_web::REGISTRY_BACKEND
    );
    let mut defs = Vec::new();
    for (provider, spec) in definitions::all() {
        defs.push(
            service::define_and_publish(
                registries,
                exchange,
                provider,
                spec,
                "platform:seed",
                &backend,
            )
            .await
            .with_context(|| format!("publishing the registries of {provider}"))?,
        );
    }
    DemoRegistries::from_ordered(defs).context("the demo registries")
}

fn already_there(r: Result<(), saphan_exchange::ExchangeError>) -> Result<()> {
    match r {
        Ok(()) | Err(saphan_exchange::ExchangeError::Duplicate(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The demo's people (those in `demo-logins.json` with a national id) as persons of the civil
/// registry: the same id and name, each added to a house of the generated population.
pub async fn enrol_demo_people(
    registries: &Registries,
    directory: &Directory,
    defs: &DemoRegistries,
    seed: u64,
    data_dir: &std::path::Path,
) -> Result<usize> {
    let generator = Generator::new(seed);
    let caller = Caller::platform("demo identities are persons of the synthetic population");
    let logins = crate::demo_people::read_logins(data_dir);
    let mut enrolled = 0;
    let mut rng = <rand_chacha::ChaCha20Rng as rand::SeedableRng>::seed_from_u64(seed ^ 0x1dca4d);
    let mut cards_file = Vec::new();
    for (i, login) in logins
        .iter()
        .filter(|l| l.nationality.is_none())
        .enumerate()
    {
        let Ok(nid) = login.identifier.parse::<saphan_core::NationalId>() else {
            continue;
        };
        let Some(identity) = directory
            .find(&saphan_identity::LoginId::NationalId(nid))
            .await?
        else {
            continue;
        };
        let household = generator.household(i as u64);
        let split = |text: &str| {
            let mut parts = text.splitn(2, ' ');
            (
                parts.next().unwrap_or_default().to_string(),
                parts.next().unwrap_or("-").to_string(),
            )
        };
        let (first_th, last_th) = split(&identity.name.th);
        let (first_en, last_en) = split(&identity.name.en);
        let female = saphan_population::is_female_given_name(&first_th);
        let person = json!({
            "nationalId": nid.digits(),
            "titleTh": if female { "นางสาว" } else { "นาย" },
            "titleEn": if female { "Miss" } else { "Mr." },
            "firstNameTh": first_th, "lastNameTh": last_th,
            "firstNameEn": first_en, "lastNameEn": last_en,
            "birthDate": household.persons[0]["birthDate"],
            "gender": if female { "female" } else { "male" },
            "nationality": "THA", "status": "alive",
            "houseId": household.house["houseId"],
        });
        let laser = saphan_population::laser_code(&mut rng);
        let card = saphan_population::card_of(&person, &laser, 2024, &mut rng);
        cards_file.push(json!({
            "label": login.label, "nationalId": nid.digits(),
            "birthDate": person["birthDate"], "laserCode": laser,
        }));
        if registries
            .import(&defs.person, &caller, vec![person])
            .await?
            == 1
        {
            enrolled += 1;
        }
        registries.import(&defs.idcard, &caller, vec![card]).await?;
        let mut house = household.house.clone();
        let mut members: Vec<Value> = household
            .persons
            .iter()
            .map(|p| p["nationalId"].clone())
            .collect();
        members.push(json!(nid.digits()));
        house["members"] = Value::Array(members);
        registries
            .update_or_create(
                &defs.house,
                &caller,
                None,
                house.as_object().expect("houses are objects"),
            )
            .await?;
        // The companies a demo person acts for are in the business registry, with them as a
        // director, so that applying for one reads it through the exchange.
        for (c, relation) in directory.act_for(&identity.id).await?.iter().enumerate() {
            let mut company = generator.company(1_000_000 + i as u64 * 10 + c as u64, 1_000);
            company["juristicId"] = json!(relation.juristic_id);
            company["nameTh"] = json!(relation.juristic_name);
            company["directors"] = json!([nid.digits()]);
            if let Some(fields) = company.as_object_mut() {
                fields.remove("nameEn");
            }
            company["status"] = json!("active");
            registries
                .update_or_create(
                    &defs.juristic,
                    &caller,
                    None,
                    company.as_object().expect("companies are objects"),
                )
                .await?;
        }
    }
    // The demo's foreigners are in the immigration registry, with their passports and names.
    let first_foreigner = logins
        .iter()
        .position(|l| l.nationality.is_some())
        .unwrap_or_default();
    for (k, login) in logins.iter().enumerate() {
        let Some(nationality) = &login.nationality else {
            continue;
        };
        let Some(identity) = directory
            .find(&saphan_identity::LoginId::Passport {
                number: login.identifier.clone(),
                nationality: nationality.clone(),
            })
            .await?
        else {
            continue;
        };
        let mut record = generator.foreigner(k as u64);
        let (first, last) = identity
            .name
            .en
            .split_once(' ')
            .map(|(f, l)| (f.to_string(), l.to_string()))
            .unwrap_or_else(|| (identity.name.en.to_string(), "-".to_string()));
        record["foreignerId"] = json!(format!("{nationality}-{}", login.identifier));
        record["passportNumber"] = json!(login.identifier);
        record["nationality"] = json!(nationality);
        record["firstName"] = json!(first);
        record["lastName"] = json!(last);
        // The first foreigner's 90-day report falls due in ten days, so the demo can file TM.47
        // online now; the next ones reported 30 days ago, so theirs is not due yet.
        let today = time::OffsetDateTime::now_utc().date();
        let last_report = if k == first_foreigner { -80 } else { -30 };
        let day = |offset: i64| {
            let d = today + time::Duration::days(offset);
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        };
        record["arrivalDate"] = json!(day(-170));
        record["last90DayReport"] = json!(day(last_report));
        record["permittedUntil"] = json!(day(195));
        registries
            .import(&defs.foreigner, &caller, vec![record])
            .await?;
    }
    crate::platform::write_private_file(
        &data_dir.join(IDCARDS_FILE),
        &serde_json::to_string_pretty(&cards_file).expect("json"),
        true,
    )?;
    Ok(enrolled)
}

/// The demo people's ID cards (birth date and laser code, to try the card check with).
pub const IDCARDS_FILE: &str = "demo-idcards.json";

/// `saphan demo`'s step: the registries, a small population and the demo people in it; DBD's
/// registry subsystem may read persons' names and status (not birth dates) for its directors.
pub struct DemoPopulation {
    pub persons: u64,
    pub seed: u64,
    pub public_url: String,
    pub data_dir: std::path::PathBuf,
}

impl SeedStep for DemoPopulation {
    fn name(&self) -> &'static str {
        "registry.demo-population"
    }

    fn run<'a>(&'a self, ctx: &'a mut SeedContext) -> BoxFuture<'a, SeedResult> {
        Box::pin(async move {
            let registries = ctx
                .service::<Registries>()
                .ok_or_else(|| ctx.fail("the registries are not available"))?;
            let gateway = ctx
                .service::<saphan_exchange::gateway::Gateway>()
                .ok_or_else(|| ctx.fail("the exchange is not available"))?;
            let directory = ctx
                .service::<Directory>()
                .ok_or_else(|| ctx.fail("the directory is not available"))?;
            // The run's own seed, so that `saphan seed population` (same default) extends it.
            let seed = self.seed;
            let run = async {
                let defs =
                    publish_demo_registries(&registries, gateway.registry(), &self.public_url)
                        .await?;
                let bar = ctx.progress(self.persons);
                load(&registries, &defs, seed, self.persons, |n| bar.inc(n)).await?;
                bar.finish_and_clear();
                enrol_demo_people(&registries, &directory, &defs, seed, &self.data_dir).await?;
                grant_demo_rights(gateway.registry(), &defs).await?;
                digital_id_may_check_cards(gateway.registry(), &defs).await?;
                anyhow::Ok(())
            };
            run.await.map_err(|e| ctx.fail(format!("{e:#}")))
        })
    }
}

async fn grant_demo_rights(
    exchange: &saphan_exchange::Registry,
    defs: &DemoRegistries,
) -> Result<()> {
    let person = exchange.parse_service(&format!(
        "{}/{}",
        definitions::CIVIL,
        defs.person.spec.service_code
    ))?;
    let names: Vec<String> = [
        "titleTh",
        "firstNameTh",
        "lastNameTh",
        "titleEn",
        "firstNameEn",
        "lastNameEn",
        "status",
    ]
    .map(String::from)
    .to_vec();
    // Reading only: every GET (list, readValue, history), and the read and exists questions.
    let base = format!("/data/{}", defs.person.key());
    for (method, path) in [
        ("GET", "*".to_string()),
        ("POST", format!("{base}/read")),
        ("POST", format!("{base}/exists")),
    ] {
        exchange
            .grant_right(
                &Subject::Operator,
                &person,
                &NewRight {
                    grantee: "GOV/DBD/REGISTRY".into(),
                    method: method.into(),
                    path,
                    legal_basis: "Digital Government Act B.E. 2562 s.13 (demo): directors' names"
                        .into(),
                    valid_until: None,
                    fields: Some(names.clone()),
                },
            )
            .await?;
    }
    Ok(())
}

/// The digital ID's own subsystem (GOV/DGA/DIGITALID) may ask the card check (`exists` on
/// `idcard/1.0`, nothing else), to raise people's assurance with their ID card.
async fn digital_id_may_check_cards(
    exchange: &saphan_exchange::Registry,
    defs: &DemoRegistries,
) -> Result<()> {
    let dga = MemberId::parse("GOV/DGA")?;
    already_there(
        exchange
            .create_subsystem(&Subject::Operator, &dga, "DIGITALID")
            .await
            .map(|_| ()),
    )?;
    let idcard = exchange.parse_service(&format!(
        "{}/{}",
        definitions::CIVIL,
        defs.idcard.spec.service_code
    ))?;
    exchange
        .grant_right(
            &Subject::Operator,
            &idcard,
            &NewRight {
                grantee: "GOV/DGA/DIGITALID".into(),
                method: "POST".into(),
                path: format!("/data/{}/exists", saphan_registry::service::IDCARD_REGISTRY),
                legal_basis: "Digital Government Act B.E. 2562 s.13; identity proofing (demo)"
                    .into(),
                valid_until: None,
                fields: None,
            },
        )
        .await?;
    Ok(())
}

/// The services `saphan seed` hands to its steps.
pub fn registries_of(platform: &crate::platform::Platform) -> Arc<Registries> {
    let directory = Directory::new(
        platform.db.clone(),
        platform.audit.clone(),
        &platform.config.identity,
    )
    .expect("identity configuration was validated with the rest");
    Arc::new(Registries::new(
        platform.db.clone(),
        platform.audit.clone(),
        directory,
    ))
}

#[derive(clap::Subcommand)]
pub enum SeedCommand {
    /// Generate a synthetic population into the demo registries (persons, houses, juristic
    /// persons, foreigners), publishing the registries on the exchange first. Deterministic from
    /// the seed; runs again without duplicating, resuming where a cut-off run stopped.
    Population {
        /// How many people.
        #[arg(long)]
        persons: u64,
        #[arg(long, default_value_t = 2018)]
        seed: u64,
    },
}

pub async fn run_seed(config: saphan_core::Config, command: SeedCommand) -> Result<()> {
    let SeedCommand::Population { persons, seed } = command;
    // House ids stay distinct up to 10^7 households (about 29 million people).
    if persons == 0 || persons > 25_000_000 {
        anyhow::bail!("--persons: from 1 to 25,000,000 / จำนวนคนต้องอยู่ระหว่าง 1 ถึง 25,000,000");
    }
    let keys = crate::platform::open_keys(&config)?;
    let platform = crate::platform::Platform::open(config, keys).await?;
    let registries = registries_of(&platform);
    let state = platform.app_state(None);
    let defs = publish_demo_registries(
        &registries,
        state.exchange.registry(),
        &platform.config.public_url,
    )
    .await?;
    let bar = indicatif::ProgressBar::new(persons);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} persons ({per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix("population / ประชากร");
    let started = std::time::Instant::now();
    let counts = load(&registries, &defs, seed, persons, |n| bar.inc(n)).await?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} persons, {} houses, {} juristic persons, {} foreigners in {secs:.1} s ({:.0} persons/s); seed {seed}",
        counts.persons,
        counts.houses,
        counts.companies,
        counts.foreigners,
        counts.persons as f64 / secs.max(0.001)
    );
    platform.audit.shutdown().await;
    Ok(())
}
