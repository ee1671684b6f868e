//! The platform's time-stamping service, per RFC 3161: a `TimeStampToken` is a CMS SignedData
//! (RFC 5652) whose encapsulated content is a DER `TSTInfo` binding a SHA-256 message imprint to
//! the time it was seen, a unique serial number and the platform's policy. It is signed by the
//! time-stamping authority's key, whose certificate (issued by the platform CA, critical EKU
//! timeStamping) is carried in the token and named by an ESS signing-certificate-v2 attribute, so
//! any RFC 3161 verifier (e.g. `openssl ts -verify`) can check it.

use cms::builder::{SignedDataBuilder, SignerInfoBuilder};
use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::ContentInfo;
use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerIdentifier};
use der::asn1::{Any, GeneralizedTime, Int, ObjectIdentifier, OctetString, SetOfVec};
use der::{Decode, Encode, Tag, Tagged};
use serde::{Deserialize, Serialize};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::Certificate;
use x509_tsp::{MessageImprint, TspVersion, TstInfo};

use crate::{sha256, CryptoError, KeyAlg, KeyPurpose, KeyStore, PublicKeySet};

/// The time-stamp policy named in every token. Saphan has no registered arc of its own, so this
/// is RFC 7229's test policy (id-TEST-certPolicyOne); a national deployment replaces it with the
/// policy OID registered for its time-stamping authority.
pub const TSA_POLICY: &str = "1.3.6.1.5.5.7.13.1";
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// Signs CMS content with the low-s form of ECDSA signatures, the only form verification accepts.
struct LowS(p256::ecdsa::SigningKey);

impl p256::ecdsa::signature::Keypair for LowS {
    type VerifyingKey = p256::ecdsa::VerifyingKey;

    fn verifying_key(&self) -> Self::VerifyingKey {
        *self.0.verifying_key()
    }
}

impl spki::DynSignatureAlgorithmIdentifier for LowS {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        spki::DynSignatureAlgorithmIdentifier::signature_algorithm_identifier(&self.0)
    }
}

impl p256::ecdsa::signature::Signer<p256::ecdsa::DerSignature> for LowS {
    fn try_sign(&self, message: &[u8]) -> Result<p256::ecdsa::DerSignature, p256::ecdsa::Error> {
        let signature: p256::ecdsa::Signature = self.0.try_sign(message)?;
        Ok(signature.normalize_s().unwrap_or(signature).to_der())
    }
}

/// A DER RFC 3161 TimeStampToken, base64url in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeStampToken {
    pub token: String,
}

fn malformed(e: impl std::fmt::Display) -> CryptoError {
    CryptoError::Malformed(format!("time-stamp token: {e}"))
}

fn sha256_algorithm() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    }
}

pub(crate) fn certificate_from_pem(pem: &str) -> Result<Certificate, CryptoError> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(malformed)?;
    Certificate::from_der(&der).map_err(malformed)
}

/// ESS signing-certificate-v2 (RFC 5035): SEQUENCE { certs SEQUENCE OF ESSCertIDv2 } with one
/// ESSCertIDv2 { certHash } (hash algorithm SHA-256, the DEFAULT, hence omitted).
fn signing_certificate_v2(cert_der: &[u8]) -> Result<Attribute, CryptoError> {
    // 30 26 { 30 24 { 30 22 { 04 20 <SHA-256 of the certificate> } } }: all lengths are fixed.
    let mut encoded = vec![0x30, 0x26, 0x30, 0x24, 0x30, 0x22, 0x04, 0x20];
    encoded.extend_from_slice(&sha256(cert_der));
    let value = Any::from_der(&encoded).map_err(malformed)?;
    let mut values = SetOfVec::new();
    values.insert(value).map_err(malformed)?;
    Ok(Attribute {
        oid: ID_SIGNING_CERTIFICATE_V2,
        values,
    })
}

/// Why a time-stamp request is refused (RFC 3161 §2.4.2, PKIFailureInfo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    BadAlg,
    BadDataFormat,
    UnacceptedPolicy,
    UnacceptedExtension,
    SystemFailure,
}

impl Refusal {
    /// The PKIFailureInfo bit (RFC 3161 §2.4.2).
    fn bit(self) -> usize {
        match self {
            Refusal::BadAlg => 0,
            Refusal::BadDataFormat => 5,
            Refusal::UnacceptedPolicy => 15,
            Refusal::UnacceptedExtension => 16,
            Refusal::SystemFailure => 25,
        }
    }
}

/// `TimeStampResp { PKIStatusInfo { status rejection(2), failInfo } }`, encoded here because
/// cmpv2 0.2's PKIFailureInfo flags are positions used as masks (badAlg would encode as no bit).
/// A named-bit BIT STRING in DER keeps bits up to the last one set: bit n is 0x80 >> (n % 8) of
/// byte n / 8, and the unused-bits count pads the last byte.
fn rejection(refusal: Refusal) -> Vec<u8> {
    let bit = refusal.bit();
    let mut bits = vec![0u8; bit / 8 + 1];
    bits[bit / 8] = 0x80 >> (bit % 8);
    let mut fail_info = vec![0x03, (bits.len() + 1) as u8, (7 - bit % 8) as u8];
    fail_info.extend(bits);
    let mut status_info = vec![0x30, (3 + fail_info.len()) as u8, 0x02, 0x01, 0x02];
    status_info.extend(fail_info);
    let mut response = vec![0x30, status_info.len() as u8];
    response.extend(status_info);
    response
}

impl KeyStore {
    /// Stamps a SHA-256 imprint with the current time.
    pub fn time_stamp(&self, imprint: &[u8; 32]) -> Result<TimeStampToken, CryptoError> {
        let imprint = MessageImprint {
            hash_algorithm: spki::AlgorithmIdentifier {
                oid: ID_SHA256,
                parameters: None,
            },
            hashed_message: OctetString::new(imprint.to_vec()).map_err(malformed)?,
        };
        let token = self
            .sign_time_stamp(imprint, None, true)?
            .to_der()
            .map_err(malformed)?;
        Ok(TimeStampToken {
            token: crate::b64url(&token),
        })
    }

    /// Answers a DER `TimeStampReq` with a DER `TimeStampResp` (RFC 3161 §2.4): a token for a
    /// SHA-256 imprint, echoing the nonce and carrying the certificate if asked; otherwise a
    /// rejection with the failure reason. Never fails on the request's content.
    pub fn answer_time_stamp_request(&self, request: &[u8]) -> Vec<u8> {
        use cmpv2::status::{PkiStatus, PkiStatusInfo};
        let outcome = x509_tsp::TimeStampReq::from_der(request)
            .map_err(|_| Refusal::BadDataFormat)
            .and_then(|req| self.grant(&req));
        match outcome {
            Ok(token) => x509_tsp::TimeStampResp {
                status: PkiStatusInfo {
                    status: PkiStatus::Accepted,
                    status_string: None,
                    fail_info: None,
                },
                time_stamp_token: Some(token),
            }
            .to_der()
            .expect("a TimeStampResp of our own making encodes"),
            Err(refusal) => rejection(refusal),
        }
    }

    fn grant(&self, req: &x509_tsp::TimeStampReq) -> Result<ContentInfo, Refusal> {
        let imprint = &req.message_imprint;
        let params_absent_or_null = imprint
            .hash_algorithm
            .parameters
            .as_ref()
            .is_none_or(|p| p.tag() == Tag::Null);
        if imprint.hash_algorithm.oid != ID_SHA256 || !params_absent_or_null {
            return Err(Refusal::BadAlg);
        }
        if imprint.hashed_message.as_bytes().len() != 32 {
            return Err(Refusal::BadDataFormat);
        }
        if req.req_policy.is_some_and(|p| p.to_string() != TSA_POLICY) {
            return Err(Refusal::UnacceptedPolicy);
        }
        if req.extensions.is_some() {
            return Err(Refusal::UnacceptedExtension);
        }
        self.sign_time_stamp(imprint.clone(), req.nonce.clone(), req.cert_req)
            .map_err(|_| Refusal::SystemFailure)
    }

    /// `imprint` goes into the TSTInfo exactly as given: RFC 3161 §2.4.2 asks for the request's.
    fn sign_time_stamp(
        &self,
        imprint: MessageImprint,
        nonce: Option<Int>,
        include_certificate: bool,
    ) -> Result<ContentInfo, CryptoError> {
        let key = self.active(KeyPurpose::TimeStamping, KeyAlg::ES256)?;
        let crate::keystore::SecretKey::P256(secret) = &key.secret else {
            return Err(CryptoError::NoActiveKey("time-stamping ES256".into()));
        };
        let cert_pem = key.public.certificate_pem.as_deref().ok_or_else(|| {
            CryptoError::Certificate("the time-stamping key has no certificate".into())
        })?;
        let cert = certificate_from_pem(cert_pem)?;
        let cert_der = cert.to_der().map_err(malformed)?;

        let serial = crate::random_serial();
        let tst_info = TstInfo {
            version: TspVersion::V1,
            policy: ObjectIdentifier::new(TSA_POLICY).map_err(malformed)?,
            message_imprint: imprint,
            serial_number: Int::new(&serial).map_err(malformed)?,
            gen_time: GeneralizedTime::from_system_time(std::time::SystemTime::now())
                .map_err(malformed)?,
            accuracy: None,
            ordering: false,
            nonce,
            tsa: None,
            extensions: None,
        };
        let content = EncapsulatedContentInfo {
            econtent_type: ID_CT_TST_INFO,
            econtent: Some(
                Any::new(Tag::OctetString, tst_info.to_der().map_err(malformed)?)
                    .map_err(malformed)?,
            ),
        };
        let signer = LowS(p256::ecdsa::SigningKey::from(secret));
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        });
        let mut signer_info =
            SignerInfoBuilder::new(&signer, sid, sha256_algorithm(), &content, None)
                .map_err(malformed)?;
        signer_info
            .add_signed_attribute(signing_certificate_v2(&cert_der)?)
            .map_err(malformed)?;
        let mut builder = SignedDataBuilder::new(&content);
        builder
            .add_digest_algorithm(sha256_algorithm())
            .map_err(malformed)?;
        if include_certificate {
            builder
                .add_certificate(CertificateChoices::Certificate(cert))
                .map_err(malformed)?;
        }
        builder
            .add_signer_info::<_, p256::ecdsa::DerSignature>(signer_info)
            .map_err(malformed)?
            .build()
            .map_err(malformed)
    }
}

impl TimeStampToken {
    pub fn der(&self) -> Result<Vec<u8>, CryptoError> {
        crate::b64url_decode(&self.token)
    }

    /// The SignedData, from a token in canonical DER only: re-encoding must give the same bytes.
    fn signed_data(&self) -> Result<SignedData, CryptoError> {
        let der = self.der()?;
        let info = ContentInfo::from_der(&der).map_err(malformed)?;
        if info.content_type != ID_SIGNED_DATA || info.to_der().map_err(malformed)? != der {
            return Err(malformed("not a canonical SignedData"));
        }
        info.content.decode_as::<SignedData>().map_err(malformed)
    }

    /// The TSTInfo the token carries.
    pub fn tst_info(&self) -> Result<TstInfo, CryptoError> {
        let signed = self.signed_data()?;
        let econtent = signed
            .encap_content_info
            .econtent
            .ok_or_else(|| malformed("no content"))?;
        TstInfo::from_der(econtent.value()).map_err(malformed)
    }

    /// Checks that the token stamps `imprint` and is signed by one of the platform's
    /// time-stamping keys in `keys`: content type, message digest, signing-certificate and
    /// signature, as an RFC 3161 client does.
    pub fn verify(&self, keys: &PublicKeySet, imprint: &[u8; 32]) -> Result<(), CryptoError> {
        let signed = self.signed_data()?;
        if signed.encap_content_info.econtent_type != ID_CT_TST_INFO {
            return Err(malformed("content is not a TSTInfo"));
        }
        let econtent = signed
            .encap_content_info
            .econtent
            .as_ref()
            .ok_or_else(|| malformed("no content"))?;
        if econtent.tag() != Tag::OctetString {
            return Err(malformed("content is not an OCTET STRING"));
        }
        let tst = TstInfo::from_der(econtent.value()).map_err(malformed)?;
        if tst.message_imprint.hash_algorithm.oid != ID_SHA256
            || tst.message_imprint.hashed_message.as_bytes() != imprint
        {
            return Err(CryptoError::BadSignature("time-stamp imprint".into()));
        }
        let [signer] = signed.signer_infos.0.as_slice() else {
            return Err(malformed("exactly one signer expected"));
        };
        // What the signature does not cover must still be exactly what we issue: no unsigned
        // attributes, no CRLs, the one certificate of the signer.
        if signer.unsigned_attrs.is_some() || signed.crls.is_some() {
            return Err(malformed("unexpected unsigned attributes or CRLs"));
        }
        if signed.certificates.as_ref().is_some_and(|c| c.0.len() != 1) {
            return Err(malformed("exactly one certificate expected"));
        }
        let digest_algorithms: Vec<_> = signed.digest_algorithms.iter().map(|a| a.oid).collect();
        if signed.version != cms::content_info::CmsVersion::V3
            || signer.version != cms::content_info::CmsVersion::V1
            || digest_algorithms != [ID_SHA256]
            || signer.digest_alg.oid != ID_SHA256
            || signer.signature_algorithm.oid != ID_ECDSA_WITH_SHA256
            || tst.version != TspVersion::V1
        {
            return Err(malformed("unexpected version or algorithm"));
        }
        let attrs = signer
            .signed_attrs
            .as_ref()
            .ok_or_else(|| malformed("no signed attributes"))?;
        let attr = |oid| {
            attrs
                .iter()
                .find(|a| a.oid == oid)
                .and_then(|a| a.values.iter().next())
        };
        let digest = attr(ID_MESSAGE_DIGEST)
            .and_then(|v| v.decode_as::<OctetString>().ok())
            .ok_or_else(|| malformed("no message digest"))?;
        if digest.as_bytes() != sha256(econtent.value()) {
            return Err(CryptoError::BadSignature(
                "time-stamp content digest".into(),
            ));
        }
        let content_type = attr(ID_CONTENT_TYPE)
            .and_then(|v| v.decode_as::<ObjectIdentifier>().ok())
            .ok_or_else(|| malformed("no content type"))?;
        if content_type != ID_CT_TST_INFO {
            return Err(malformed("signed content type is not TSTInfo"));
        }
        // The signer's certificate, carried in the token, must hold one of our TSA keys.
        let certificates = signed
            .certificates
            .as_ref()
            .ok_or_else(|| malformed("no certificate"))?;
        let cert = certificates
            .0
            .iter()
            .find_map(|c| match c {
                CertificateChoices::Certificate(cert) => Some(cert),
                _ => None,
            })
            .ok_or_else(|| malformed("no certificate"))?;
        let names_cert = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        });
        if signer.sid != names_cert {
            return Err(malformed("the signer is not the certificate carried"));
        }
        let cert_der = cert.to_der().map_err(malformed)?;
        let ess = attr(ID_SIGNING_CERTIFICATE_V2)
            .ok_or_else(|| malformed("no signing-certificate attribute"))?;
        let expected_ess = signing_certificate_v2(&cert_der)?;
        if Some(ess) != expected_ess.values.iter().next() {
            return Err(CryptoError::BadSignature(
                "time-stamp signing certificate".into(),
            ));
        }
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(malformed)?;
        let key = keys
            .keys
            .iter()
            .find(|k| {
                k.purpose == KeyPurpose::TimeStamping
                    && k.spki_der().ok().as_deref() == Some(spki.as_slice())
            })
            .ok_or_else(|| CryptoError::UnknownKey("time-stamping certificate".into()))?;
        let signature = p256::ecdsa::Signature::from_der(signer.signature.as_bytes())
            .map_err(|_| CryptoError::BadSignature(key.kid.clone()))?;
        key.verify(&attrs.to_der().map_err(malformed)?, &signature.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Passphrase;

    #[test]
    fn rejections_encode_their_failure_bit() {
        // badAlg (bit 0) and systemFailure (bit 25), checked against hand-encoded DER.
        assert_eq!(
            rejection(Refusal::BadAlg),
            [0x30, 0x09, 0x30, 0x07, 0x02, 0x01, 0x02, 0x03, 0x02, 0x07, 0x80]
        );
        assert_eq!(
            rejection(Refusal::SystemFailure),
            [0x30, 0x0c, 0x30, 0x0a, 0x02, 0x01, 0x02, 0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40]
        );
    }

    #[test]
    fn tokens_verify_and_detect_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::create(&dir.path().join("k.json"), &Passphrase::new("p")).unwrap();
        let imprint = crate::sha256(b"checkpoint");
        let token = store.time_stamp(&imprint).unwrap();
        let keys = store.public_keys();
        token.verify(&keys, &imprint).unwrap();
        // Random serials of every shape (leading zero bits included) still encode as valid DER.
        for _ in 0..600 {
            store
                .time_stamp(&imprint)
                .unwrap()
                .verify(&keys, &imprint)
                .unwrap();
        }
        assert_eq!(token.tst_info().unwrap().policy.to_string(), TSA_POLICY);
        assert!(token.verify(&keys, &crate::sha256(b"other")).is_err());

        // Flip one byte anywhere in the DER: the token must not verify (or not parse).
        let der = token.der().unwrap();
        for i in 0..der.len() {
            let mut bad = der.clone();
            bad[i] ^= 0x01;
            let forged = TimeStampToken {
                token: crate::b64url(&bad),
            };
            assert!(
                forged.verify(&keys, &imprint).is_err(),
                "byte {i} of {}",
                der.len()
            );
        }
        // A token from another platform's TSA is refused.
        let other = KeyStore::create(&dir.path().join("o.json"), &Passphrase::new("p")).unwrap();
        let foreign = other.time_stamp(&imprint).unwrap();
        assert!(foreign.verify(&keys, &imprint).is_err());
    }
}
