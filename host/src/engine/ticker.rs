//! The epoch ticker: one thread that advances the engines' epoch when a
//! running guest must look at its deadline or its cancel signal, and sleeps
//! otherwise.
//!
//! A busy guest only notices a timeout or a cancellation through the epoch
//! callback (`run::instance`), which runs when the engine's epoch passes
//! the store's deadline. Advancing the epoch every millisecond would do,
//! but it wakes this thread a thousand times a second per process while
//! tasks run: with a worker process per connection (`serve --isolation
//! process`, 64 of them), those wake-ups took 15% of the machine's CPU.
//! So the ticker ticks only while a tick can end something: from the
//! earliest deadline of the tasks running now, and from any cancel in the
//! process, every millisecond for as long as a task past its deadline or
//! cancelled still runs. A task that is neither costs the ticker nothing
//! but its registration.
//!
//! Ticking until such a task ends, rather than a fixed number of times, is
//! what makes it sure: the callback reads the cancel flag, and wasmtime
//! reads the epoch for the next deadline after it returns; a guest thread
//! preempted between the two would otherwise wake past every tick.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use wasmtime::Engine;

use crate::cancel::{AnyCancelWatch, CancelToken, watch_any_cancel};
use crate::mutex::Mutex;

/// How often the ticker advances the engines' epoch while a tick can end
/// something: a busy guest notices a timeout or a cancellation within about
/// this long.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// One thread that advances every engine's epoch while a running task is
/// past its deadline or cancelled.
pub(crate) struct Ticker {
    shared: Arc<TickerShared>,
    /// Wakes the thread to look at the running tasks again: a task whose
    /// deadline comes before its next wake-up, any cancel in the process
    /// (through `_cancels`), or the stop.
    wake: Sender<()>,
    thread: Option<JoinHandle<()>>,
    _cancels: AnyCancelWatch,
}

struct TickerShared {
    engines: Mutex<Vec<Engine>>,
    schedule: Mutex<Schedule>,
    /// Ticks so far, for the tests.
    ticks: AtomicU64,
    stop: AtomicBool,
}

/// The tasks running now, and when the ticker will wake by itself. One
/// lock holds both, so that a task that registers a deadline either is
/// seen by the ticker's next look or sees the wake-up that look planned
/// (and wakes the thread if its deadline is earlier).
#[derive(Default)]
struct Schedule {
    running: Vec<Running>,
    next_id: u64,
    /// `None`: asleep until woken.
    next_wake: Option<Instant>,
}

struct Running {
    id: u64,
    deadline: Option<Instant>,
    cancel: CancelToken,
}

impl Running {
    /// Whether ticks may end this task now.
    fn needs_ticks(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now) || self.cancel.is_cancelled()
    }
}

/// A running task, watched by the ticker until the guard drops.
pub(crate) struct TickerGuard<'a> {
    ticker: &'a Ticker,
    id: u64,
}

impl Ticker {
    pub(crate) fn start(engine: Engine) -> std::io::Result<Ticker> {
        let shared = Arc::new(TickerShared {
            engines: Mutex::new(vec![engine]),
            schedule: Mutex::new(Schedule::default()),
            ticks: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let (wake, woken) = crossbeam_channel::bounded(1);
        let cancels = watch_any_cancel(&wake);
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("wasmproc-epoch".into())
            .spawn(move || tick(&thread_shared, &woken))?;
        Ok(Ticker {
            shared,
            wake,
            thread: Some(thread),
            _cancels: cancels,
        })
    }

    pub(crate) fn add_engine(&self, engine: Engine) {
        self.shared.engines.lock().push(engine);
    }

    /// Watches a running task's deadline and cancel signal until the guard
    /// drops.
    pub(crate) fn task_running(
        &self,
        deadline: Option<Instant>,
        cancel: &CancelToken,
    ) -> TickerGuard<'_> {
        let mut schedule = self.shared.schedule.lock();
        let id = schedule.next_id;
        schedule.next_id += 1;
        schedule.running.push(Running {
            id,
            deadline,
            cancel: cancel.clone(),
        });
        // A cancel wakes the ticker by itself; a deadline before its
        // planned wake-up must.
        let sooner =
            deadline.is_some_and(|deadline| schedule.next_wake.is_none_or(|wake| deadline < wake));
        drop(schedule);
        if sooner {
            // A full channel already holds a wake-up.
            let _ = self.wake.try_send(());
        }
        TickerGuard { ticker: self, id }
    }

    /// How many times the epoch has been advanced.
    #[cfg(test)]
    fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::SeqCst)
    }
}

impl Drop for TickerGuard<'_> {
    fn drop(&mut self) {
        let mut schedule = self.ticker.shared.schedule.lock();
        if let Some(at) = schedule.running.iter().position(|task| task.id == self.id) {
            schedule.running.swap_remove(at);
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.try_send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn tick(shared: &TickerShared, woken: &Receiver<()>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let wake_at = {
            let mut schedule = shared.schedule.lock();
            let ticking = schedule.running.iter().any(|task| task.needs_ticks(now));
            if ticking {
                advance(shared);
            }
            let earliest = schedule
                .running
                .iter()
                .filter_map(|task| task.deadline)
                .filter(|deadline| *deadline > now)
                .min();
            let next_tick = ticking.then(|| now + EPOCH_TICK);
            schedule.next_wake = match (next_tick, earliest) {
                (Some(tick), Some(deadline)) => Some(tick.min(deadline)),
                (tick, deadline) => tick.or(deadline),
            };
            schedule.next_wake
        };
        // A wake-up, or the time: either way, look again.
        let _ = match wake_at {
            Some(at) => woken.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => woken
                .recv()
                .map_err(|_| crossbeam_channel::RecvTimeoutError::Disconnected),
        };
    }
}

fn advance(shared: &TickerShared) {
    for engine in shared.engines.lock().iter() {
        engine.increment_epoch();
    }
    shared.ticks.fetch_add(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticker() -> Ticker {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        Ticker::start(engine).unwrap()
    }

    /// Waits up to 5 s for the ticker to have ticked more than `than`.
    fn ticks_past(ticker: &Ticker, than: u64) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if ticker.ticks() > than {
                return true;
            }
            thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// Ticks stop once the tasks that needed them are gone. Other tests'
    /// cancels wake every ticker in the process, which only looks again.
    fn settles(ticker: &Ticker) {
        thread::sleep(Duration::from_millis(20));
        let after = ticker.ticks();
        thread::sleep(Duration::from_millis(100));
        assert_eq!(ticker.ticks(), after, "ticks after the tasks ended");
    }

    #[test]
    fn tasks_neither_late_nor_cancelled_cost_no_ticks() {
        let ticker = ticker();
        let token = CancelToken::new();
        let _running = ticker.task_running(None, &token);
        let _far = ticker.task_running(Some(Instant::now() + Duration::from_secs(3600)), &token);
        // Another task's token, cancelled, and no task of its own.
        CancelToken::new().cancel();
        thread::sleep(Duration::from_millis(100));
        assert_eq!(ticker.ticks(), 0);
    }

    #[test]
    fn a_deadline_ticks_once_it_passes_and_until_its_task_ends() {
        let ticker = ticker();
        let started = Instant::now();
        let running = ticker.task_running(
            Some(started + Duration::from_millis(150)),
            &CancelToken::new(),
        );
        assert!(ticks_past(&ticker, 0), "no tick after the deadline");
        assert!(started.elapsed() >= Duration::from_millis(150));
        // Overdue and still running: it goes on ticking.
        let first = ticker.ticks();
        assert!(ticks_past(&ticker, first + 3));
        drop(running);
        settles(&ticker);
    }

    #[test]
    fn an_earlier_deadline_wakes_a_ticker_waiting_for_a_later_one() {
        let ticker = ticker();
        let token = CancelToken::new();
        let _late = ticker.task_running(Some(Instant::now() + Duration::from_secs(3600)), &token);
        thread::sleep(Duration::from_millis(20));
        let soon = Instant::now() + Duration::from_millis(50);
        let _soon = ticker.task_running(Some(soon), &token);
        assert!(ticks_past(&ticker, 0));
        assert!(Instant::now() < soon + Duration::from_secs(2));
    }

    #[test]
    fn a_cancelled_task_ticks_at_once_and_until_it_ends() {
        let ticker = ticker();
        let token = CancelToken::new().child();
        let running = ticker.task_running(None, &token);
        thread::sleep(Duration::from_millis(20));
        token.cancel();
        assert!(ticks_past(&ticker, 0));
        // Long after the cancel, for as long as the task runs.
        thread::sleep(Duration::from_millis(50));
        let later = ticker.ticks();
        assert!(ticks_past(&ticker, later + 3));
        drop(running);
        settles(&ticker);
    }
}
