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

/// The last day of the period that starts on `first`.
fn period_end(first: Date, timeframe: Timeframe) -> Date {
    let next = match timeframe {
        Timeframe::Day => first.next_day(),
        Timeframe::Week => first.checked_add(time::Duration::days(7)),
        Timeframe::Month => {
            let (y, m) = match first.month() {
                time::Month::December => (first.year() + 1, time::Month::January),
                m => (first.year(), m.next()),
            };
            Date::from_calendar_date(y, m, 1).ok()
        }
        Timeframe::Year => Date::from_calendar_date(first.year() + 1, time::Month::January, 1).ok(),
    };
    next.and_then(|d| d.previous_day()).unwrap_or(first)
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
        // Counted by the database per day and outcome: the answer's size is bounded by the days
        // in the range, not by the number of applications.
        let from = q
            .start
            .map(|d| d.to_string())
            .unwrap_or_else(|| "0000".into());
        let until = q
            .end
            .and_then(|d| d.next_day())
            .map(|d| d.to_string())
            .unwrap_or_else(|| "9999".into());
        let service = q.service.clone().unwrap_or_default();
        let mut decisions: Vec<(Date, &'static str, u64)> = Vec::new();
        let mut take = |rows: Vec<sqlx::any::AnyRow>,
                        outcome_of: &dyn Fn(&str) -> Option<&'static str>| {
            for r in rows {
                let outcome: String = r.get(1);
                let (Some(day), Some(outcome)) =
                    (day_of(&r.get::<String, _>(0)), outcome_of(&outcome))
                else {
                    continue;
                };
                decisions.push((day, outcome, r.get::<i64, _>(2).max(0) as u64));
            }
        };
        match q.role.as_deref() {
            Some(role @ ("reviewer" | "approver")) => {
                let rows = sqlx::query(
                    "SELECT substr(t.completed_at, 1, 10), t.outcome, COUNT(*) FROM ap_tasks t \
                     JOIN ap_applications a ON a.id = t.application_id \
                     WHERE t.role = $1 AND t.completed_at IS NOT NULL AND t.outcome IS NOT NULL \
                     AND ($2 = '' OR a.code = $2) AND t.completed_at >= $3 AND t.completed_at < $4 \
                     GROUP BY substr(t.completed_at, 1, 10), t.outcome",
                )
                .bind(role)
                .bind(&service)
                .bind(&from)
                .bind(&until)
                .fetch_all(self.db.pool())
                .await?;
                take(rows, &|o| match o {
                    "approved" => Some("approved"),
                    "rejected" => Some("rejected"),
                    "sent-back" => Some("sent-back"),
                    _ => None,
                });
            }
            Some(_) => {
                return Err(ApplicationError::Invalid(Text::new(
                    "role ต้องเป็น reviewer หรือ approver",
                    "role is reviewer or approver",
                )))
            }
            None => {
                let rows = sqlx::query(
                    "SELECT substr(decided_at, 1, 10), status, COUNT(*) FROM ap_applications \
                     WHERE decided_at IS NOT NULL AND ($1 = '' OR code = $1) \
                     AND decided_at >= $2 AND decided_at < $3 \
                     GROUP BY substr(decided_at, 1, 10), status",
                )
                .bind(&service)
                .bind(&from)
                .bind(&until)
                .fetch_all(self.db.pool())
                .await?;
                take(rows, &|o| match o {
                    "approved" | "partly-approved" => Some("approved"),
                    "rejected" => Some("rejected"),
                    _ => None,
                });
                let rows = sqlx::query(
                    "SELECT substr(e.at, 1, 10), e.kind, COUNT(*) FROM ap_events e \
                     JOIN ap_applications a ON a.id = e.application_id \
                     WHERE e.kind = 'sent-back' AND ($1 = '' OR a.code = $1) \
                     AND e.at >= $2 AND e.at < $3 GROUP BY substr(e.at, 1, 10), e.kind",
                )
                .bind(&service)
                .bind(&from)
                .bind(&until)
                .fetch_all(self.db.pool())
                .await?;
                take(rows, &|_| Some("sent-back"));
            }
        }
        let mut groups: BTreeMap<Option<Date>, Counts> = BTreeMap::new();
        for (day, outcome, n) in decisions {
            let key = q.timeframe.map(|t| period_start(day, t));
            let counts = groups.entry(key).or_insert_with(|| Counts {
                start: key.or(q.start),
                end: match (key, q.timeframe) {
                    (Some(first), Some(t)) => {
                        let last = period_end(first, t);
                        Some(q.end.map_or(last, |e| e.min(last)))
                    }
                    _ => q.end,
                },
                ..Counts::default()
            });
            match outcome {
                "approved" => counts.approved += n,
                "rejected" => counts.rejected += n,
                _ => counts.sent_back += n,
            }
            if outcome != "sent-back" {
                counts.processed += n;
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
        assert_eq!(
            period_end(date!(2026 - 11 - 23), Timeframe::Week),
            date!(2026 - 11 - 29)
        );
        assert_eq!(
            period_end(date!(2026 - 12 - 01), Timeframe::Month),
            date!(2026 - 12 - 31)
        );
        assert_eq!(
            period_end(date!(2026 - 02 - 01), Timeframe::Month),
            date!(2026 - 02 - 28)
        );
        assert_eq!(
            period_end(date!(2026 - 01 - 01), Timeframe::Year),
            date!(2026 - 12 - 31)
        );
    }
}
