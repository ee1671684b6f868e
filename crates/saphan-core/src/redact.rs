//! Redaction of personal data before anything reaches a log line.
//!
//! Logs travel further than databases (to log shippers, to support staff), so identifiers that
//! point at a person are masked: any run of nine or more digits, dashes allowed between them
//! (Thai national and juristic ids, phone numbers), and e-mail addresses, also when their `@` is
//! percent-encoded, and passport-like tokens (one to three letters, then six or more digits).

/// Masks personal identifiers in free text, keeping its shape so the line stays readable.
pub fn redact(text: &str) -> String {
    let decoded_at = text.replace("%40", "@").replace("%2540", "@");
    let text = decoded_at.as_str();
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        // A run of digits, optionally with dashes or spaces between groups.
        if chars[i].is_ascii_digit() {
            let start = i;
            let mut digits = 0;
            let mut j = i;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '-') {
                if chars[j].is_ascii_digit() {
                    digits += 1;
                }
                j += 1;
            }
            if digits >= 9 {
                // Long numbers in paths and messages are ids of people or companies.
                out.push_str("[id]");
            } else {
                out.extend(&chars[start..j]);
            }
            i = j;
            continue;
        }
        // A passport-like token: one to three letters, then six or more digits.
        if chars[i].is_ascii_alphabetic() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            let mut j = i;
            while j < chars.len() && j - i < 3 && chars[j].is_ascii_alphabetic() {
                j += 1;
            }
            let letters_end = j;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            let ends = j == chars.len() || !chars[j].is_ascii_alphanumeric();
            if j - letters_end >= 6 && ends {
                out.push_str("[id]");
                i = j;
                continue;
            }
        }
        if chars[i] == '@' {
            // Drop the local part already written, and the domain that follows.
            while out
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || "._%+-".contains(c))
            {
                out.pop();
            }
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_alphanumeric() || ".-".contains(chars[j])) {
                j += 1;
            }
            out.push_str("[email]");
            i = j;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn masks_national_ids_and_emails() {
        assert_eq!(
            redact("/api/v1/persons/1101700207366/house"),
            "/api/v1/persons/[id]/house"
        );
        assert_eq!(redact("id 1-1017-00207-36-6 ok"), "id [id] ok");
        assert_eq!(
            redact("mail somchai.j@example.go.th now"),
            "mail [email] now"
        );
        assert_eq!(redact("/api/v1/items/42?page=2"), "/api/v1/items/42?page=2");
        assert_eq!(
            redact("/data/foreigner/1.0/MMR-AB1234567/history"),
            "/data/foreigner/1.0/MMR-[id]/history"
        );
        assert_eq!(redact("/data/person-v1/x"), "/data/person-v1/x");
    }
}
