//! The LDAP listener, plain or LDAPS: one task per connection, each answering its operations
//! in order, with a cap on connections, an idle timeout and BER size and depth limits on every
//! message (docs/ldap.md, "The listener").

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use ldap3_proto::LdapCodec;
use ldap3_proto::proto::LdapMsg;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{Decoder, Encoder, Framed};

use crate::session::{Next, Session, Shared};

/// Limits of a listener.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// The largest request message, in bytes.
    pub max_message_bytes: usize,
    /// The deepest nesting of a request's BER (a filter of `!(!(!(…)))`).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(300),
            max_connections: 256,
            max_message_bytes: 64 * 1024,
            max_depth: 64,
        }
    }
}

/// The certificate and key of an LDAPS listener, read from PEM files.
pub fn tls_acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| {
            format!(
                "{}: cannot read the certificate chain: {e}",
                cert_file.display()
            )
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate chain: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        format!(
            "{}: cannot read a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "{} and {}: the key does not fit the certificate, or is not usable: {e}",
                cert_file.display(),
                key_file.display()
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A running listener.
pub struct RunningLdap {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningLdap {
    /// Binds `addr` and serves plain LDAP until [`RunningLdap::stop`].
    pub async fn start(
        addr: SocketAddr,
        shared: Arc<Shared>,
        limits: Limits,
    ) -> std::io::Result<Self> {
        Self::start_with(addr, shared, limits, None).await
    }

    /// Like [`RunningLdap::start`]; with `tls`, every connection is LDAPS (TLS from the first
    /// byte).
    pub async fn start_with(
        addr: SocketAddr,
        shared: Arc<Shared>,
        limits: Limits,
        tls: Option<TlsAcceptor>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let secure = tls.is_some();
        let task = tokio::spawn(serve(listener, shared, limits, tls, async {
            let _ = stopped.await;
        }));
        tracing::info!(%addr, tls = secure, "LDAP listening");
        Ok(Self {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// Stops accepting; open connections end with their tasks.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Accepts connections until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "LDAP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "LDAP connection refused: too many open (raise ldap_max_connections)");
            metrics::counter!("orgsync_ldap_connections_refused_total").increment(1);
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        let limits = limits.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            metrics::counter!("orgsync_ldap_connections_total").increment(1);
            match tls {
                None => connection(socket, peer, shared, &limits).await,
                Some(acceptor) => {
                    // The handshake counts against the idle timeout too.
                    match tokio::time::timeout(limits.idle_timeout, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => connection(stream, peer, shared, &limits).await,
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "LDAPS handshake failed");
                        }
                        Err(_) => tracing::info!(%peer, "LDAPS handshake timed out"),
                    }
                }
            }
            drop(slot);
        });
    }
}

/// The most responses written at once.
const WRITE_BATCH: usize = 32;
/// The most batches waiting for a slow reader.
const WRITE_BATCHES: usize = 4;

/// One connection: read a message, answer it, until the client unbinds, goes idle, sends
/// something that is not LDAP, or disconnects.
pub async fn connection<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>, limits: &Limits)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let codec = Bounded {
        inner: LdapCodec::new(Some(limits.max_message_bytes), Some(limits.max_depth)),
        max: limits.max_message_bytes,
    };
    let (mut sink, mut stream) = Framed::new(stream, codec).split();
    // Responses go through a small queue to a writer task in batches: a search's entries are
    // written as they are made, a few dozen to a write (an answer of one entry and its end
    // is one write, not two), and a slow reader slows the search instead of filling memory.
    let (tx, mut rx) = mpsc::channel::<Vec<LdapMsg>>(WRITE_BATCHES);
    let writer = tokio::spawn(async move {
        while let Some(batch) = rx.recv().await {
            for m in batch {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if rx.is_empty() && sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut session = Session::new(shared, peer.ip());
    let pending: Arc<std::sync::Mutex<Vec<LdapMsg>>> = Arc::default();
    loop {
        let next = match tokio::time::timeout(limits.idle_timeout, stream.next()).await {
            Err(_) => {
                tracing::debug!(%peer, "LDAP connection idle: closed");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::info!(%peer, error = %e, "LDAP connection closed: not a valid LDAP message");
                metrics::counter!("orgsync_ldap_protocol_errors_total").increment(1);
                break;
            }
            Ok(Some(Ok(m))) => m,
        };
        metrics::counter!("orgsync_ldap_operations_total").increment(1);
        let outcome = session
            .handle(next, |m| {
                let tx = tx.clone();
                let full = {
                    let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
                    pending.push(m);
                    (pending.len() >= WRITE_BATCH).then(|| std::mem::take(&mut *pending))
                };
                async move {
                    if let Some(batch) = full {
                        let _ = tx.send(batch).await;
                    }
                }
            })
            .await;
        let rest = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
        if !rest.is_empty() {
            let _ = tx.send(rest).await;
        }
        if matches!(outcome, Next::Close) {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// [`LdapCodec`] that also refuses a message by the length its header declares: the inner
/// codec waits for a whole message before it checks its size, so a header that announces
/// 4 GB would hold the connection until the idle timeout.
struct Bounded {
    inner: LdapCodec,
    max: usize,
}

/// Why a message is refused before it is read.
fn header_problem(buf: &[u8], max: usize) -> Option<&'static str> {
    let (&tag, rest) = buf.split_first()?;
    if tag != 0x30 {
        return Some("a message is not a BER SEQUENCE");
    }
    let (&first, rest) = rest.split_first()?;
    let declared = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 {
            return Some("indefinite lengths are not allowed in LDAP");
        }
        if n > 4 {
            return Some("a message declares an impossible length");
        }
        let bytes = rest.get(..n)?;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    (declared > max).then_some("a message is larger than ldap's message limit")
}

impl Decoder for Bounded {
    type Item = LdapMsg;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<LdapMsg>, Self::Error> {
        if let Some(why) = header_problem(buf, self.max) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
        }
        self.inner.decode(buf)
    }
}

impl Encoder<LdapMsg> for Bounded {
    type Error = std::io::Error;

    fn encode(&mut self, msg: LdapMsg, buf: &mut BytesMut) -> Result<(), Self::Error> {
        self.inner.encode(msg, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_judged_before_the_body_arrives() {
        assert_eq!(header_problem(&[], 100), None);
        assert_eq!(header_problem(&[0x30], 100), None);
        assert_eq!(header_problem(&[0x30, 0x05], 100), None);
        assert_eq!(header_problem(&[0x30, 0x81, 0x64], 100), None);
        assert!(header_problem(&[0x30, 0x81, 0x65], 100).is_some());
        assert!(header_problem(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], 100).is_some());
        assert_eq!(header_problem(&[0x30, 0x84, 0xff], 100), None);
        assert!(header_problem(&[0x30, 0x80], 100).is_some());
        assert!(header_problem(&[0x30, 0x89], 100).is_some());
        assert!(header_problem(&[0x02, 0x01], 100).is_some());
    }
}
