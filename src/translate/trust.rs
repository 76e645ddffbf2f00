//! Trust anchors: whether a PEM text is a usable CA bundle, for backend TLS
//! validation and client certificate validation alike.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Whether `pem` is a PEM bundle of at least one parseable certificate.
pub fn check_ca(pem: &str) -> Result<(), String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no certificate".into());
    }
    for (i, c) in certs.iter().enumerate() {
        x509_parser::parse_x509_certificate(c)
            .map_err(|e| format!("certificate {}: {e}", i + 1))?;
    }
    Ok(())
}
