//! The demo's authoritative registries and the synthetic population that fills them: the
//! definitions of the civil registry's persons and houses (Department of Provincial
//! Administration), the juristic persons of the Department of Business Development and the
//! foreigners of the Immigration Bureau, and a deterministic generator of households, people,
//! companies and foreigners over real Thai provinces, districts, sub-districts and postcodes
//! (`data/`, see its README), weighted by each province's registered population.
//!
//! Everything here is data and pure functions: the registry engine (`saphan-registry`) stores
//! it through the same calls as any agency's data. This crate must never hold a real person's
//! data: every national id, name pairing, passport and company here is generated.

mod data;
pub mod definitions;
mod generate;
mod load;

pub use data::{is_female_given_name, provinces, Province, Subdistrict};
pub use generate::{
    card_of, laser_code, Generator, Household, PERSONS_PER_COMPANY, PERSONS_PER_FOREIGNER,
};
pub use load::{load, Counts, DemoRegistries, BATCH_HOUSEHOLDS};
