//! Distribution tests of every algorithm over a fixed view.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rampart_config::model::Balance;

use super::hash::stable_hash;
use super::maglev::TABLE_SIZE;
use super::*;
use crate::health::{Reason, State};

fn stats(n: usize) -> Vec<Arc<TargetStats>> {
    (0..n).map(|_| Arc::default()).collect()
}

fn view<'a>(stats: &'a [Arc<TargetStats>], weights: &'a [u32]) -> View<'a> {
    View {
        stats,
        weights,
        all: false,
        tried: &[],
        max_in_flight: u32::MAX,
    }
}

fn labels(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("10.0.0.{i}:80")).collect()
}

fn counts(
    picker: &Picker,
    v: &View<'_>,
    picks: usize,
    key: impl Fn(usize) -> Option<u64>,
) -> Vec<usize> {
    let mut c = vec![0; v.stats.len()];
    for k in 0..picks {
        c[picker.pick(v, key(k)).unwrap()] += 1;
    }
    c
}

fn picker(balance: Balance, n: usize, weights: &[u32]) -> Picker {
    let l = labels(n);
    let refs: Vec<&str> = l.iter().map(String::as_str).collect();
    Picker::new(balance, &refs, weights)
}

/// Each share within `tolerance` (a fraction) of its weight's share.
fn assert_proportional(counts: &[usize], weights: &[u32], tolerance: f64) {
    let total: usize = counts.iter().sum();
    let wsum: u32 = weights.iter().sum();
    for (i, (&c, &w)) in counts.iter().zip(weights).enumerate() {
        let want = total as f64 * f64::from(w) / f64::from(wsum);
        let got = c as f64;
        assert!(
            (got - want).abs() <= want * tolerance,
            "target {i}: {got} vs {want} ({counts:?})"
        );
    }
}

#[test]
fn round_robin_visits_every_target_in_turn() {
    let s = stats(3);
    let w = [1, 1, 1];
    let p = picker(Balance::RoundRobin, 3, &w);
    let picks: Vec<usize> = (0..6)
        .map(|_| p.pick(&view(&s, &w), None).unwrap())
        .collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
}

#[test]
fn retries_do_not_move_the_rotation_on() {
    let s = stats(2);
    let w = [1, 1];
    for balance in [Balance::RoundRobin, Balance::WeightedRoundRobin] {
        let p = picker(balance, 2, &w);
        let firsts: Vec<usize> = (0..6)
            .map(|_| {
                let first = p.pick(&view(&s, &w), None).unwrap();
                let tried = [first];
                let retry = View {
                    tried: &tried,
                    ..view(&s, &w)
                };
                assert_eq!(p.pick(&retry, None), Some(1 - first), "{balance:?}");
                first
            })
            .collect();
        assert_eq!(firsts, [0, 1, 0, 1, 0, 1], "{balance:?}");
    }
}

#[test]
fn smooth_weighted_round_robin_interleaves_and_honours_weights() {
    let w = [5, 1, 1];
    let schedule = swrr::Schedule::new(&w);
    assert_eq!(schedule.order(), [0, 0, 1, 0, 2, 0, 0]);
    let s = stats(3);
    let p = picker(Balance::WeightedRoundRobin, 3, &[3, 2, 1]);
    let c = counts(&p, &view(&s, &[3, 2, 1]), 6000, |_| None);
    assert_eq!(c, [3000, 2000, 1000]);
}

#[test]
fn random_follows_weights_within_tolerance() {
    let s = stats(4);
    let w = [1, 2, 3, 4];
    let p = picker(Balance::Random, 4, &w);
    assert_proportional(&counts(&p, &view(&s, &w), 40_000, |_| None), &w, 0.08);
}

#[test]
fn p2c_prefers_fast_and_idle_targets_but_spreads_evenly_when_equal() {
    let s = stats(4);
    let w = [1; 4];
    let p = picker(Balance::P2c, 4, &w);
    assert_proportional(&counts(&p, &view(&s, &w), 40_000, |_| None), &w, 0.08);
    s[2].ewma_us.store(300_000, Ordering::Relaxed);
    let c = counts(&p, &view(&s, &w), 10_000, |_| None);
    assert_eq!(c[2], 0, "a slow target loses every comparison: {c:?}");
    s[2].ewma_us.store(0, Ordering::Relaxed);
    s[1].in_flight.store(50, Ordering::Relaxed);
    let c = counts(&p, &view(&s, &w), 10_000, |_| None);
    assert_eq!(c[1], 0, "a busy target loses every comparison: {c:?}");
}

#[test]
fn least_request_picks_the_least_loaded() {
    let s = stats(3);
    let w = [1; 3];
    s[0].in_flight.store(5, Ordering::Relaxed);
    s[1].in_flight.store(1, Ordering::Relaxed);
    s[2].in_flight.store(3, Ordering::Relaxed);
    let p = picker(Balance::LeastRequest, 3, &w);
    assert_eq!(p.pick(&view(&s, &w), None), Some(1));
    s[1].in_flight.store(9, Ordering::Relaxed);
    assert_eq!(p.pick(&view(&s, &w), None), Some(2));
}

#[test]
fn unavailable_and_tried_targets_are_skipped_and_panic_mode_uses_all() {
    let s = stats(3);
    let w = [1; 3];
    assert!(s[0].transition(State::Healthy, State::Ejected, Reason::Consecutive5xx));
    for balance in [
        Balance::P2c,
        Balance::RoundRobin,
        Balance::Random,
        Balance::LeastRequest,
        Balance::WeightedRoundRobin,
        Balance::Maglev,
        Balance::RingHash,
    ] {
        let p = picker(balance, 3, &w);
        let tried = [1];
        let v = View {
            tried: &tried,
            ..view(&s, &w)
        };
        for k in 0..200 {
            assert_eq!(p.pick(&v, Some(stable_hash(&[k]))), Some(2), "{balance:?}");
        }
        let all_out = [1, 2];
        let v = View {
            tried: &all_out,
            ..view(&s, &w)
        };
        assert_eq!(p.pick(&v, Some(7)), None, "{balance:?}");
        let v = View {
            tried: &all_out,
            all: true,
            ..view(&s, &w)
        };
        assert_eq!(p.pick(&v, Some(7)), Some(0), "{balance:?}: panic mode");
    }
}

#[test]
fn per_target_limit_makes_a_full_target_unusable() {
    let s = stats(2);
    let w = [1; 2];
    s[0].in_flight.store(4, Ordering::Relaxed);
    let v = View {
        max_in_flight: 4,
        ..view(&s, &w)
    };
    let p = picker(Balance::RoundRobin, 2, &w);
    for _ in 0..10 {
        assert_eq!(p.pick(&v, None), Some(1));
    }
}

#[test]
fn slow_start_admits_a_ramping_target_in_proportion() {
    let s = stats(2);
    let w = [1; 2];
    s[1].share.store(200, Ordering::Relaxed);
    let p = picker(Balance::RoundRobin, 2, &w);
    let c = counts(&p, &view(&s, &w), 20_000, |_| None);
    // Target 1 is offered half of the picks and admitted to 20% of those.
    assert!((1500..2500).contains(&c[1]), "{c:?}");
}

fn remapped(balance: Balance, n: usize, change: impl Fn(&mut Vec<String>)) -> f64 {
    let before = labels(n);
    let mut after = before.clone();
    change(&mut after);
    let build = |l: &[String]| {
        let refs: Vec<&str> = l.iter().map(String::as_str).collect();
        Picker::new(balance, &refs, &vec![1; l.len()])
    };
    let (pb, pa) = (build(&before), build(&after));
    let (sb, sa) = (stats(before.len()), stats(after.len()));
    let (wb, wa) = (vec![1; before.len()], vec![1; after.len()]);
    let keys = 20_000u64;
    let moved = (0..keys)
        .filter(|k| {
            let key = stable_hash(&k.to_be_bytes());
            let b = &before[pb.pick(&view(&sb, &wb), Some(key)).unwrap()];
            let a = &after[pa.pick(&view(&sa, &wa), Some(key)).unwrap()];
            a != b
        })
        .count();
    moved as f64 / keys as f64
}

#[test]
fn consistent_hashing_remaps_about_one_nth_of_keys() {
    for balance in [Balance::RingHash, Balance::Maglev] {
        let added = remapped(balance, 9, |l| l.push("10.0.1.99:80".to_owned()));
        assert!((0.05..0.16).contains(&added), "{balance:?} add: {added}");
        let removed = remapped(balance, 10, |l| {
            l.remove(3);
        });
        assert!(
            (0.05..0.16).contains(&removed),
            "{balance:?} remove: {removed}"
        );
    }
}

#[test]
fn consistent_hashing_spreads_keys_by_weight() {
    let w = [1, 1, 2];
    for balance in [Balance::RingHash, Balance::Maglev] {
        let s = stats(3);
        let p = picker(balance, 3, &w);
        let c = counts(&p, &view(&s, &w), 40_000, |k| {
            Some(stable_hash(&k.to_be_bytes()))
        });
        assert_proportional(&c, &w, 0.15);
    }
}

#[test]
fn an_unusable_maglev_target_moves_only_its_own_keys() {
    let s = stats(4);
    let w = [1; 4];
    let l = labels(4);
    let refs: Vec<&str> = l.iter().map(String::as_str).collect();
    let table = maglev::Table::new(&refs, &w);
    let p = Picker::Maglev(maglev::Table::new(&refs, &w));
    assert!(s[3].transition(State::Healthy, State::Unhealthy, Reason::ActiveCheckFailed));
    for k in 0..TABLE_SIZE as u64 {
        let owner = table.owner(k) as usize;
        let got = p.pick(&view(&s, &w), Some(k)).unwrap();
        if owner == 3 {
            assert_ne!(got, 3);
        } else {
            assert_eq!(got, owner);
        }
    }
}
