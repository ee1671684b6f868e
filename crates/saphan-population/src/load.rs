//! Streaming a generated population into the demo registries.

use saphan_registry::{Caller, Definition, Registries, RegistryError};
use serde_json::Value;

use crate::{Generator, PERSONS_PER_COMPANY, PERSONS_PER_FOREIGNER};

/// Households per batch: one transaction per registry per batch.
pub const BATCH_HOUSEHOLDS: u64 = 256;

/// The demo registries, as defined (see [`crate::definitions::all`], in that order).
#[derive(Debug, Clone)]
pub struct DemoRegistries {
    pub person: Definition,
    pub house: Definition,
    pub idcard: Definition,
    pub juristic: Definition,
    pub foreigner: Definition,
}

impl DemoRegistries {
    /// From the definitions in [`crate::definitions::all`]'s order.
    pub fn from_ordered(defs: Vec<Definition>) -> Option<DemoRegistries> {
        let mut defs = defs.into_iter();
        Some(DemoRegistries {
            person: defs.next()?,
            house: defs.next()?,
            idcard: defs.next()?,
            juristic: defs.next()?,
            foreigner: defs.next()?,
        })
    }

    /// Defines them (not published on the exchange: for loads and benchmarks).
    pub async fn define(
        registries: &Registries,
        by: &str,
    ) -> Result<DemoRegistries, RegistryError> {
        let mut defs = Vec::new();
        for (provider, spec) in crate::definitions::all() {
            defs.push(registries.define(provider, spec, by).await?);
        }
        DemoRegistries::from_ordered(defs)
            .ok_or_else(|| RegistryError::Invalid("the demo registries are incomplete".into()))
    }
}

/// What a population run wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub persons: u64,
    pub houses: u64,
    pub companies: u64,
    pub foreigners: u64,
}

/// Streams a population of (about) `persons` people into the demo registries: households in
/// batches, with companies and foreigners in proportion. Repeating a run adds nothing; a run cut
/// off part-way resumes where the stored records end.
pub async fn load(
    registries: &Registries,
    defs: &DemoRegistries,
    seed: u64,
    persons: u64,
    progress: impl Fn(u64),
) -> Result<Counts, RegistryError> {
    let generator = Generator::new(seed);
    let caller = Caller::platform("synthetic population");
    // Ids are the same for every seed: one population per database, grown with its own seed.
    let first = generator.household(0);
    let stored = registries
        .read(
            &defs.house,
            &caller,
            &serde_json::Map::from_iter([("houseId".to_string(), first.house["houseId"].clone())]),
        )
        .await?;
    let ours = stored.is_some_and(|h| h["householderId"] == first.house["householderId"]);
    if !ours && !registries.is_empty(&defs.person).await? {
        return Err(RegistryError::Invalid(format!(
            "this database holds a population generated with another seed: grow it with that seed, not {seed} / ประชากรในฐานข้อมูลนี้สร้างด้วย seed อื่น"
        )));
    }

    let mut counts = Counts::default();
    let mut household = 0u64;
    let mut made_persons = 0u64;
    while made_persons < persons {
        let mut houses = Vec::new();
        let mut people = Vec::new();
        let mut cards = Vec::new();
        let first_household = household;
        while made_persons < persons && household < first_household + BATCH_HOUSEHOLDS {
            let mut h = generator.household(household);
            let room = (persons - made_persons) as usize;
            if h.persons.len() > room {
                // The last household loses its youngest members (listed last), never a parent.
                h.persons.truncate(room);
                let kept: Vec<Value> = h.persons.iter().map(|p| p["nationalId"].clone()).collect();
                h.house["members"] = Value::Array(kept.clone());
                h.cards.retain(|c| kept.contains(&c["nationalId"]));
            }
            made_persons += h.persons.len() as u64;
            houses.push(h.house);
            people.extend(h.persons);
            cards.extend(h.cards);
            household += 1;
        }
        let companies_due = made_persons / PERSONS_PER_COMPANY;
        let companies: Vec<Value> = (counts.companies..companies_due)
            .map(|c| generator.company(c, household))
            .collect();
        let foreigners_due = made_persons / PERSONS_PER_FOREIGNER;
        let foreigners: Vec<Value> = (counts.foreigners..foreigners_due)
            .map(|k| generator.foreigner(k))
            .collect();
        let batch_people = people.len() as u64;
        counts.houses += houses.len() as u64;
        counts.persons += batch_people;
        counts.companies = companies_due;
        counts.foreigners = foreigners_due;
        registries.import(&defs.house, &caller, houses).await?;
        registries.import(&defs.person, &caller, people).await?;
        registries.import(&defs.idcard, &caller, cards).await?;
        if !companies.is_empty() {
            registries
                .import(&defs.juristic, &caller, companies)
                .await?;
        }
        if !foreigners.is_empty() {
            registries
                .import(&defs.foreigner, &caller, foreigners)
                .await?;
        }
        progress(batch_people);
    }
    Ok(counts)
}
