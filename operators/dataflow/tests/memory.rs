//! Arrangement sizes stay flat under steady traffic: old buckets leave memory at the horizon.

use std::cell::RefCell;
use std::rc::Rc;

use differential_dataflow::input::Input;
use differential_dataflow::logging::{DifferentialEvent, DifferentialEventBuilder};
use securewatch_dataflow::{build_rollups, Epoch, TimeModel, RollupInput};
use securewatch_schemas::{Severity, SourceKind};
use timely::dataflow::operators::Probe;

/// Records held by all arrangements of the worker, from differential's arrangement log:
/// batches add their length, merges replace their inputs by their (compacted) output, dropped
/// batches leave.
fn track_arrangement_records(worker: &mut timely::worker::Worker) -> Rc<RefCell<i64>> {
    let records = Rc::new(RefCell::new(0i64));
    let sink = Rc::clone(&records);
    worker
        .log_register()
        .expect("logging available")
        .insert::<DifferentialEventBuilder, _>("differential/arrange", move |_time, data| {
            let Some(events) = data else { return };
            let mut total = sink.borrow_mut();
            for (_, event) in events.iter() {
                match event {
                    DifferentialEvent::Batch(batch) => *total += batch.length as i64,
                    DifferentialEvent::Merge(merge) => {
                        if let Some(complete) = merge.complete {
                            *total += complete as i64 - merge.length1 as i64 - merge.length2 as i64;
                        }
                    }
                    DifferentialEvent::Drop(drop) => *total -= drop.length as i64,
                    _ => {}
                }
            }
        });
    records
}

#[test]
fn arrangement_records_stay_flat_under_steady_traffic() {
    // Two hours of traffic, ten fresh hosts per minute, ticks of one second. Lateness and
    // retention of two minutes keep about four buckets resident.
    let config = TimeModel::new(
        std::time::Duration::from_secs(120),
        std::time::Duration::from_secs(120),
    )
    .unwrap();
    let samples = timely::execute_directly(move |worker| {
        let records = track_arrangement_records(worker);
        let (mut input, probe) = worker.dataflow::<Epoch, _, _>(|scope| {
            let (input, events) = scope.new_collection::<RollupInput, isize>();
            let rollups = build_rollups(events, config);
            let (probe, _) = rollups.resident.inner.probe();
            (input, probe)
        });
        let mut samples = Vec::new();
        let mut serial = 0u64;
        for second in 1..=2 * 3_600u64 {
            let epoch = second * 1_000;
            for lag in [0u64, 30_000] {
                serial += 1;
                let record = RollupInput {
                    tenant: Default::default(),
                    event_time_ms: epoch.saturating_sub(lag),
                    kind: SourceKind::ALL[(serial % 6) as usize],
                    host: Some(format!("host-{}", serial / 12)),
                    severity: Severity::ALL[(serial % 8) as usize],
                    category: Some(format!("cat-{}", serial % 5)),
                };
                input.update_at(record, epoch, 1);
            }
            input.advance_to(epoch + 1_000);
            input.flush();
            while probe.less_than(input.time()) {
                worker.step();
            }
            if second % 600 == 0 {
                samples.push(*records.borrow());
            }
        }
        samples
    });
    // 14 400 events over 12 000 distinct (bucket, host) pairs went in; what stays resident is
    // a few minutes' worth, and it does not grow with the run's length.
    let last = *samples.last().unwrap();
    let peak = *samples.iter().max().unwrap();
    assert!(
        samples[0] > 0,
        "the arrangement log reports records: {samples:?}"
    );
    assert!(peak < 2_000, "resident records bounded: {samples:?}");
    assert!(
        last <= 2 * samples[1],
        "no growth between the first and the last hour: {samples:?}"
    );
}
