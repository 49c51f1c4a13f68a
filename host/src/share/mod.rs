//! Talking and sharing: queues, pipes, shared regions and the locks built
//! on them, made by the host and granted to tasks by name.
//!
//! - `channel`: the bounded channel of messages under [`Queue`] and each
//!   direction of a [`PipeEnd`].
//! - `region`: [`SharedRegion`], mapped memory with atomic words and waits.
//! - `sync`: [`Lock`], [`Event`], [`Semaphore`], [`Barrier`] over regions.
//! - `holders`: the register of live lock holders that makes locks robust.
//!
//! Nothing is shared by default: a task reaches only what
//! [`Task::share`](crate::Task::share) and [`Task::pipe`](crate::Task::pipe)
//! granted it, under the names given there.

mod backend;
mod channel;
mod holders;
mod region;
mod sync;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};
use crate::limits::{Limits, human};

pub(crate) use backend::{PIPE, Pending, Remote, RemoteLink};
pub(crate) use channel::{Channel, RecvError, SendError, soon_within};
pub(crate) use holders::Holder;
pub use region::SharedRegion;
pub(crate) use region::check_span;
pub use sync::{Barrier, Event, Lock, LockGuard, LockResult, OwnerDied, Semaphore};

/// How many messages each direction of a pipe holds before a sender waits.
const PIPE_CAPACITY: usize = 256;

/// A bounded queue of serde values between the host and any number of
/// tasks, each end a producer, a consumer or both: `multiprocessing.Queue`.
///
/// Values cross as JSON, with the size limit of task arguments
/// ([`Limits::max_args`]) unless [`with_max_message`](Queue::with_max_message)
/// says otherwise; a larger value is refused at `put`. A full queue makes
/// `put` wait (backpressure), so memory stays bounded. Clones share the
/// queue. A task reaches it by the name it was granted under
/// ([`Task::share`](crate::Task::share)), with `wasmproc_guest::queue`.
///
/// ```
/// let jobs = wasmproc::Queue::<u32>::new(2);
/// jobs.put(&1)?;
/// assert!(jobs.try_put(&2)?);
/// assert!(!jobs.try_put(&3)?); // full
/// jobs.close();
/// assert_eq!(jobs.get()?, 1);
/// assert_eq!(jobs.try_get()?, Some(2));
/// assert!(jobs.get().is_err()); // closed and drained
/// # Ok::<(), wasmproc::Error>(())
/// ```
pub struct Queue<T> {
    channel: Channel,
    _values: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            channel: self.channel.clone(),
            _values: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.channel.len())
            .field("closed", &self.channel.is_closed())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// A queue holding at most `capacity` values (at least one).
    pub fn new(capacity: usize) -> Queue<T> {
        Queue {
            channel: Channel::new(capacity, Limits::default().max_args),
            _values: PhantomData,
        }
    }

    /// This queue, refusing values whose JSON is over `bytes`. Set it
    /// before granting the queue: the limit belongs to the queue.
    pub fn with_max_message(self, bytes: usize) -> Queue<T> {
        Queue::<T> {
            channel: Channel::new(self.channel.capacity(), bytes),
            _values: PhantomData,
        }
    }

    /// Puts `value`, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] once the queue is closed;
    /// [`ErrorKind::BadInvocation`] for a value over the size limit or one
    /// that does not serialize.
    pub fn put(&self, value: &T) -> Result<(), Error> {
        let message = encode(value)?;
        self.channel
            .send_blocking(message, None)
            .map_err(|error| send_error(error, "queue"))
    }

    /// Puts `value` if there is room now; `false` when the queue is full.
    ///
    /// # Errors
    ///
    /// As for [`put`](Queue::put).
    pub fn try_put(&self, value: &T) -> Result<bool, Error> {
        self.put_until(value, Some(Instant::now()))
    }

    /// Puts `value`, waiting at most `timeout` for room; `false` when the
    /// queue stayed full.
    ///
    /// # Errors
    ///
    /// As for [`put`](Queue::put).
    pub fn put_timeout(&self, value: &T, timeout: Duration) -> Result<bool, Error> {
        self.put_until(value, Some(Instant::now() + timeout))
    }

    fn put_until(&self, value: &T, deadline: Option<Instant>) -> Result<bool, Error> {
        match self.channel.send_blocking(encode(value)?, deadline) {
            Ok(()) => Ok(true),
            Err(SendError::Full) => Ok(false),
            Err(error) => Err(send_error(error, "queue")),
        }
    }

    /// Takes the oldest value, waiting while the queue is empty.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] once the queue is closed and drained;
    /// [`ErrorKind::Decode`] for a value (put by a task) that is not a `T`.
    pub fn get(&self) -> Result<T, Error> {
        self.get_until(None)?
            .ok_or_else(|| unreachable_empty("Queue::get"))
    }

    /// Takes the oldest value if there is one now.
    ///
    /// # Errors
    ///
    /// As for [`get`](Queue::get).
    pub fn try_get(&self) -> Result<Option<T>, Error> {
        self.get_until(Some(Instant::now()))
    }

    /// Takes the oldest value, waiting at most `timeout`; `None` when the
    /// queue stayed empty.
    ///
    /// # Errors
    ///
    /// As for [`get`](Queue::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<Option<T>, Error> {
        self.get_until(Some(Instant::now() + timeout))
    }

    fn get_until(&self, deadline: Option<Instant>) -> Result<Option<T>, Error> {
        match self.channel.recv_blocking(deadline) {
            Ok(message) => decode(&message, "queue").map(Some),
            Err(RecvError::Empty) => Ok(None),
            Err(RecvError::Closed) => Err(closed("queue")),
        }
    }

    /// Closes the queue for everyone: puts fail from now on, gets drain
    /// what is left and then fail. Tasks waiting on it wake.
    pub fn close(&self) {
        self.channel.close()
    }

    /// Whether the queue is closed.
    pub fn is_closed(&self) -> bool {
        self.channel.is_closed()
    }

    /// How many values wait in the queue now.
    pub fn len(&self) -> usize {
        self.channel.len()
    }

    /// Whether no value waits in the queue now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One end of a duplex pipe between a task and whoever submitted it:
/// `multiprocessing.Pipe`. Made in pairs by [`pipe`].
///
/// Each direction holds up to 256 messages; a sender waits while its
/// direction is full. When every clone of one end is gone (the task that
/// held it has ended and its [`Task`](crate::Task) is dropped), the other
/// end's `recv` drains what was sent and then fails with
/// [`ErrorKind::Closed`]: a loop over `recv` ends when the task does.
#[derive(Clone)]
pub struct PipeEnd {
    outgoing: Channel,
    incoming: Channel,
    _alive: Arc<EndAlive>,
}

/// Closes both directions when the last clone of an end goes.
struct EndAlive {
    outgoing: Channel,
    incoming: Channel,
}

impl Drop for EndAlive {
    fn drop(&mut self) {
        self.outgoing.close();
        self.incoming.close();
    }
}

impl std::fmt::Debug for PipeEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeEnd")
            .field("waiting", &self.incoming.len())
            .finish()
    }
}

impl PartialEq for PipeEnd {
    fn eq(&self, other: &Self) -> bool {
        self.outgoing.same(&other.outgoing)
    }
}

/// A connected pair of pipe ends: keep one, grant the other to a task with
/// [`Task::pipe`](crate::Task::pipe).
///
/// ```
/// let (mine, theirs) = wasmproc::pipe();
/// theirs.send(&"hello")?;
/// assert_eq!(mine.recv::<String>()?, "hello");
/// drop(theirs);
/// assert!(mine.recv::<String>().is_err()); // the other end is gone
/// # Ok::<(), wasmproc::Error>(())
/// ```
pub fn pipe() -> (PipeEnd, PipeEnd) {
    let max = Limits::default().max_args;
    let there = Channel::conversation(PIPE_CAPACITY, max);
    let back = Channel::conversation(PIPE_CAPACITY, max);
    let end = |outgoing: &Channel, incoming: &Channel| PipeEnd {
        outgoing: outgoing.clone(),
        incoming: incoming.clone(),
        _alive: Arc::new(EndAlive {
            outgoing: outgoing.clone(),
            incoming: incoming.clone(),
        }),
    };
    (end(&there, &back), end(&back, &there))
}

impl PipeEnd {
    /// Where this end sends, and where it receives from.
    pub(crate) fn channels(&self) -> (Channel, Channel) {
        (self.outgoing.clone(), self.incoming.clone())
    }

    /// Sends `value` to the other end, waiting while that direction is full.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] once the other end is gone;
    /// [`ErrorKind::BadInvocation`] for a value over the size limit.
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Error> {
        self.outgoing
            .send_blocking(encode(value)?, None)
            .map_err(|error| send_error(error, "pipe"))
    }

    /// Receives the next value from the other end, waiting for one.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Closed`] once the other end is gone and everything it
    /// sent was received; [`ErrorKind::Decode`] for a value that is not a
    /// `T`.
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.recv_until(None)?
            .ok_or_else(|| unreachable_empty("PipeEnd::recv"))
    }

    /// Receives, waiting at most `timeout`; `None` when nothing came.
    ///
    /// # Errors
    ///
    /// As for [`recv`](PipeEnd::recv).
    pub fn recv_timeout<T: DeserializeOwned>(&self, timeout: Duration) -> Result<Option<T>, Error> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    fn recv_until<T: DeserializeOwned>(
        &self,
        deadline: Option<Instant>,
    ) -> Result<Option<T>, Error> {
        match self.incoming.recv_blocking(deadline) {
            Ok(message) => decode(&message, "pipe").map(Some),
            Err(RecvError::Empty) => Ok(None),
            Err(RecvError::Closed) => Err(closed("pipe")),
        }
    }
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|error| {
        Error::new(
            ErrorKind::BadInvocation,
            format!("the value cannot be serialized: {error}"),
        )
        .caused_by(error)
    })
}

fn decode<T: DeserializeOwned>(message: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(message).map_err(|error| {
        Error::new(
            ErrorKind::Decode,
            format!(
                "a value taken from the {what} does not decode into {}: {error}",
                std::any::type_name::<T>()
            ),
        )
        .caused_by(error)
    })
}

fn closed(what: &str) -> Error {
    Error::new(ErrorKind::Closed, format!("the {what} is closed"))
}

/// The error of a send, for host callers.
fn send_error(error: SendError, what: &str) -> Error {
    match error {
        SendError::Closed => closed(what),
        SendError::TooLarge { len, limit } => Error::new(
            ErrorKind::BadInvocation,
            format!(
                "the value is {} as JSON, over the {what}'s limit of {}: send smaller values \
                 (or raise it with Queue::with_max_message)",
                human(len as u64),
                human(limit as u64)
            ),
        ),
        SendError::Full => unreachable_empty("a send without a deadline"),
    }
}

fn unreachable_empty(what: &str) -> Error {
    Error::new(
        ErrorKind::Setup,
        format!("{what} ended its wait without a deadline: a bug in wasmproc"),
    )
}

/// Something a task can be granted by name with
/// [`Task::share`](crate::Task::share): a [`Queue`], a [`SharedRegion`],
/// or a [`Lock`], [`Event`], [`Semaphore`] or [`Barrier`].
pub trait Shared: private::Sealed {
    #[doc(hidden)]
    fn grant(&self) -> Grant;
}

mod private {
    pub trait Sealed {}
}

/// What a task is granted under one name (opaque).
#[doc(hidden)]
#[derive(Clone, PartialEq)]
pub struct Grant(pub(crate) Granted);

/// What a task is granted under one name.
#[derive(Clone)]
pub(crate) enum Granted {
    /// A queue.
    Channel(Channel),
    /// A queue held by the pool's process (in a worker process).
    RemoteChannel { max_message: usize },
    /// A window of a region: `len` bytes from `base`.
    Window(Window),
}

/// The part of a region a grant covers: the whole region, or the words of
/// one lock (the task sees them at offset 0).
#[derive(Clone, Debug)]
pub(crate) struct Window {
    pub(crate) region: SharedRegion,
    pub(crate) base: u64,
    pub(crate) len: u64,
}

impl Window {
    pub(crate) fn same(&self, other: &Window) -> bool {
        self.region == other.region && self.base == other.base && self.len == other.len
    }

    pub(crate) fn whole(region: &SharedRegion) -> Window {
        Window {
            region: region.clone(),
            base: 0,
            len: region.len() as u64,
        }
    }
}

impl PartialEq for Granted {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Granted::Channel(a), Granted::Channel(b)) => a.same(b),
            (Granted::Window(a), Granted::Window(b)) => a.same(b),
            // A worker process's grants are its task's alone.
            _ => false,
        }
    }
}

impl<T> private::Sealed for Queue<T> {}
impl<T> Shared for Queue<T> {
    fn grant(&self) -> Grant {
        Grant(Granted::Channel(self.channel.clone()))
    }
}

impl private::Sealed for SharedRegion {}
impl Shared for SharedRegion {
    fn grant(&self) -> Grant {
        Grant(Granted::Window(Window::whole(self)))
    }
}

macro_rules! shared_words {
    ($($object:ty => $bytes:expr),*) => {$(
        impl private::Sealed for $object {}
        impl Shared for $object {
            fn grant(&self) -> Grant {
                let (region, base) = self.place();
                Grant(Granted::Window(Window { region: region.clone(), base, len: $bytes as u64 }))
            }
        }
    )*};
}

shared_words!(Lock => 4, Event => 4, Semaphore => 4, Barrier => wasmproc_abi::sync::BARRIER_BYTES);

/// Everything one task is granted: its shared objects by name, and its end
/// of a pipe; in a worker process, with the link to the pool that holds
/// them.
#[derive(Clone, Default)]
pub(crate) struct Grants {
    pub(crate) named: BTreeMap<String, Grant>,
    pub(crate) pipe: Option<PipeEnd>,
    pub(crate) remote: Option<RemoteLink>,
}

impl Grants {
    /// Each channel a task may send on, with its index in remote
    /// operations (`PIPE` for the pipe's outgoing direction).
    pub(crate) fn sendable(&self) -> Vec<(u32, Channel)> {
        let mut channels: Vec<(u32, Channel)> = self
            .named
            .values()
            .enumerate()
            .filter_map(|(index, grant)| match &grant.0 {
                Granted::Channel(channel) => Some((index as u32, channel.clone())),
                _ => None,
            })
            .collect();
        if let Some(end) = &self.pipe {
            channels.push((PIPE, end.channels().0));
        }
        channels
    }
}

impl PartialEq for Grants {
    fn eq(&self, other: &Self) -> bool {
        self.remote.is_none()
            && other.remote.is_none()
            && self.named == other.named
            && self.pipe == other.pipe
    }
}

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grants")
            .field("named", &self.named.keys().collect::<Vec<_>>())
            .field("pipe", &self.pipe.is_some())
            .finish()
    }
}

impl Grants {
    pub(crate) fn is_empty(&self) -> bool {
        self.named.is_empty() && self.pipe.is_none() && self.remote.is_none()
    }

    /// Grants `grant` under `name`: refused for a name that cannot name a
    /// shared object, or that is granted already.
    pub(crate) fn add(&mut self, name: &str, grant: Grant) -> Result<(), Error> {
        check_name(name)?;
        if self.named.contains_key(name) {
            return Err(Error::new(
                ErrorKind::BadInvocation,
                format!("two objects are shared under the name `{name}`: use one name each"),
            ));
        }
        self.named.insert(name.to_owned(), grant);
        Ok(())
    }

    /// These grants with `defaults` under the names they lack, and the
    /// default pipe end if they have none.
    pub(crate) fn with_defaults(mut self, defaults: &Grants) -> Grants {
        for (name, grant) in &defaults.named {
            self.named
                .entry(name.clone())
                .or_insert_with(|| grant.clone());
        }
        if self.pipe.is_none() {
            self.pipe = defaults.pipe.clone();
        }
        self
    }

    /// The index remote operations name the grant `name` by: its position
    /// among the names in order (callers ask only for names granted; any
    /// other gets an index no grant has, which the pool refuses).
    pub(crate) fn index_of(&self, name: &str) -> u32 {
        self.named
            .keys()
            .position(|key| key == name)
            .and_then(|index| u32::try_from(index).ok())
            .unwrap_or(u32::MAX - 1)
    }
}

/// Checks a name shared objects are granted under: what a task asks for
/// must be spelt the same in any language.
pub(crate) fn check_name(name: &str) -> Result<(), Error> {
    let fine = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if fine {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::BadInvocation,
            format!(
                "`{name}` cannot name a shared object: use 1 to 128 ASCII letters, digits, `_`, \
                 `-` or `.`"
            ),
        ))
    }
}
