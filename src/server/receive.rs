//! The command `netsecrets receive`: set up, run, and how it ends.
//!
//! Set up: SIGHUP blocked, the configuration checked, the listener bound with the settings every
//! accepted socket inherits (listen backlog, the connection deadline, `TCP_CORK`). Run: the
//! address logged, systemd told `READY=1`, then the monitor and the drainer started and the
//! pool of workers serving forever. A failure to set up ends it with an error; once running,
//! only a signal ends it (`server/signals.rs`), and there is nothing to flush or write back.
//!
//! Where the rest lives: the workers and their monitor in `server/pool.rs`, one connection in
//! `server/serve.rs`, SIGHUP and the reloadable configuration in `server/signals.rs`, the rate
//! limit of log lines in `server/log_budget.rs`, closing in `server/drain.rs`, admission in
//! `server/limits.rs`.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread;

use crate::cli::ReceiveArgs;
use crate::config::{self, ServerConfig};
use crate::error::{Error, Result};
use crate::server::drain::Drainer;
use crate::server::limits::{Gate, Pending};
use crate::server::log_budget::LogBudget;
use crate::server::pool::{self, Pool, WORKER_STACK};
use crate::server::serve::Service;
use crate::server::signals::{sighup, LiveConfig};
use crate::sys::log;
use crate::sys::net;

/// Queue of connections the kernel completes before `accept` (capped by net.core.somaxconn).
const LISTEN_BACKLOG: i32 = 1024;

/// `netsecrets receive`: checks the configuration, binds, says where, and serves forever.
pub fn receive(args: ReceiveArgs) -> Result<()> {
    // Before anything else, so that a reload asked for during the start is kept pending for the
    // monitor rather than ending the process (SIGHUP's default action).
    sighup::block().map_err(|e| Error::config("cannot block SIGHUP for the reload").with_io(e))?;
    let server = Server::bind(config::server(args)?)?;
    log::line(&format!("listening on {}", server.local_addr()?));
    crate::sys::notify::notify("READY=1");
    server.run()
}

/// A bound server, ready to run.
pub struct Server {
    pool: Arc<Pool>,
}

impl Server {
    pub fn bind(cfg: ServerConfig) -> Result<Server> {
        let listener = TcpListener::bind(cfg.bind).map_err(|e| {
            Error::config(format!(
                "cannot listen on {} (check --server and --port)",
                cfg.bind
            ))
            .with_io(e)
        })?;
        // std listens with a backlog of 128; a burst of clients rebooting at once overflows it
        // and their SYNs are retried a second later. Linux lets listen() raise it in place.
        let prepared = net::listen(&listener, LISTEN_BACKLOG)
            .map_err(|e| ("raise the listen backlog", e))
            // Accepted sockets inherit these: a connection starts with its whole deadline set,
            // and a quick exchange needs no setsockopt (see net::Deadline). On the listener, the
            // receive timeout also makes an idle accept() return, so idle workers can exit.
            // Without them a connection would have no deadline at all: a failure fails the start.
            .and_then(|()| {
                net::set_timeouts(&listener, cfg.timeout)
                    .map_err(|e| ("set the connection deadline (--timeout)", e))
            })
            // Inherited too: a corked socket holds the response until close(), which then sends
            // it with the FIN in one segment. The client sees the answer and the end together,
            // so the server is always the side that closes first and keeps the TIME_WAIT; a
            // client that read the answer and closed before the server's FIN (the server thread
            // preempted between write and close) would keep it instead, and a client host making
            // many connections to one server (a load test, a NAT in front of a fleet) then
            // spends ever longer looking for a free port in connect(). One segment fewer, too.
            .and_then(|()| {
                let on: libc::c_int = 1;
                net::set_option(&listener, libc::IPPROTO_TCP, libc::TCP_CORK, &on)
                    .map_err(|e| ("set TCP_CORK", e))
            });
        if let Err((what, e)) = prepared {
            return Err(
                Error::config(format!("cannot {what} on the listener {}", cfg.bind)).with_io(e),
            );
        }
        let service = Service {
            authorized: cfg.authorized,
            live: Arc::new(LiveConfig::new(cfg.live, cfg.sources)),
            timeout: cfg.timeout,
            verbose: cfg.verbose,
            gate: Gate::new(cfg.max_connections, cfg.max_per_ip, cfg.max_failures),
            pending: Arc::new(Pending::default()),
            drainer: Drainer::new(cfg.max_connections),
            log: LogBudget::default(),
            min_protocol: cfg.min_protocol,
        };
        let pool = Arc::new(Pool::new(listener, service, cfg.max_connections));
        Ok(Server { pool })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.pool
            .listener
            .local_addr()
            .map_err(|e| Error::config("cannot read the bound address").with_io(e))
    }

    /// Serves forever: starts the monitor, the drainer and the first workers, and becomes one
    /// of them. SIGHUP is blocked in this thread first, so every thread started here inherits
    /// the mask and the monitor alone takes the signal, as a reload (see `server/signals.rs`).
    pub fn run(self) -> Result<()> {
        sighup::block()
            .map_err(|e| Error::config("cannot block SIGHUP for the reload").with_io(e))?;
        let me = Arc::clone(&self.pool);
        thread::Builder::new()
            .name("monitor".into())
            .stack_size(WORKER_STACK)
            .spawn(move || pool::monitor(&me))
            .map_err(|e| Error::config("cannot start the monitor thread").with_io(e))?;
        let me = Arc::clone(&self.pool);
        thread::Builder::new()
            .name("drainer".into())
            .stack_size(WORKER_STACK)
            .spawn(move || me.service.drainer.run())
            .map_err(|e| Error::config("cannot start the drainer thread").with_io(e))?;
        pool::serve_forever(&self.pool);
        Ok(())
    }
}
