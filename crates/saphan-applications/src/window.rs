//! Filing windows of procedures repeated on a cycle (the foreigner's 90-day report, TM.47):
//! whether a filing is accepted today, and when the next one falls due.

use saphan_core::Text;
use saphan_procedures::FilingWindow;
use serde_json::{Map, Value};
use time::{Date, Duration};

const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

fn date_of(value: Option<&Value>) -> Option<Date> {
    Date::parse(value?.as_str()?, DATE).ok()
}

fn show(date: Date) -> String {
    date.format(DATE).unwrap_or_default()
}

/// Whether a filing is accepted on `today`, counting from `dates` (the values registries
/// verified: a date the applicant typed never opens a window); the next due date when it is,
/// otherwise the rule and the dates that apply, in Thai and English.
pub fn check(
    window: &FilingWindow,
    answers: &Map<String, Value>,
    today: Date,
) -> Result<Date, Text> {
    let refuse = |th: String, en: String| {
        Err(Text::owned(
            format!("{th} — {}", window.rule.th),
            format!("{en}. {}", window.rule.en),
        ))
    };
    let counted = window
        .from_fields
        .iter()
        .enumerate()
        .find_map(|(i, field)| date_of(answers.get(field)).map(|d| (i, d)));
    let Some((index, from)) = counted else {
        return refuse(
            "ไม่ทราบวันที่ใช้นับรอบการยื่น".into(),
            "the date the cycle counts from is not known".into(),
        );
    };
    let first = index + 1 == window.from_fields.len() && window.from_fields.len() > 1;
    if first && !window.first_filing_online {
        return refuse(
            "การยื่นครั้งแรกยื่นทางออนไลน์ไม่ได้".into(),
            "a first filing cannot be made online".into(),
        );
    }
    let days = |n: u32| Duration::days(i64::from(n));
    let dates = from.checked_add(days(window.every_days)).and_then(|due| {
        Some((
            due,
            due.checked_sub(days(window.opens_days_before))?,
            due.checked_add(days(window.closes_days_after))?,
        ))
    });
    let Some((due, opens, closes)) = dates else {
        return refuse(
            "วันที่ใช้นับรอบไม่ถูกต้อง".into(),
            "the date the cycle counts from is out of range".into(),
        );
    };
    if today < opens {
        return refuse(
            format!(
                "ครบกำหนด {} ยื่นได้ตั้งแต่ {} ถึง {}",
                show(due),
                show(opens),
                show(closes)
            ),
            format!(
                "due on {}: filings are accepted from {} to {}",
                show(due),
                show(opens),
                show(closes)
            ),
        );
    }
    if today > closes {
        return refuse(
            format!(
                "ครบกำหนด {} และพ้นช่วงยื่นออนไลน์เมื่อ {} แล้ว โปรดติดต่อสำนักงาน",
                show(due),
                show(closes)
            ),
            format!(
                "it was due on {} and the online window closed on {}: please go to an office",
                show(due),
                show(closes)
            ),
        );
    }
    Ok(today.checked_add(days(window.every_days)).unwrap_or(closes))
}

/// The receipt's line naming the next due date.
pub fn next_due_text(next: Date) -> Text {
    Text::owned(
        format!("ครบกำหนดยื่นครั้งถัดไป {}", show(next)),
        format!("The next filing is due on {}", show(next)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::date;

    fn tm47() -> FilingWindow {
        serde_json::from_value(json!({
            "from_fields": ["lastReport", "arrivalDate"],
            "every_days": 90, "opens_days_before": 15, "closes_days_after": 0,
            "rule": {"th": "กฎ", "en": "The rule"}
        }))
        .unwrap()
    }

    fn answers(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_date_at_the_end_of_the_calendar_is_refused_not_a_panic() {
        let a = answers(json!({"lastReport": "9999-12-31"}));
        assert!(check(&tm47(), &a, date!(2026 - 03 - 25)).is_err());
    }

    #[test]
    fn the_window_runs_from_fifteen_days_before_the_due_date_to_the_due_date() {
        let a = answers(json!({"lastReport": "2026-01-01", "arrivalDate": "2025-06-01"}));
        // Due 2026-04-01.
        for today in [
            date!(2026 - 03 - 17),
            date!(2026 - 03 - 25),
            date!(2026 - 04 - 01),
        ] {
            assert_eq!(check(&tm47(), &a, today), Ok(today + Duration::days(90)));
        }
        let early = check(&tm47(), &a, date!(2026 - 03 - 16)).unwrap_err();
        assert!(
            early.en.contains("from 2026-03-17 to 2026-04-01"),
            "{}",
            early.en
        );
        assert!(early.en.ends_with("The rule"));
        let late = check(&tm47(), &a, date!(2026 - 04 - 02)).unwrap_err();
        assert!(late.en.contains("closed on 2026-04-01"), "{}", late.en);
    }

    #[test]
    fn a_first_filing_is_refused_online_unless_the_procedure_allows_it() {
        let a = answers(json!({"arrivalDate": "2026-01-01"}));
        let refused = check(&tm47(), &a, date!(2026 - 03 - 25)).unwrap_err();
        assert!(refused.en.contains("first filing"));
        let mut open = tm47();
        open.first_filing_online = true;
        assert!(check(&open, &a, date!(2026 - 03 - 25)).is_ok());
        assert!(check(&tm47(), &answers(json!({})), date!(2026 - 03 - 25)).is_err());
    }
}
