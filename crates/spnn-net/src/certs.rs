//! Certificates for a deployment: one CA and one certificate per party.
//!
//! Each party's certificate names the party's role (`server`, `holder-0`, `dealer`, …) as its
//! DNS subject alternative name and is valid for both TLS server and client authentication,
//! because every party both accepts and dials connections. Peers verify each other against the
//! deployment's CA and check that the certificate names the party they expect, so a certificate
//! from another deployment, or one party's certificate used by another, is refused.
//!
//! **Keys never leave their owner.** The real workflow has three steps on three kinds of host:
//!
//! 1. the CA operator runs [`CertificateAuthority::generate`] (`ca.pem`, `ca.key`);
//! 2. each party generates its own key and a PKCS#10 request on its own host
//!    ([`CertificateRequest::generate`]) and sends only the request;
//! 3. the CA checks the request's signature and that it names the party it claims to be,
//!    and signs a certificate with **its own** usages and validity ([`CertificateAuthority::sign`]),
//!    which goes back to the party with `ca.pem`.
//!
//! [`DeploymentCerts::generate`] runs all three in one place for demonstrations and tests —
//! whoever runs it holds every party's private key and could sit inside any link.
//!
//! Public files are written world-readable; every private key readable by its owner only
//! ([`crate::files::write_private`]).

use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use time::{Duration, OffsetDateTime};

use crate::error::{NetError, Result};
use crate::party::Role;

/// Validity of generated certificates.
const VALIDITY_DAYS: i64 = 3650;

/// A deployment's certificate authority: its certificate and the key that signs requests.
pub struct CertificateAuthority {
    /// The CA certificate, PEM: every party trusts it.
    pub cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificateAuthority(key <redacted>)")
    }
}

impl CertificateAuthority {
    /// A fresh CA named after `deployment`.
    pub fn generate(deployment: &str) -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("spnn CA {deployment}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params);
        let key = KeyPair::generate().map_err(cert_err)?;
        let cert = params.self_signed(&key).map_err(cert_err)?;
        let key_pem = key.serialize_pem();
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads `ca.pem` and `ca.key` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let cert_pem = read(dir, "ca.pem")?;
        let key_pem = read(dir, "ca.key")?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| NetError::Certificate(format!("ca.key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| NetError::Certificate(format!("ca.pem: {e}")))?;
        Ok(Self {
            cert_pem,
            key_pem,
            issuer,
        })
    }

    /// Writes `ca.pem` (public) and `ca.key` (mode 0600) into `dir`.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        write_public(&dir.join("ca.pem"), &self.cert_pem)?;
        write_secret(&dir.join("ca.key"), &self.key_pem)
    }

    /// Signs `request` (PEM) for the party `name` after checking its signature (the requester
    /// holds the key) and that it asks for exactly `name`. The certificate's usages and
    /// validity are the CA's, whatever the request asked for. Returns the certificate, PEM.
    pub fn sign(&self, request: &str, name: &str) -> Result<String> {
        Role::from_name(name)
            .map_err(|_| NetError::Certificate(format!("{name:?} is not a party name")))?;
        let csr = CertificateSigningRequestParams::from_pem(request)
            .map_err(|e| NetError::Certificate(format!("certificate request for {name}: {e}")))?;
        let asked: Vec<String> = csr
            .params
            .subject_alt_names
            .iter()
            .map(|s| match s {
                SanType::DnsName(n) => n.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        if asked != [name] {
            return Err(NetError::Certificate(format!(
                "the request asks for {asked:?}, not for {name}"
            )));
        }
        let cert = party_params(name)?
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(cert_err)?;
        Ok(cert.pem())
    }
}

/// A party's key and certificate request, made on the party's own host.
#[derive(Clone)]
pub struct CertificateRequest {
    /// The party's name.
    pub name: String,
    /// The PKCS#10 request, PEM: goes to the CA.
    pub request_pem: String,
    /// The private key, PEM. Secret: never leaves the party.
    pub key_pem: String,
}

impl std::fmt::Debug for CertificateRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateRequest({}, key <redacted>)", self.name)
    }
}

impl CertificateRequest {
    /// A fresh key for party `name` and a request signed with it.
    pub fn generate(name: &str) -> Result<Self> {
        Role::from_name(name)
            .map_err(|_| NetError::Certificate(format!("{name:?} is not a party name")))?;
        let key = KeyPair::generate().map_err(cert_err)?;
        // A request carries the name only; usages and validity are the CA's to set.
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(cert_err)?;
        params.distinguished_name.push(DnType::CommonName, name);
        let request = params.serialize_request(&key).map_err(cert_err)?;
        Ok(Self {
            name: name.into(),
            request_pem: request.pem().map_err(cert_err)?,
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `<name>.key` (mode 0600) and `<name>.csr` into `dir`.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        write_secret(&dir.join(format!("{}.key", self.name)), &self.key_pem)?;
        write_public(&dir.join(format!("{}.csr", self.name)), &self.request_pem)
    }
}

fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map_err(|e| NetError::Io(format!("{}: {e}", path.display())))
}

/// What a party's certificate says: its name as DNS SAN and CN, TLS server and client use.
fn party_params(name: &str) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(vec![name.to_string()]).map_err(cert_err)?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.use_authority_key_identifier_extension = true;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    validity(&mut p);
    Ok(p)
}

/// One party's certificate and private key, PEM-encoded.
#[derive(Clone)]
pub struct PartyCredentials {
    /// The party's name (its certificate's DNS name).
    pub name: String,
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM. Secret.
    pub key_pem: String,
}

impl std::fmt::Debug for PartyCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PartyCredentials({}, key <redacted>)", self.name)
    }
}

/// A deployment's CA and party credentials.
#[derive(Clone, Debug)]
pub struct DeploymentCerts {
    /// The CA certificate, PEM: every party trusts it.
    pub ca_cert_pem: String,
    /// The CA's private key, PEM (kept to add parties later). Secret.
    pub ca_key_pem: String,
    /// One entry per party.
    pub parties: Vec<PartyCredentials>,
}

fn cert_err(e: impl std::fmt::Display) -> NetError {
    NetError::Certificate(e.to_string())
}

fn validity(params: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(VALIDITY_DAYS);
}

impl DeploymentCerts {
    /// A fresh CA named `deployment` and a certificate for each of `names`, all in one place:
    /// **for demonstrations and tests** (module docs).
    pub fn generate(deployment: &str, names: &[String]) -> Result<Self> {
        let ca = CertificateAuthority::generate(deployment)?;
        let parties = names
            .iter()
            .map(|name| {
                let request = CertificateRequest::generate(name)?;
                Ok(PartyCredentials {
                    name: name.clone(),
                    cert_pem: ca.sign(&request.request_pem, name)?,
                    key_pem: request.key_pem,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            ca_cert_pem: ca.cert_pem.clone(),
            ca_key_pem: ca.key_pem.clone(),
            parties,
        })
    }

    /// The credentials of `name`.
    pub fn party(&self, name: &str) -> Result<&PartyCredentials> {
        self.parties
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| NetError::Certificate(format!("no credentials for {name}")))
    }

    /// Writes `ca.pem`, `ca.key` and `<name>.pem`, `<name>.key` for every party into `dir`
    /// (created if missing). Keys get mode 0600.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        write_public(&dir.join("ca.pem"), &self.ca_cert_pem)?;
        write_secret(&dir.join("ca.key"), &self.ca_key_pem)?;
        for p in &self.parties {
            write_public(&dir.join(format!("{}.pem", p.name)), &p.cert_pem)?;
            write_secret(&dir.join(format!("{}.key", p.name)), &p.key_pem)?;
        }
        Ok(())
    }

    /// This party's [`Identity`] in the deployment.
    pub fn identity(&self, name: &str) -> Result<Identity> {
        Identity::from_pem(&self.ca_cert_pem, self.party(name)?)
    }
}

fn write_public(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(|e| NetError::Io(format!("{}: {e}", path.display())))
}

/// Writes a secret file readable by its owner only (created with mode 0600, never wider).
pub fn write_secret(path: &Path, contents: &str) -> Result<()> {
    crate::files::write_private(path, contents.as_bytes())
}

/// A party's TLS identity: the deployment CA, its certificate chain and private key.
pub struct Identity {
    name: String,
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({}, key <redacted>)", self.name)
    }
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl Identity {
    /// Parses PEM credentials.
    pub fn from_pem(ca_pem: &str, party: &PartyCredentials) -> Result<Self> {
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .map_err(|e| NetError::Certificate(format!("CA certificate: {e}")))?;
        let chain = CertificateDer::pem_slice_iter(party.cert_pem.as_bytes())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| NetError::Certificate(format!("certificate of {}: {e}", party.name)))?;
        if chain.is_empty() {
            return Err(NetError::Certificate(format!(
                "no certificate for {}",
                party.name
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(party.key_pem.as_bytes())
            .map_err(|e| NetError::Certificate(format!("private key of {}: {e}", party.name)))?;
        Ok(Self {
            name: party.name.clone(),
            ca,
            chain,
            key,
        })
    }

    /// Loads `ca.pem`, `<name>.pem` and `<name>.key` from `dir`.
    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        let read = |file: String| {
            let path = dir.join(&file);
            std::fs::read_to_string(&path)
                .map_err(|e| NetError::Io(format!("{}: {e}", path.display())))
        };
        let ca = read("ca.pem".into())?;
        let party = PartyCredentials {
            name: name.into(),
            cert_pem: read(format!("{name}.pem"))?,
            key_pem: read(format!("{name}.key"))?,
        };
        Self::from_pem(&ca, &party)
    }

    /// The party name this identity is for.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).map_err(cert_err)?;
        Ok(roots)
    }

    /// TLS 1.3 server configuration that requires a client certificate from the CA.
    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), provider.clone())
                .build()
                .map_err(cert_err)?;
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(cert_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(cert_err)?;
        Ok(Arc::new(cfg))
    }

    /// TLS 1.3 client configuration that trusts only the CA and presents this identity.
    pub(crate) fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        let cfg = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(cert_err)?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(cert_err)?;
        Ok(Arc::new(cfg))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks that a (chain-verified) end-entity certificate names `name`.
pub(crate) fn certificate_names(cert: &CertificateDer<'_>, name: &str) -> Result<()> {
    let ee = webpki::EndEntityCert::try_from(cert).map_err(cert_err)?;
    let server_name = ServerName::try_from(name.to_string()).map_err(cert_err)?;
    ee.verify_is_valid_for_subject_name(&server_name)
        .map_err(|_| NetError::Certificate(format!("the peer's certificate is not for {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_load_and_name_their_party() {
        let names = vec!["server".to_string(), "holder-0".to_string()];
        let d = DeploymentCerts::generate("test", &names).unwrap();
        let dir = tempfile::tempdir().unwrap();
        d.write_to(dir.path()).unwrap();
        let id = Identity::load(dir.path(), "holder-0").unwrap();
        assert_eq!(id.name(), "holder-0");
        id.server_config().unwrap();
        id.client_config().unwrap();
        certificate_names(&id.chain[0], "holder-0").unwrap();
        assert!(certificate_names(&id.chain[0], "server").is_err());
        assert!(!format!("{id:?}").contains("PRIVATE"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("holder-0.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(Identity::load(dir.path(), "dealer").is_err());
        let garbage = PartyCredentials {
            name: "x".into(),
            cert_pem: "not pem".into(),
            key_pem: "not pem".into(),
        };
        assert!(Identity::from_pem(&d.ca_cert_pem, &garbage).is_err());
    }

    #[test]
    fn the_ca_signs_requests_made_elsewhere_and_checks_what_they_ask_for() {
        let (ca_dir, party_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        CertificateAuthority::generate("test")
            .unwrap()
            .write_to(ca_dir.path())
            .unwrap();
        // The party's host: its key and request; only the request leaves.
        let request = CertificateRequest::generate("holder-1").unwrap();
        request.write_to(party_dir.path()).unwrap();
        let csr = std::fs::read_to_string(party_dir.path().join("holder-1.csr")).unwrap();
        assert!(!csr.contains("PRIVATE"));
        // The CA's host: a CA loaded from its files signs it.
        let ca = CertificateAuthority::load(ca_dir.path()).unwrap();
        let cert = ca.sign(&csr, "holder-1").unwrap();
        std::fs::write(party_dir.path().join("holder-1.pem"), &cert).unwrap();
        std::fs::write(party_dir.path().join("ca.pem"), &ca.cert_pem).unwrap();
        let id = Identity::load(party_dir.path(), "holder-1").unwrap();
        certificate_names(&id.chain[0], "holder-1").unwrap();
        id.client_config().unwrap();
        // A request is signed for the name it asks for, and only if it is intact.
        let e = ca.sign(&csr, "holder-0").unwrap_err().to_string();
        assert!(e.contains("not for holder-0"), "{e}");
        assert!(ca.sign(&csr, "nobody").is_err());
        let mut tampered: Vec<char> = csr.chars().collect();
        let mid = tampered.len() / 2;
        tampered[mid] = if tampered[mid] == 'A' { 'B' } else { 'A' };
        let tampered: String = tampered.into_iter().collect();
        assert!(ca.sign(&tampered, "holder-1").is_err());
        assert!(ca.sign("garbage", "holder-1").is_err());
        assert!(CertificateRequest::generate("not-a-party").is_err());
        assert!(!format!("{ca:?} {request:?}").contains("PRIVATE"));
    }
}
