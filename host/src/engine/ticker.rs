//! The epoch ticker: one thread that advances the engines' epoch while
//! tasks run, so that a busy guest notices its deadline or a cancellation
//! within about a tick, and that sleeps while no task runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use wasmtime::Engine;

use crate::mutex::Mutex;

/// How often the ticker advances the engines' epoch. A busy guest notices a
/// timeout or a cancellation within about one tick.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How long (in ticks) the ticker keeps ticking without tasks before it
/// sleeps: back-to-back tasks then never pay for waking it.
const IDLE_TICKS_BEFORE_PARKING: u32 = 100;

/// One thread that advances every engine's epoch while tasks run, and
/// sleeps while none does.
pub(crate) struct Ticker {
    shared: Arc<TickerShared>,
    thread: Option<JoinHandle<()>>,
}

struct TickerShared {
    engines: Mutex<Vec<Engine>>,
    running: AtomicUsize,
    /// Whether the ticker is (about to be) asleep until a task starts.
    parked: AtomicBool,
    stop: AtomicBool,
}

/// Keeps the ticker ticking while a task runs.
pub(crate) struct TickerGuard<'a> {
    ticker: &'a Ticker,
}

impl Ticker {
    pub(crate) fn start(engine: Engine) -> std::io::Result<Ticker> {
        let shared = Arc::new(TickerShared {
            engines: Mutex::new(vec![engine]),
            running: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("wasmproc-epoch".into())
            .spawn(move || tick(&thread_shared))?;
        Ok(Ticker {
            shared,
            thread: Some(thread),
        })
    }

    pub(crate) fn add_engine(&self, engine: Engine) {
        self.shared.engines.lock().push(engine);
    }

    /// Marks a task as running until the guard drops.
    pub(crate) fn task_running(&self) -> TickerGuard<'_> {
        self.shared.running.fetch_add(1, Ordering::SeqCst);
        // Waking the ticker costs a system call, so it only sleeps after a
        // while without tasks, and is only woken when it does.
        if self.shared.parked.load(Ordering::SeqCst)
            && let Some(thread) = &self.thread
        {
            thread.thread().unpark();
        }
        TickerGuard { ticker: self }
    }
}

impl Drop for TickerGuard<'_> {
    fn drop(&mut self) {
        self.ticker.shared.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

fn tick(shared: &TickerShared) {
    let mut idle_ticks = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.running.load(Ordering::SeqCst) == 0 {
            idle_ticks += 1;
        } else {
            idle_ticks = 0;
        }
        if idle_ticks > IDLE_TICKS_BEFORE_PARKING {
            // Announce the park, then look again: a task that started in
            // between either sees `parked` and unparks us, or is seen here
            // (both sides use SeqCst, so one of the two must happen).
            shared.parked.store(true, Ordering::SeqCst);
            if shared.running.load(Ordering::SeqCst) == 0 && !shared.stop.load(Ordering::SeqCst) {
                thread::park();
            }
            shared.parked.store(false, Ordering::SeqCst);
            idle_ticks = 0;
            continue;
        }
        // Parked rather than slept, so that `drop` wakes it at once. An
        // early wake-up only advances the epoch a little early.
        thread::park_timeout(EPOCH_TICK);
        for engine in shared.engines.lock().iter() {
            engine.increment_epoch();
        }
    }
}
