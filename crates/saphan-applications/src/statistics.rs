//! Public statistics of decisions (GovStack Registration `/data/statistics`): how many
//! applications were processed, approved, sent back and refused, per service and period. Counts
//! only: nothing about an applicant or an official.

use std::collections::BTreeMap;

use saphan_core::Text;
use saphan_store::sqlx::{self, Row};
use serde::Serialize;
use time::Date;

use crate::{ApplicationError, Applications};

/// The periods statistics are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Timeframe {
    Day,
    Week,
    Month,
    Year,
}

impl std::str::FromStr for Timeframe {
    type Err = ApplicationError;
    fn from_str(s: &str) -> Result<Timeframe, ApplicationError> {
        match s {
            "day" => Ok(Timeframe::Day),
            "week" => Ok(Timeframe::Week),
            "month" => Ok(Timeframe::Month),
            "year" => Ok(Timeframe::Year),
            _ => Err(ApplicationError::Invalid(Text::new(
                "timeframe ต้องเป็น day, week, month หรือ year",
                "timeframe is day, week, month or year",
            ))),
        }
    }
}

/// What is counted: a date range (inclusive), a service code, a task role, a grouping.
#[derive(Debug, Clone, Default)]
pub struct StatisticsQuery {
    pub start: Option<Date>,
    pub end: Option<Date>,
    pub service: Option<String>,
    /// `reviewer` or `approver`: count that role's decisions instead of applications'.
    pub role: Option<String>,
    pub timeframe: Option<Timeframe>,
}

/// One period's counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// The first day of the period (the range's start when not grouped).
    pub start: Option<Date>,
    pub end: Option<Date>,
    pub processed: u64,
    pub approved: u64,
    pub sent_back: u64,
    pub rejected: u64,
}

fn period_start(day: Date, timeframe: Timeframe) -> Date {
    match timeframe {
        Timeframe::Day => day,
        Timeframe::Week => {
            day - time::Duration::days(i64::from(day.weekday().number_days_from_monday()))
        }
        Timeframe::Month => day.replace_day(1).unwrap_or(day),
        Timeframe::Year => {
            Date::from_calendar_date(day.year(), time::Month::January, 1).unwrap_or(day)
        }
    }
}

fn day_of(instant: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(instant.get(..10)?, format).ok()
}

impl Applications {
    pub async fn statistics(&self, q: &StatisticsQuery) -> Result<Vec<Counts>, ApplicationError> {
        if let (Some(s), Some(e)) = (q.start, q.end) {
            if s > e {
                return Err(ApplicationError::Invalid(Text::new(
                    "startDate ต้องไม่อยู่หลัง endDate",
                    "startDate is after endDate",
                )));
            }
        }
        // (day, outcome) of every decision counted.
        let mut decisions: Vec<(Date, &'static str)> = Vec::new();
        let service = q.service.clone().unwrap_or_default();
        match q.role.as_deref() {
            Some(role @ ("reviewer" | "approver")) => {
                let rows = sqlx::query(
                    "SELECT t.completed_at, t.outcome FROM ap_tasks t JOIN ap_applications a ON a.id = t.application_id \
                     WHERE t.role = $1 AND t.completed_at IS NOT NULL AND ($2 = '' OR a.code = $2 OR t.procedure_code = $2)",
                )
                .bind(role)
                .bind(&service)
                .fetch_all(self.db.pool())
                .await?;
                for r in rows {
                    let outcome = match r.get::<Option<String>, _>(1).as_deref() {
                        Some("approved") => "approved",
                        Some("rejected") => "rejected",
                        Some("sent-back") => "sent-back",
                        _ => continue,
                    };
                    if let Some(day) = day_of(&r.get::<String, _>(0)) {
                        decisions.push((day, outcome));
                    }
                }
            }
            Some(_) => {
                return Err(ApplicationError::Invalid(Text::new(
                    "role ต้องเป็น reviewer หรือ approver",
                    "role is reviewer or approver",
                )))
            }
            None => {
                let rows = sqlx::query(
                    "SELECT decided_at, status FROM ap_applications WHERE decided_at IS NOT NULL \
                     AND ($1 = '' OR code = $1)",
                )
                .bind(&service)
                .fetch_all(self.db.pool())
                .await?;
                for r in rows {
                    let outcome = match r.get::<String, _>(1).as_str() {
                        "approved" | "partly-approved" => "approved",
                        "rejected" => "rejected",
                        _ => continue,
                    };
                    if let Some(day) = day_of(&r.get::<String, _>(0)) {
                        decisions.push((day, outcome));
                    }
                }
                let sent = sqlx::query(
                    "SELECT e.at FROM ap_events e JOIN ap_applications a ON a.id = e.application_id \
                     WHERE e.kind = 'sent-back' AND ($1 = '' OR a.code = $1)",
                )
                .bind(&service)
                .fetch_all(self.db.pool())
                .await?;
                for r in sent {
                    if let Some(day) = day_of(&r.get::<String, _>(0)) {
                        decisions.push((day, "sent-back"));
                    }
                }
            }
        }
        let mut groups: BTreeMap<Option<Date>, Counts> = BTreeMap::new();
        for (day, outcome) in decisions {
            if q.start.is_some_and(|s| day < s) || q.end.is_some_and(|e| day > e) {
                continue;
            }
            let key = q.timeframe.map(|t| period_start(day, t));
            let counts = groups.entry(key).or_insert_with(|| Counts {
                start: key.or(q.start),
                end: q.end,
                ..Counts::default()
            });
            match outcome {
                "approved" => counts.approved += 1,
                "rejected" => counts.rejected += 1,
                _ => counts.sent_back += 1,
            }
            if outcome != "sent-back" {
                counts.processed += 1;
            }
        }
        if groups.is_empty() {
            groups.insert(
                None,
                Counts {
                    start: q.start,
                    end: q.end,
                    ..Counts::default()
                },
            );
        }
        Ok(groups.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn periods_start_on_monday_the_first_of_the_month_and_new_year() {
        let day = date!(2026 - 11 - 26); // a Thursday
        assert_eq!(period_start(day, Timeframe::Week), date!(2026 - 11 - 23));
        assert_eq!(period_start(day, Timeframe::Month), date!(2026 - 11 - 01));
        assert_eq!(period_start(day, Timeframe::Year), date!(2026 - 01 - 01));
        assert_eq!(period_start(day, Timeframe::Day), day);
    }
}
