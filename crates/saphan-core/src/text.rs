//! Text that people read comes in Thai and English; Thai is the default.

use std::borrow::Cow;

/// A language the platform speaks to people in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Th,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Th => "th",
            Lang::En => "en",
        }
    }

    /// Parses a language tag such as `th`, `en`, `en-GB`; anything else is `None`.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "th" => Some(Lang::Th),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// Picks from an `Accept-Language` header the first language we speak, honouring q-values.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let Some(lang) = pieces.next().and_then(Lang::from_tag) else {
                continue;
            };
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, lang)| lang)
    }
}

/// One message in both languages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Text {
    pub th: Cow<'static, str>,
    pub en: Cow<'static, str>,
}

impl Text {
    pub const fn new(th: &'static str, en: &'static str) -> Text {
        Text {
            th: Cow::Borrowed(th),
            en: Cow::Borrowed(en),
        }
    }

    pub fn owned(th: impl Into<String>, en: impl Into<String>) -> Text {
        Text {
            th: Cow::Owned(th.into()),
            en: Cow::Owned(en.into()),
        }
    }

    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Th => &self.th,
            Lang::En => &self.en,
        }
    }
}

impl std::fmt::Display for Text {
    /// For terminals and logs: English first (operators' lingua franca), Thai after.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.th == self.en {
            f.write_str(&self.en)
        } else {
            write!(f, "{} ({})", self.en, self.th)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_honours_quality() {
        assert_eq!(
            Lang::from_accept_language("fr, en-GB;q=0.5, th;q=0.9"),
            Some(Lang::Th)
        );
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9"), Some(Lang::En));
        assert_eq!(Lang::from_accept_language("fr, de"), None);
        assert_eq!(Lang::from_accept_language("th;q=0"), None);
    }
}
