//! A TCP proxy on loopback that can be taken down: while it is down it drops every connection,
//! new and open, as an endpoint that has gone away would. The reliability suite puts it in
//! front of the local DynamoDB endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A proxy to one upstream `host:port`.
pub struct OutageProxy {
    port: u16,
    down: watch::Sender<bool>,
    dropped: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl OutageProxy {
    /// Starts a proxy to `upstream` (`host:port`) on a free loopback port, up.
    pub async fn start(upstream: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (down, watcher) = watch::channel(false);
        let dropped = Arc::new(AtomicUsize::new(0));
        let counter = dropped.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if *watcher.borrow() {
                    counter.fetch_add(1, Ordering::Relaxed);
                    drop(inbound);
                    continue;
                }
                let mut watcher = watcher.clone();
                let counter = counter.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watcher.wait_for(|down| *down) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        Ok(Self {
            port,
            down,
            dropped,
            accept,
        })
    }

    /// The proxy's base URL (`http://127.0.0.1:<port>`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Takes the endpoint away (`true`: every open connection is cut, new ones are dropped) or
    /// brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }

    /// How many connections were cut or refused while down.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
