//! Initializers as snapshots: state built once, every task starting from
//! it in a fresh instance, in both isolations; every failure a status; the
//! snapshot cache.

use wasmproc::{CacheStatus, Initializer, Task};
use wasmproc_tests::init_tasks;

#[derive(serde::Serialize)]
struct TableSpec {
    len: usize,
    seed: u64,
}

#[test]
fn tasks_see_the_state_the_initializer_left() {
    let snapshot = init_tasks()
        .initialize("table", &TableSpec { len: 1000, seed: 7 })
        .unwrap();
    let outcome = snapshot.run(&Task::call("lookup", &10).unwrap());
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.decode::<Option<u64>>().unwrap(), Some(107));
    let state = snapshot.run(&Task::call("state", &()).unwrap());
    assert_eq!(state.decode::<(u64, u64)>().unwrap(), (7, 1));
    // The module itself is untouched.
    let plain = init_tasks().run(&Task::call("table_len", &()).unwrap());
    assert_eq!(plain.decode::<usize>().unwrap(), 0);
    assert_eq!(snapshot.initialized_by().map(Initializer::name), Some("table"));
    assert!(snapshot.initializers().contains(&"seed_only".to_owned()));
    assert!(!snapshot.initializers().contains(&"table".to_owned()));
    let _ = CacheStatus::Hit;
}
