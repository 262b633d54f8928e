//! The recorder, from many threads.

use super::*;

#[test]
fn recorder_records_from_many_threads() {
    let rec = Recorder::new();
    let threads: Vec<_> = (0..4)
        .map(|c| {
            let rec = rec.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let h = rec.invoke(c, set_call("/a", -1, "x"));
                    if i % 10 == 9 {
                        drop(h); // timeout
                    } else {
                        h.complete(Outcome::Rev((c * 1000 + i + 1) as i64));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let h = rec.history();
    assert_eq!(h.len(), 200);
    assert_eq!(h.iter().filter(|o| o.result.is_none()).count(), 20);
    for o in &h {
        assert_eq!(o.complete_time.is_some(), o.result.is_some());
        if let Some(t) = o.complete_time {
            assert!(t >= o.invoke_time);
        }
    }
    // Invocation order, and each client's ops are sequential.
    assert!(h.windows(2).all(|w| w[0].invoke_time <= w[1].invoke_time));
    for c in 0..4 {
        let mine: Vec<&Op> = h.iter().filter(|o| o.client == c).collect();
        for w in mine.windows(2) {
            if let Some(t) = w[0].complete_time {
                assert!(t <= w[1].invoke_time);
            }
        }
    }
    let h0 = rec.invoke(9, Call::Nop);
    assert_eq!(h0.index(), 200);
    h0.complete(Outcome::Rev(1));
    assert_eq!(rec.history()[200].result, Some(Outcome::Rev(1)));
}
