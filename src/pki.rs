//! portico's own certificate authority for xDS mutual TLS.
//!
//! In: the CA (generated once and kept in a Secret of portico's namespace),
//! the clock. Out: the xDS server's certificate, one client certificate per
//! Gateway whose URI SAN names the Gateway (`spiffe://portico.dev/gateway/<ns>/<name>`),
//! and the check that reads that name back from the certificate an Envoy presents.
//! Certificates are renewed once two thirds of their lifetime has passed.
//!
//! The CA Secret's `ca.crt` is a bundle of trusted CA certificates, the one
//! that signs first; `ca.key` is that first certificate's key. During a CA
//! rotation the bundle holds two CAs: certificates of either are trusted,
//! new ones are signed by the first.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Lifetime of the CA.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Lifetime of server and client certificates.
pub const LEAF_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
const URI_PREFIX: &str = "spiffe://portico.dev/gateway/";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

/// A certificate and its key, PEM-encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The CA: its certificate and signing key.
pub struct Authority {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

fn validity(params: &mut CertificateParams, now: SystemTime, lifetime: Duration) {
    // A little slack for clocks that lag ours.
    params.not_before = (now - Duration::from_secs(300)).into();
    params.not_after = (now + lifetime).into();
}

impl Authority {
    /// A new CA.
    pub fn generate(now: SystemTime) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "portico xDS CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, now, CA_LIFETIME);
        let cert = params.self_signed(&key)?;
        Self::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// The CA kept in a Secret: `cert_pem` is the bundle of trusted CA
    /// certificates, the signing one first, and `key_pem` that one's key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let signing = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .next()
            .ok_or_else(|| PkiError::Invalid("ca.crt holds no certificate".into()))?
            .map_err(|e| PkiError::Invalid(format!("ca.crt: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&signing)
            .map_err(|e| PkiError::Invalid(format!("ca.crt: {e}")))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::Invalid(
                "ca.key is not the key of the first certificate in ca.crt".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&signing, key)?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
        })
    }

    /// The trusted CA certificates (PEM bundle), the signing one first.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The xDS server's certificate for these DNS names.
    pub fn issue_server(&self, dns_names: &[String], now: SystemTime) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(dns_names.to_vec())?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, "portico xDS server", now)
    }

    /// The client certificate of one Gateway's Envoys (`gateway` is `<ns>/<name>`).
    pub fn issue_gateway(&self, gateway: &str, now: SystemTime) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::default();
        let uri = format!("{URI_PREFIX}{gateway}");
        params.subject_alt_names =
            vec![SanType::URI(uri.try_into().map_err(|_| {
                PkiError::Invalid(format!("gateway {gateway:?}: not a URI"))
            })?)];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, "portico Envoy", now)
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        common_name: &str,
        now: SystemTime,
    ) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, now, LEAF_LIFETIME);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Whether `cert_pem` should be replaced: unreadable, not issued by the
    /// signing CA (the first in the bundle), or past two thirds of its lifetime.
    pub fn needs_renewal(&self, cert_pem: &str, now: SystemTime) -> bool {
        let Ok(der) = CertificateDer::from_pem_slice(cert_pem.as_bytes()) else {
            return true;
        };
        let Ok(ca) = CertificateDer::from_pem_slice(self.cert_pem.as_bytes()) else {
            return true;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
            return true;
        };
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&ca) else {
            return true;
        };
        if cert.verify_signature(Some(ca.public_key())).is_err() {
            return true;
        }
        let start = cert.validity().not_before.timestamp();
        let end = cert.validity().not_after.timestamp();
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        now >= start + (end - start) * 2 / 3
    }
}

/// The Gateway (`<ns>/<name>`) a client certificate names, if any.
pub fn gateway_of(cert: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(uri) => {
            uri.strip_prefix(URI_PREFIX).map(str::to_string)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_certificates_name_their_gateway_and_renew_late_in_life() {
        let now = SystemTime::now();
        let ca = Authority::generate(now).expect("CA");
        let issued = ca.issue_gateway("web/public", now).expect("issued");
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("pem");
        assert_eq!(gateway_of(&der).as_deref(), Some("web/public"));
        assert!(!ca.needs_renewal(&issued.cert_pem, now));
        assert!(!ca.needs_renewal(&issued.cert_pem, now + LEAF_LIFETIME / 2));
        assert!(ca.needs_renewal(&issued.cert_pem, now + LEAF_LIFETIME * 3 / 4));

        let other = Authority::generate(now).expect("second CA");
        assert!(
            other.needs_renewal(&issued.cert_pem, now),
            "a certificate of another CA is replaced"
        );
        assert!(ca.needs_renewal("not a certificate", now));

        let bundle = format!("{}{}", other.cert_pem(), ca.cert_pem());
        let rotated = Authority::from_pem(&bundle, other.key_pem()).expect("two-CA bundle");
        assert!(
            rotated.needs_renewal(&issued.cert_pem, now),
            "once the second CA signs, certificates of the first are reissued"
        );
        let fresh = rotated.issue_gateway("web/public", now).expect("issued");
        assert!(
            !other.needs_renewal(&fresh.cert_pem, now),
            "signed by the first of the bundle"
        );
        assert!(
            Authority::from_pem(&bundle, ca.key_pem()).is_err(),
            "the key must be the first certificate's"
        );
        assert!(Authority::from_pem("", ca.key_pem()).is_err());

        let reloaded = Authority::from_pem(ca.cert_pem(), ca.key_pem()).expect("reload");
        let server = reloaded
            .issue_server(&["portico-xds.portico-system.svc".into()], now)
            .expect("server");
        assert!(!ca.needs_renewal(&server.cert_pem, now));
        let der = CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).expect("pem");
        assert_eq!(
            gateway_of(&der),
            None,
            "server certificates name no Gateway"
        );
    }
}
