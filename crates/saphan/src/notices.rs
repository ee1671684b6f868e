//! The one-stop sweep, every `[onestop] sweep_secs`: the 7-day updates to applicants, tasks past
//! their SLA, and the notices waiting to be e-mailed through `[onestop] smtp_url`.

use std::time::Duration;

use anyhow::{Context, Result};
use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use saphan_applications::Applications;
use saphan_core::config::OneStopConfig;

/// A notice is tried this many sweeps before it is marked failed.
const ATTEMPTS: u32 = 5;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(config: &OneStopConfig) -> Result<Option<Mailer>> {
        let Some(url) = config.smtp_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .context("onestop.smtp_url is not an smtp:// or smtps:// URL")?
            .timeout(Some(Duration::from_secs(15)))
            .build();
        let from = config
            .mail_from
            .parse()
            .context("onestop.mail_from is not a mailbox, e.g. Saphan <no-reply@example.org>")?;
        Ok(Some(Mailer { transport, from }))
    }

    async fn send(&self, mail: &saphan_applications::notices::Mail) -> Result<()> {
        let to: Mailbox = mail.to.parse().context("the address")?;
        let body = format!(
            "{}\n\n{}\n\n-- \nสะพาน / Saphan (เลขติดตาม / tracking number {})\n",
            mail.text.th, mail.text.en, mail.tracking
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!(
                "คำขอ {} / Your application {}",
                mail.tracking, mail.tracking
            ))
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .context("building the message")?;
        self.transport.send(message).await.context("sending")?;
        Ok(())
    }
}

/// Runs the sweep until `stop` turns true (between rounds, never in the middle of one).
pub async fn run(
    applications: Applications,
    mailer: Option<Mailer>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tracing::info!(
        every_secs = every.as_secs(),
        mail = mailer.is_some(),
        "one-stop sweep started"
    );
    let mut attempts: std::collections::HashMap<String, u32> = Default::default();
    let mut ticker = tokio::time::interval(every.max(Duration::from_secs(1)));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        match applications.sweep().await {
            Ok(s) if s.updates + s.overdue > 0 => {
                tracing::info!(updates = s.updates, overdue = s.overdue, "one-stop sweep")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "one-stop sweep failed"),
        }
        let Some(mailer) = &mailer else { continue };
        let pending = match applications.pending_mail(100).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "reading the notices to e-mail failed");
                continue;
            }
        };
        for mail in pending {
            match applications.claim_mail(&mail.notice).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a notice to e-mail failed");
                    continue;
                }
            }
            let outcome = mailer.send(&mail).await;
            let tries = attempts.entry(mail.notice.clone()).or_default();
            *tries += 1;
            let settled = match &outcome {
                Ok(()) => Some(true),
                Err(_) if *tries >= ATTEMPTS => Some(false),
                Err(_) => None,
            };
            if let Err(e) = &outcome {
                // The address is personal data: only the notice id is logged.
                tracing::warn!(notice = %mail.notice, attempt = *tries, error = %e, "e-mailing a notice failed");
            }
            if settled.is_some() {
                attempts.remove(&mail.notice);
            }
            if let Err(e) = applications.mail_outcome(&mail.notice, settled).await {
                tracing::warn!(error = %e, "recording a notice's e-mail failed");
            }
        }
    }
}
