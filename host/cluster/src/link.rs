//! One connection to NATS and JetStream, with wasmproc's streams, consumer
//! and buckets made sure of: shared by the worker host and the submitter.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::consumer::{FromConsumer, IntoConsumerConfig};
use async_nats::jetstream::response::Response;
use async_nats::jetstream::{self, consumer, object_store, stream};
use tokio::io::AsyncReadExt;
use wasmproc::Error;

use crate::error::{cluster_error, nats_error, stream_error};
use crate::names;

/// Where the NATS server is and how to prove who we are to it.
///
/// The URL may carry a user and password or a token
/// (`nats://user:pass@host:4222`, `nats://token@host:4222`); `tls://`
/// requires TLS. A credentials file (`nsc`'s `.creds`) and a CA file for a
/// private certificate authority are options of their own.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Without its login.
    url: String,
    login: Option<Login>,
    credentials: Option<PathBuf>,
    root_certificates: Option<PathBuf>,
    name: String,
}

impl NatsOptions {
    /// A server at `url`, e.g. `nats://127.0.0.1:4222`; a user and
    /// password (`nats://user:pass@host:4222`) or a token
    /// (`nats://token@host:4222`) in it are used to authenticate (and left
    /// out of messages).
    pub fn new(url: impl Into<String>) -> Self {
        let (url, login) = split_login(&url.into());
        NatsOptions {
            url,
            login,
            credentials: None,
            root_certificates: None,
            name: "wasmproc".into(),
        }
    }

    /// Authenticates with a credentials file (a JWT and an NKey seed).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credentials = Some(path.into());
        self
    }

    /// Trusts the certificate authorities in this PEM file for TLS, and
    /// requires TLS.
    pub fn root_certificates(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_certificates = Some(path.into());
        self
    }

    /// The name this connection shows in the server's monitoring.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A login taken from a URL.
#[derive(Clone)]
enum Login {
    UserAndPassword(String, String),
    Token(String),
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret itself.
        f.write_str(match self {
            Login::UserAndPassword(..) => "UserAndPassword(..)",
            Login::Token(_) => "Token(..)",
        })
    }
}

/// Splits `scheme://login@rest` into `scheme://rest` and the login.
fn split_login(url: &str) -> (String, Option<Login>) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_owned(), None);
    };
    let login = match rest[..at].split_once(':') {
        Some((user, pass)) => Login::UserAndPassword(user.to_owned(), pass.to_owned()),
        None => Login::Token(rest[..at].to_owned()),
    };
    let bare = if scheme.is_empty() {
        rest[at + 1..].to_owned()
    } else {
        format!("{scheme}://{}", &rest[at + 1..])
    };
    (bare, Some(login))
}

/// How long one JetStream request may take before it is retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What a joining host asks of the workers' consumer; `None` takes the
/// value in force (or the default, when the host creates the consumer).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConsumerWish {
    pub(crate) ack_wait: Option<Duration>,
    pub(crate) deliveries: Option<i64>,
}

/// The workers' consumer's settings that hosts may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InForce {
    /// How long a host may stay silent about a message it holds.
    pub(crate) ack_wait: Duration,
    /// How many times a message is delivered at most (`<= 0`: no limit).
    pub(crate) deliveries: i64,
}

impl InForce {
    fn of(config: &consumer::Config) -> InForce {
        InForce {
            ack_wait: config.ack_wait,
            deliveries: config.max_deliver,
        }
    }
}

/// The workers' consumer as a joining host left it.
pub(crate) struct Workers {
    pub(crate) consumer: consumer::PullConsumer,
    /// The settings before this host joined (the asked-for ones when it
    /// created the consumer).
    pub(crate) before: InForce,
    pub(crate) in_force: InForce,
    /// Why the server refused the values asked for, when it did.
    pub(crate) refused: Option<String>,
}

/// A connection with wasmproc's JetStream objects.
#[derive(Clone)]
pub(crate) struct Link {
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) tasks: stream::Stream,
    pub(crate) outcomes: stream::Stream,
    pub(crate) modules: object_store::ObjectStore,
    pub(crate) blobs: object_store::ObjectStore,
}

impl Link {
    /// Connects and makes sure wasmproc's streams and buckets exist.
    pub(crate) async fn connect(options: &NatsOptions) -> Result<Link, Error> {
        let mut connect = match &options.credentials {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|error| {
                    cluster_error(format!(
                        "cannot read the NATS credentials file `{}`: {error}",
                        path.display()
                    ))
                })?,
            None => async_nats::ConnectOptions::new(),
        };
        connect = match options.login.clone() {
            Some(Login::UserAndPassword(user, pass)) => connect.user_and_password(user, pass),
            Some(Login::Token(token)) => connect.token(token),
            None => connect,
        };
        if let Some(path) = &options.root_certificates {
            connect = connect
                .add_root_certificates(path.clone())
                .require_tls(true);
        }
        let client = connect
            .name(&options.name)
            .connection_timeout(REQUEST_TIMEOUT)
            // Once connected, ride out server restarts for as long as they take.
            .max_reconnects(None)
            .connect(options.url.as_str())
            .await
            .map_err(|error| {
                let fix = match error.kind() {
                    async_nats::ConnectErrorKind::AuthorizationViolation
                    | async_nats::ConnectErrorKind::Authentication => {
                        "check the login: a user and password or a token in the URL \
                         (nats://user:pass@host:4222), or --nats-creds FILE"
                    }
                    async_nats::ConnectErrorKind::Tls => {
                        "check TLS: the server's certificate, and --nats-ca for a private CA"
                    }
                    _ => {
                        "start a server with JetStream (`nats-server -js`) or give its address \
                         with --nats"
                    }
                };
                cluster_error(format!(
                    "cannot connect to NATS at `{}`: {error}; {fix}",
                    options.url
                ))
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .max_ack_inflight(4096)
            .backpressure_on_inflight(true)
            .build(client.clone());
        let tasks = js
            .get_or_create_stream(stream::Config {
                name: names::TASK_STREAM.into(),
                subjects: vec![names::TASK_SUBJECTS.into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: names::DUPLICATE_WINDOW,
                description: Some("wasmproc: task batches waiting for a worker host".into()),
                ..Default::default()
            })
            .await
            .map_err(|error| stream_error("create the task stream", error))?;
        let outcomes = js
            .get_or_create_stream(stream::Config {
                name: names::OUTCOME_STREAM.into(),
                subjects: vec![names::OUTCOME_SUBJECTS.into()],
                storage: stream::StorageType::File,
                duplicate_window: names::DUPLICATE_WINDOW,
                max_age: names::OUTCOME_MAX_AGE,
                description: Some("wasmproc: outcomes waiting for their submitter".into()),
                ..Default::default()
            })
            .await
            .map_err(|error| stream_error("create the outcome stream", error))?;
        let modules = bucket(&js, names::MODULE_BUCKET, Duration::ZERO).await?;
        let blobs = bucket(&js, names::BLOB_BUCKET, names::OUTCOME_MAX_AGE).await?;
        Ok(Link {
            client,
            js,
            tasks,
            outcomes,
            modules,
            blobs,
        })
    }

    /// The consumer every worker host pulls from, made sure of. A host
    /// that finds none creates it, with the values asked for or the
    /// defaults (never replacing one that another host created meanwhile).
    /// When it exists, a value asked for that differs from the one in force
    /// replaces it, for every host: JetStream lets a durable pull
    /// consumer's ack wait and deliveries change. A value not asked for is
    /// left as it is.
    pub(crate) async fn workers_consumer(&self, wish: ConsumerWish) -> Result<Workers, Error> {
        let found = match self.tasks.consumer_info(names::WORKERS).await {
            Ok(info) => info.config,
            Err(_) => match self.create_workers(wish).await {
                Ok(()) => {
                    let consumer = self.workers().await?;
                    let in_force = InForce::of(&consumer.cached_info().config);
                    return Ok(Workers {
                        consumer,
                        before: in_force,
                        in_force,
                        refused: None,
                    });
                }
                // Another host created it meanwhile (or the server cannot).
                Err(why) => {
                    self.tasks
                        .consumer_info(names::WORKERS)
                        .await
                        .map_err(|_| why)?
                        .config
                }
            },
        };
        let before = InForce::of(&found);
        let mut wanted = found;
        if let Some(ack_wait) = wish.ack_wait {
            wanted.ack_wait = ack_wait;
        }
        if let Some(deliveries) = wish.deliveries {
            wanted.max_deliver = deliveries;
        }
        if InForce::of(&wanted) == before {
            return Ok(Workers {
                consumer: self.workers().await?,
                before,
                in_force: before,
                refused: None,
            });
        }
        // Creating with the name of an existing consumer updates it (only
        // its editable fields differ).
        let updated = match consumer::pull::Config::try_from_consumer_config(wanted) {
            Ok(config) => self
                .tasks
                .create_consumer(config)
                .await
                .map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        Ok(match updated {
            Ok(updated) => Workers {
                in_force: InForce::of(&updated.cached_info().config),
                consumer: updated,
                before,
                refused: None,
            },
            Err(why) => Workers {
                consumer: self.workers().await?,
                before,
                in_force: before,
                refused: Some(why),
            },
        })
    }

    /// Creates the workers' consumer, failing if it exists: a host that
    /// asked for nothing must not replace another's values with defaults.
    async fn create_workers(&self, wish: ConsumerWish) -> Result<(), Error> {
        #[derive(serde::Serialize)]
        struct Create {
            stream_name: &'static str,
            config: consumer::Config,
            action: &'static str,
        }
        let config = consumer::pull::Config {
            durable_name: Some(names::WORKERS.into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: wish.ack_wait.unwrap_or(names::DEFAULT_ACK_WAIT),
            max_deliver: wish.deliveries.unwrap_or(names::DEFAULT_DELIVERIES),
            filter_subject: names::TASK_SUBJECTS.into(),
            max_ack_pending: 100_000,
            description: Some("wasmproc worker hosts".into()),
            ..Default::default()
        };
        // async-nats offers the create-only action behind a feature this
        // crate does not take; the request is JetStream's own (2.10+).
        let subject = format!(
            "CONSUMER.CREATE.{}.{}.{}",
            names::TASK_STREAM,
            names::WORKERS,
            names::TASK_SUBJECTS
        );
        let request = Create {
            stream_name: names::TASK_STREAM,
            config: config.into_consumer_config(),
            action: "create",
        };
        match self.js.request(subject, &request).await {
            Ok(Response::<consumer::Info>::Ok(_)) => Ok(()),
            Ok(Response::Err { error }) => Err(nats_error("create the workers' consumer", error)),
            Err(error) => Err(nats_error("create the workers' consumer", error)),
        }
    }

    async fn workers(&self) -> Result<consumer::PullConsumer, Error> {
        self.tasks
            .get_consumer(names::WORKERS)
            .await
            .map_err(|error| {
                cluster_error(format!("NATS: cannot find the workers' consumer: {error}"))
                    .caused_by(error)
            })
    }

    /// The workers' consumer's ack wait and deliveries now.
    pub(crate) async fn workers_in_force(&self) -> Result<InForce, Error> {
        self.tasks
            .consumer_info(names::WORKERS)
            .await
            .map(|info| InForce::of(&info.config))
            .map_err(|error| nats_error("ask about the workers' consumer", error))
    }

    /// Reads a whole object of `bucket`.
    pub(crate) async fn read_object(
        bucket: &object_store::ObjectStore,
        name: &str,
    ) -> Result<Vec<u8>, Error> {
        let mut object = bucket
            .get(name)
            .await
            .map_err(|error| nats_error(&format!("fetch `{name}` from the object store"), error))?;
        let mut bytes = Vec::with_capacity(object.info().size);
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|error| nats_error(&format!("read `{name}` from the object store"), error))?;
        Ok(bytes)
    }

    /// Stores `bytes` as object `name` of `bucket`.
    pub(crate) async fn write_object(
        bucket: &object_store::ObjectStore,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), Error> {
        let mut reader = bytes;
        bucket
            .put(name, &mut reader)
            .await
            .map_err(|error| nats_error(&format!("store `{name}` in the object store"), error))?;
        Ok(())
    }

    /// The largest message the server takes.
    pub(crate) fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }
}

async fn bucket(
    js: &jetstream::Context,
    name: &str,
    max_age: Duration,
) -> Result<object_store::ObjectStore, Error> {
    if let Ok(store) = js.get_object_store(name).await {
        return Ok(store);
    }
    js.create_object_store(object_store::Config {
        bucket: name.into(),
        max_age,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|error| nats_error(&format!("create the object store `{name}`"), error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_in_the_url_is_taken_out_of_it() {
        let options = NatsOptions::new("nats://alice:s3cret@host:4222");
        assert_eq!(options.url(), "nats://host:4222");
        assert!(
            matches!(options.login, Some(Login::UserAndPassword(ref u, ref p)) if u == "alice" && p == "s3cret")
        );
        assert!(!format!("{options:?}").contains("s3cret"));

        let options = NatsOptions::new("tls://t0ken@host:4222");
        assert_eq!(options.url(), "tls://host:4222");
        assert!(matches!(options.login, Some(Login::Token(ref t)) if t == "t0ken"));

        let options = NatsOptions::new("127.0.0.1:4222");
        assert_eq!(options.url(), "127.0.0.1:4222");
        assert!(options.login.is_none());
    }
}
