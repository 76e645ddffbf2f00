//! Mutual TLS for the ADS server: Envoys must present a client certificate of
//! one of portico's trusted CAs, and both the server certificate and the
//! trusted CAs can be replaced while serving (new handshakes get the new
//! ones; open streams keep theirs).
//!
//! In: the CA bundle and the current server certificate (from `pki`).
//! Out: the acceptor `incoming` completes handshakes with; the Gateway a
//! connection's certificate names reaches the ADS service through tonic's
//! connection info.

use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use tokio_rustls::TlsAcceptor;

use crate::pki::Issued;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: {message}")]
    Pem { what: &'static str, message: String },
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn pem_err(what: &'static str) -> impl Fn(rustls::pki_types::pem::Error) -> TlsError {
    move |e| TlsError::Pem {
        what,
        message: e.to_string(),
    }
}

/// The server certificate in use; `replace` swaps it for new handshakes.
#[derive(Debug)]
pub struct ServerCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCertificate {
    pub fn new(issued: &Issued) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self {
            current: RwLock::new(certified_key(issued)?),
        }))
    }

    pub fn replace(&self, issued: &Issued) -> Result<(), TlsError> {
        let key = certified_key(issued)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = key;
        Ok(())
    }
}

fn certified_key(issued: &Issued) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(pem_err("server certificate"))?;
    let key =
        PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).map_err(pem_err("server key"))?;
    let signing = any_supported_type(&key)?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

/// The CAs whose client certificates are accepted; `replace` swaps them for
/// new handshakes. Sends no CA names in its certificate request (an Envoy
/// has one client certificate and presents it anyway).
#[derive(Debug)]
pub struct ClientTrust {
    current: RwLock<Arc<dyn ClientCertVerifier>>,
}

fn verifier(ca_pem: &str) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.map_err(pem_err("CA certificate"))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?)
}

impl ClientTrust {
    /// Trusts every CA certificate in the PEM bundle `ca_pem`.
    pub fn new(ca_pem: &str) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self {
            current: RwLock::new(verifier(ca_pem)?),
        }))
    }

    /// Trusts the CAs of `ca_pem` instead, from the next handshake on.
    pub fn replace(&self, ca_pem: &str) -> Result<(), TlsError> {
        let next = verifier(ca_pem)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
        Ok(())
    }

    fn get(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl ClientCertVerifier for ClientTrust {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.get()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.get().supported_verify_schemes()
    }
}

/// A TLS acceptor that requires a client certificate of a CA in `ca_pem`.
pub fn acceptor(ca_pem: &str, server: Arc<ServerCertificate>) -> Result<TlsAcceptor, TlsError> {
    acceptor_with(ClientTrust::new(ca_pem)?, server)
}

/// A TLS acceptor that requires a client certificate `trust` accepts.
pub fn acceptor_with(
    trust: Arc<ClientTrust>,
    server: Arc<ServerCertificate>,
) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(trust)
        .with_cert_resolver(server);
    config.alpn_protocols = vec![b"h2".to_vec()];
    // No session resumption: a resumed session skips the client
    // certificate check, so a session from before a CA was dropped from
    // `trust` would still be let in with a certificate of that CA.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Authority;
    use std::time::SystemTime;

    fn der(issued: &Issued) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("pem")
    }

    #[test]
    fn both_cas_of_a_bundle_are_trusted_and_reloading_swaps_the_trust() {
        let now = SystemTime::now();
        let old = Authority::generate(now).expect("old CA");
        let new = Authority::generate(now).expect("new CA");
        let old_client = der(&old.issue_gateway("web/a", now).expect("old client"));
        let new_client = der(&new.issue_gateway("web/a", now).expect("new client"));
        let accepts = |trust: &ClientTrust, cert: &CertificateDer<'_>| {
            trust.verify_client_cert(cert, &[], UnixTime::now()).is_ok()
        };

        let trust = ClientTrust::new(old.cert_pem()).expect("old only");
        assert!(accepts(&trust, &old_client));
        assert!(!accepts(&trust, &new_client), "a CA not in the bundle");

        // The same trust, reloaded with both CAs: no new acceptor needed.
        let bundle = format!("{}{}", new.cert_pem(), old.cert_pem());
        trust.replace(&bundle).expect("two-CA bundle");
        assert!(accepts(&trust, &old_client), "old CA still trusted");
        assert!(accepts(&trust, &new_client), "new CA trusted");
        let issued = new
            .issue_server(&["portico-xds".into()], now)
            .expect("server");
        let server = ServerCertificate::new(&issued).expect("server certificate");
        assert!(acceptor_with(Arc::clone(&trust), server).is_ok());

        trust.replace(new.cert_pem()).expect("old CA dropped");
        assert!(!accepts(&trust, &old_client), "old CA no longer trusted");
        assert!(accepts(&trust, &new_client));

        assert!(
            trust.replace("not PEM").is_err(),
            "a bundle without CAs is refused"
        );
        assert!(accepts(&trust, &new_client), "and the trust in use kept");
    }
}
