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
//! So the ticker only ticks when a tick can end something: at the earliest
//! deadline of the tasks running now (then every millisecond while a task
//! past its deadline still runs), and after any cancel in the process (then
//! every millisecond for [`TICKS_AFTER_A_CANCEL`]). A task without a
//! deadline costs the ticker nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use wasmtime::Engine;

use crate::cancel::{AnyCancelWatch, watch_any_cancel};
use crate::mutex::Mutex;

/// How often the ticker advances the engines' epoch while a tick can end
/// something: a busy guest notices a timeout or a cancellation within about
/// this long.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// How many ticks follow a cancel. The first would do: the cancel's flag is
/// set before the ticker hears of it, and the guest's next epoch check
/// sees the tick and then the flag. The rest are a margin for a guest whose
/// thread was not running when the first came.
const TICKS_AFTER_A_CANCEL: u32 = 10;

/// One thread that advances every engine's epoch when a running task's
/// deadline passes or a task is cancelled.
pub(crate) struct Ticker {
    shared: Arc<TickerShared>,
    /// Wakes the thread to look at the deadlines again (a task whose
    /// deadline comes before its next wake-up), or to stop.
    wake: Sender<()>,
    thread: Option<JoinHandle<()>>,
    /// The registration through which every cancel in the process
    /// reaches the thread (`None` in tests, which send their own).
    _cancels: Option<AnyCancelWatch>,
}

struct TickerShared {
    engines: Mutex<Vec<Engine>>,
    schedule: Mutex<Schedule>,
    /// Ticks so far, for the tests.
    ticks: AtomicU64,
    stop: AtomicBool,
}

/// The deadlines of the tasks running now, and when the ticker will wake
/// by itself. One lock holds both, so that a task that registers a
/// deadline either is seen by the ticker's next look or sees the wake-up
/// that look planned (and wakes the thread if its deadline is earlier).
#[derive(Default)]
struct Schedule {
    running: Vec<(u64, Instant)>,
    next_id: u64,
    /// `None`: asleep until woken.
    next_wake: Option<Instant>,
}

/// A running task's deadline, watched by the ticker until the guard drops.
pub(crate) struct TickerGuard<'a> {
    ticker: &'a Ticker,
    id: Option<u64>,
}

impl Ticker {
    pub(crate) fn start(engine: Engine) -> std::io::Result<Ticker> {
        let (cancel_wake, cancelled) = crossbeam_channel::bounded(1);
        let cancels = watch_any_cancel(&cancel_wake);
        Ticker::hearing(engine, cancelled, Some(cancels))
    }

    /// A ticker that hears of cancels on `cancelled`.
    fn hearing(
        engine: Engine,
        cancelled: Receiver<()>,
        cancels: Option<AnyCancelWatch>,
    ) -> std::io::Result<Ticker> {
        let shared = Arc::new(TickerShared {
            engines: Mutex::new(vec![engine]),
            schedule: Mutex::new(Schedule::default()),
            ticks: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let (wake, woken) = crossbeam_channel::bounded(1);
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("wasmproc-epoch".into())
            .spawn(move || tick(&thread_shared, &woken, cancelled))?;
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

    /// Watches a task's deadline until the guard drops (nothing to watch
    /// without one: a cancel wakes the ticker by itself).
    pub(crate) fn task_running(&self, deadline: Option<Instant>) -> TickerGuard<'_> {
        let Some(deadline) = deadline else {
            return TickerGuard {
                ticker: self,
                id: None,
            };
        };
        let mut schedule = self.shared.schedule.lock();
        let id = schedule.next_id;
        schedule.next_id += 1;
        schedule.running.push((id, deadline));
        let sooner = schedule.next_wake.is_none_or(|wake| deadline < wake);
        drop(schedule);
        if sooner {
            // A full channel already holds a wake-up.
            let _ = self.wake.try_send(());
        }
        TickerGuard {
            ticker: self,
            id: Some(id),
        }
    }

    /// How many times the epoch has been advanced.
    #[cfg(test)]
    fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::SeqCst)
    }
}

impl Drop for TickerGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut schedule = self.ticker.shared.schedule.lock();
            if let Some(at) = schedule.running.iter().position(|(each, _)| *each == id) {
                schedule.running.swap_remove(at);
            }
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

fn tick(shared: &TickerShared, woken: &Receiver<()>, cancelled: Receiver<()>) {
    let mut cancelled = cancelled;
    let mut ticks_owed_to_cancels: u32 = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let wake_at = {
            let mut schedule = shared.schedule.lock();
            let overdue = schedule
                .running
                .iter()
                .any(|(_, deadline)| *deadline <= now);
            let earliest = schedule
                .running
                .iter()
                .map(|(_, deadline)| *deadline)
                .filter(|deadline| *deadline > now)
                .min();
            let ticking = overdue || ticks_owed_to_cancels > 0;
            if ticking {
                ticks_owed_to_cancels = ticks_owed_to_cancels.saturating_sub(1);
                advance(shared);
            }
            let next_tick = ticking.then(|| now + EPOCH_TICK);
            schedule.next_wake = match (next_tick, earliest) {
                (Some(tick), Some(deadline)) => Some(tick.min(deadline)),
                (tick, deadline) => tick.or(deadline),
            };
            schedule.next_wake
        };
        let heard = match wake_at {
            Some(at) => crossbeam_channel::select! {
                recv(cancelled) -> heard => Some(heard.is_ok()),
                recv(woken) -> _ => None,
                default(at.saturating_duration_since(Instant::now())) => None,
            },
            None => crossbeam_channel::select! {
                recv(cancelled) -> heard => Some(heard.is_ok()),
                recv(woken) -> _ => None,
            },
        };
        match heard {
            Some(true) => ticks_owed_to_cancels = TICKS_AFTER_A_CANCEL,
            // Nobody can cancel any more (a test's channel): stop listening.
            Some(false) => cancelled = crossbeam_channel::never(),
            None => {}
        }
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

    /// A ticker and the sender of its cancels: one of its own, since every
    /// cancel in the process (other tests') reaches a ticker from `start`.
    fn ticker() -> (Ticker, Sender<()>) {
        let engine = Engine::new(wasmtime::Config::new().epoch_interruption(true)).unwrap();
        let (cancel, cancelled) = crossbeam_channel::bounded(1);
        (Ticker::hearing(engine, cancelled, None).unwrap(), cancel)
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

    #[test]
    fn tasks_without_deadlines_cost_no_ticks() {
        let (ticker, _cancel) = ticker();
        let _running = ticker.task_running(None);
        let _far = ticker.task_running(Some(Instant::now() + Duration::from_secs(3600)));
        thread::sleep(Duration::from_millis(100));
        assert_eq!(ticker.ticks(), 0);
    }

    #[test]
    fn a_deadline_ticks_once_it_passes_and_until_its_task_ends() {
        let (ticker, _cancel) = ticker();
        let started = Instant::now();
        let running = ticker.task_running(Some(started + Duration::from_millis(150)));
        assert!(ticks_past(&ticker, 0), "no tick after the deadline");
        assert!(started.elapsed() >= Duration::from_millis(150));
        // Overdue and still running: it goes on ticking.
        let first = ticker.ticks();
        assert!(ticks_past(&ticker, first + 3));
        drop(running);
        thread::sleep(Duration::from_millis(20));
        let after = ticker.ticks();
        thread::sleep(Duration::from_millis(100));
        assert_eq!(ticker.ticks(), after, "ticks after the task ended");
    }

    #[test]
    fn an_earlier_deadline_wakes_a_ticker_waiting_for_a_later_one() {
        let (ticker, _cancel) = ticker();
        let _late = ticker.task_running(Some(Instant::now() + Duration::from_secs(3600)));
        thread::sleep(Duration::from_millis(20));
        let soon = Instant::now() + Duration::from_millis(50);
        let _soon = ticker.task_running(Some(soon));
        assert!(ticks_past(&ticker, 0));
        assert!(Instant::now() < soon + Duration::from_secs(2));
    }

    #[test]
    fn a_cancel_ticks_at_once_then_stops() {
        let (ticker, cancel) = ticker();
        thread::sleep(Duration::from_millis(20));
        let before = ticker.ticks();
        cancel.send(()).unwrap();
        assert!(ticks_past(&ticker, before));
        thread::sleep(Duration::from_millis(100));
        let settled = ticker.ticks();
        thread::sleep(Duration::from_millis(100));
        assert_eq!(ticker.ticks(), settled, "ticks long after the cancel");
    }
}
