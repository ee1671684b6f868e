//! The facts the generator draws from, parsed once from `data/*.tsv`.

use std::sync::OnceLock;

#[derive(Debug, Clone)]
pub struct Subdistrict {
    pub code: &'static str,
    pub name_th: &'static str,
    pub name_en: &'static str,
    pub district_code: &'static str,
    pub district_th: &'static str,
    pub district_en: &'static str,
    pub province_code: &'static str,
    pub province_th: &'static str,
    pub province_en: &'static str,
    pub postcode: &'static str,
}

#[derive(Debug, Clone)]
pub struct Province {
    pub code: &'static str,
    pub name_th: &'static str,
    pub name_en: &'static str,
    pub population: u64,
    /// Indexes into [`Facts::subdistricts`].
    pub subdistricts: Vec<usize>,
}

pub(crate) struct Facts {
    pub subdistricts: Vec<Subdistrict>,
    pub provinces: Vec<Province>,
    /// Running sums of province populations, for weighted choice.
    pub cumulative: Vec<u64>,
    pub male: Vec<(&'static str, &'static str)>,
    pub female: Vec<(&'static str, &'static str)>,
    pub family: Vec<(&'static str, &'static str)>,
}

const GEOGRAPHY: &str = include_str!("../data/geography.tsv");
const PROVINCES: &str = include_str!("../data/provinces.tsv");
const NAMES: &str = include_str!("../data/names.tsv");

fn rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').collect())
}

pub(crate) fn facts() -> &'static Facts {
    static FACTS: OnceLock<Facts> = OnceLock::new();
    FACTS.get_or_init(|| {
        let subdistricts: Vec<Subdistrict> = rows(GEOGRAPHY)
            .map(|c| Subdistrict {
                code: c[0],
                name_th: c[1],
                name_en: c[2],
                district_code: c[3],
                district_th: c[4],
                district_en: c[5],
                province_code: c[6],
                province_th: c[7],
                province_en: c[8],
                postcode: c[9],
            })
            .collect();
        let mut provinces: Vec<Province> = rows(PROVINCES)
            .map(|c| Province {
                code: c[0],
                name_th: c[1],
                name_en: c[2],
                population: c[3]
                    .parse()
                    .expect("populations are numbers (checked by a test)"),
                subdistricts: Vec::new(),
            })
            .collect();
        for (i, s) in subdistricts.iter().enumerate() {
            if let Some(p) = provinces.iter_mut().find(|p| p.code == s.province_code) {
                p.subdistricts.push(i);
            }
        }
        let mut total = 0;
        let cumulative = provinces
            .iter()
            .map(|p| {
                total += p.population;
                total
            })
            .collect();
        let names = |kind: &str| {
            rows(NAMES)
                .filter(|c| c[0] == kind)
                .map(|c| (c[1], c[2]))
                .collect::<Vec<_>>()
        };
        Facts {
            subdistricts,
            provinces,
            cumulative,
            male: names("male"),
            female: names("female"),
            family: names("family"),
        }
    })
}

/// Whether a Thai given name is in the female list (for titles of people named elsewhere).
pub fn is_female_given_name(name_th: &str) -> bool {
    facts().female.iter().any(|(th, _)| *th == name_th)
}

/// Every province, with its sub-districts.
pub fn provinces() -> &'static [Province] {
    &facts().provinces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_facts_are_complete_and_consistent() {
        let f = facts();
        assert_eq!(f.provinces.len(), 77);
        assert!(f.subdistricts.len() > 7000);
        for p in &f.provinces {
            assert!(
                !p.subdistricts.is_empty(),
                "{} has no sub-district",
                p.name_en
            );
            assert!(p.population > 0);
        }
        for s in &f.subdistricts {
            assert!(
                s.code.starts_with(s.district_code) && s.district_code.starts_with(s.province_code)
            );
            assert!(s.postcode.len() == 5 && s.postcode.chars().all(|c| c.is_ascii_digit()));
        }
        assert!(f.male.len() >= 150 && f.female.len() >= 150 && f.family.len() >= 400);
    }
}
