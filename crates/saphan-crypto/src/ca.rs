//! The platform certificate authority: a self-signed ECDSA P-256 root in the key store that
//! issues X.509 certificates to exchange members' subsystems, officials, the platform's TLS
//! endpoints and its own time-stamping authority.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::keystore::{KeyStore, LoadedKey};
use crate::{CryptoError, KeyAlg, KeyPurpose};

const PLATFORM_ORGANIZATION: &str = "Saphan Digital Government Platform";

/// What a certificate is for; decides its key usages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateKind {
    /// A member's subsystem calling the exchange over mutual TLS.
    Member,
    /// An official's signing certificate.
    Official,
    /// A TLS server certificate for the given DNS names or IP addresses.
    TlsServer { names: Vec<String> },
}

#[derive(Debug, Clone)]
pub struct CertificateRequest {
    pub common_name: String,
    pub organization: Option<String>,
    pub kind: CertificateKind,
    pub valid_days: u32,
    /// The subject's public key (SPKI DER). When absent a P-256 key pair is generated and its
    /// private key returned once, in the result.
    pub public_key_der: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub certificate_pem: String,
    /// PKCS#8 PEM of a generated private key; `None` when the request brought its public key.
    pub private_key_pem: Option<String>,
    pub serial_hex: String,
}

fn cert_error(e: impl std::fmt::Display) -> CryptoError {
    CryptoError::Certificate(e.to_string())
}

fn rcgen_key(key: &LoadedKey) -> Result<KeyPair, CryptoError> {
    KeyPair::try_from(key.secret.pkcs8_der().as_slice()).map_err(cert_error)
}

fn random_serial() -> (rcgen::SerialNumber, String) {
    let bytes = crate::random_serial();
    (rcgen::SerialNumber::from_slice(&bytes), hex::encode(bytes))
}

fn base_params(common_name: &str, organization: Option<&str>, days: u32) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(
        DnType::OrganizationName,
        organization.unwrap_or(PLATFORM_ORGANIZATION),
    );
    params.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(i64::from(days));
    params.serial_number = Some(random_serial().0);
    params
}

/// The root certificate for a freshly generated CA key.
pub(crate) fn self_signed_ca(key: &LoadedKey) -> Result<String, CryptoError> {
    let mut params = base_params(
        &format!("Saphan Platform Root CA {}", &key.public.created[..10]),
        None,
        3650,
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&rcgen_key(key)?).map_err(cert_error)?;
    Ok(cert.pem())
}

/// The time-stamping authority's certificate, issued by the active CA (critical EKU
/// timeStamping, as RFC 3161 §2.3 requires).
pub(crate) fn tsa_certificate(store: &KeyStore, tsa: &LoadedKey) -> Result<String, CryptoError> {
    let mut params = base_params("Saphan Platform Time-Stamping Authority", None, 1825);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    // RFC 3161 §2.3: exactly id-kp-timeStamping, and the extension MUST be critical, which
    // rcgen's own EKU field does not mark; so it is written out: SEQUENCE { OID 1.3.6.1.5.5.7.3.8 }.
    let mut eku = rcgen::CustomExtension::from_oid_content(
        &[2, 5, 29, 37],
        vec![
            0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08,
        ],
    );
    eku.set_criticality(true);
    params.custom_extensions = vec![eku];
    let public =
        rcgen::SubjectPublicKeyInfo::from_der(&tsa.public.spki_der()?).map_err(cert_error)?;
    sign_with_ca(store, params, &public)
}

fn sign_with_ca(
    store: &KeyStore,
    params: CertificateParams,
    public: &rcgen::SubjectPublicKeyInfo,
) -> Result<String, CryptoError> {
    let ca = store.active(KeyPurpose::CertificateAuthority, KeyAlg::ES256)?;
    let ca_pem = ca
        .public
        .certificate_pem
        .as_deref()
        .ok_or_else(|| CryptoError::Certificate("the CA key has no certificate".into()))?;
    let ca_key = rcgen_key(ca)?;
    let issuer = CertificateParams::from_ca_cert_pem(ca_pem)
        .map_err(cert_error)?
        .self_signed(&ca_key)
        .map_err(cert_error)?;
    let cert = params
        .signed_by(public, &issuer, &ca_key)
        .map_err(cert_error)?;
    Ok(cert.pem())
}

impl KeyStore {
    /// The active root certificate (PEM): what members and browsers trust.
    pub fn ca_certificate_pem(&self) -> Result<String, CryptoError> {
        self.active(KeyPurpose::CertificateAuthority, KeyAlg::ES256)?
            .public
            .certificate_pem
            .clone()
            .ok_or_else(|| CryptoError::Certificate("the CA key has no certificate".into()))
    }

    /// Issues a certificate signed by the active platform CA.
    pub fn issue_certificate(
        &self,
        request: &CertificateRequest,
    ) -> Result<IssuedCertificate, CryptoError> {
        if request.common_name.trim().is_empty() || request.valid_days == 0 {
            return Err(CryptoError::Certificate(
                "a certificate needs a common name and at least one day of validity".into(),
            ));
        }
        let mut params = base_params(
            &request.common_name,
            request.organization.as_deref(),
            request.valid_days,
        );
        let serial_hex = params
            .serial_number
            .as_ref()
            .map(|s| hex::encode(s.as_ref()))
            .unwrap_or_default();
        params.is_ca = IsCa::ExplicitNoCa;
        match &request.kind {
            CertificateKind::Member => {
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            CertificateKind::Official => {
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::ContentCommitment,
                ];
                params.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ClientAuth,
                    ExtendedKeyUsagePurpose::EmailProtection,
                ];
            }
            CertificateKind::TlsServer { names } => {
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.subject_alt_names = names
                    .iter()
                    .map(|n| match n.parse::<std::net::IpAddr>() {
                        Ok(ip) => Ok(SanType::IpAddress(ip)),
                        Err(_) => n
                            .clone()
                            .try_into()
                            .map(SanType::DnsName)
                            .map_err(cert_error),
                    })
                    .collect::<Result<_, _>>()?;
            }
        }
        let (public_der, private_key_pem) = match &request.public_key_der {
            Some(der) => (der.clone(), None),
            None => {
                let generated =
                    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
                (generated.public_key_der(), Some(generated.serialize_pem()))
            }
        };
        let public = rcgen::SubjectPublicKeyInfo::from_der(&public_der).map_err(cert_error)?;
        let certificate_pem = sign_with_ca(self, params, &public)?;
        Ok(IssuedCertificate {
            certificate_pem,
            private_key_pem,
            serial_hex,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Passphrase;
    use x509_parser::pem::parse_x509_pem;

    #[test]
    fn ca_issues_certificates_that_chain_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::create(&dir.path().join("k.json"), &Passphrase::new("p")).unwrap();
        let ca_pem = store.ca_certificate_pem().unwrap();
        let (_, ca_der) = parse_x509_pem(ca_pem.as_bytes()).unwrap();
        let ca = ca_der.parse_x509().unwrap();
        assert!(ca.is_ca());

        let issued = store
            .issue_certificate(&CertificateRequest {
                common_name: "TH/GOV/DOPA/CIVIL".into(),
                organization: Some("Department of Provincial Administration".into()),
                kind: CertificateKind::Member,
                valid_days: 365,
                public_key_der: None,
            })
            .unwrap();
        assert!(issued.private_key_pem.is_some());
        let (_, der) = parse_x509_pem(issued.certificate_pem.as_bytes()).unwrap();
        let cert = der.parse_x509().unwrap();
        assert_eq!(cert.issuer(), ca.subject());
        cert.verify_signature(Some(ca.public_key())).unwrap();
        assert!(!cert.is_ca());

        let tsa = store
            .public_keys()
            .keys
            .into_iter()
            .find(|k| k.purpose == KeyPurpose::TimeStamping)
            .unwrap();
        let (_, der) = parse_x509_pem(tsa.certificate_pem.unwrap().as_bytes()).unwrap();
        let tsa_cert = der.parse_x509().unwrap();
        tsa_cert.verify_signature(Some(ca.public_key())).unwrap();
        let eku = tsa_cert.extended_key_usage().unwrap().unwrap();
        assert!(eku.critical && eku.value.time_stamping && !eku.value.any);
    }
}
