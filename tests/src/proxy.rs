//! A TCP proxy to the test MongoDB server: a slow database, and one that dies mid-request.

use super::*;

/// A TCP proxy to the test MongoDB server that holds back every reply by `delay`: a
/// database that answers, but slowly. Its [`CutSwitch`] cuts it off at once (every open
/// connection dropped, new ones refused): a database that dies mid-request. Loopback only; it
/// ends with the value.
pub struct SlowProxy {
    /// A MongoDB URI through the proxy.
    pub uri: String,
    cut: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Cuts a [`SlowProxy`] off its clients.
#[derive(Clone)]
pub struct CutSwitch(tokio::sync::watch::Sender<bool>);

impl CutSwitch {
    pub fn cut(&self) {
        self.0.send_replace(true);
    }
}

impl SlowProxy {
    pub async fn start(delay: std::time::Duration) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let upstream = mongo_uri()
            .trim_start_matches("mongodb://")
            .split(['/', '?'])
            .next()
            .unwrap()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    continue;
                }
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let mut rx = cut_rx.clone();
                tokio::spawn(async move {
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = async {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    };
                    let down = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n) = sr.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            tokio::time::sleep(delay).await;
                            if cw.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    // Cut: both halves are dropped here, closing both connections.
                    tokio::select! {
                        _ = async { tokio::join!(up, down) } => {}
                        _ = rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self {
            uri: format!("mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"),
            cut,
            task,
        }
    }

    /// The switch that cuts this proxy off.
    pub fn cut_switch(&self) -> CutSwitch {
        CutSwitch(self.cut.clone())
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
