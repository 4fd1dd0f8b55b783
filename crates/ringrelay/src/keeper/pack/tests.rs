//! Unit tests of the packing: counts, stability, compaction, limits, lost subscriptions.

use super::*;

use crate::keeper::plan::tests::sub;

const SESSIONS: &str = "/restapi/v1.0/account/~/telephony/sessions";
const CALL_LOG: &str = "/restapi/v1.0/account/~/extension/~/call-log";
const REMINDER: &str = "/restapi/v1.0/subscription/~?threshold=172800&interval=43200";

fn exts(range: std::ops::Range<u32>) -> Vec<String> {
    range
        .map(|i| format!("{}", 62_295_327_000u64 + u64::from(i)))
        .collect()
}

fn set(extensions: Vec<String>, max: usize) -> DesiredSet {
    DesiredSet {
        address: "https://r/webhooks/ringcentral/a".into(),
        account_filters: vec![SESSIONS.into(), CALL_LOG.into(), REMINDER.into()],
        reminder: Some(REMINDER.into()),
        extensions,
        max_filters: max,
        expires_in: Duration::from_secs(7 * 86_400),
        renew_before: Duration::from_secs(56 * 3600),
    }
}

/// What RingCentral would list after carrying out `p` (ids `s0`, `s1`, …, account
/// ids expanded), and the held list.
fn carry_out(d: &DesiredSet, p: &SetPlan, now: DateTime<Utc>) -> (Vec<Subscription>, Vec<Held>) {
    let mut listed = Vec::new();
    for (i, slot) in p.slots.iter().enumerate() {
        let id = slot.existing.as_ref().map_or_else(
            || format!("new{i}-{}", slot.extensions.len()),
            |e| e.id.clone(),
        );
        let mut s = sub(&id, &d.address, 150, now);
        s.event_filters = slot
            .filters
            .iter()
            .map(|f| f.replace("account/~", "account/37439510"))
            .collect();
        listed.push(s);
    }
    let held = listed
        .iter()
        .map(|s| Held {
            id: s.id.clone(),
            last: Some(s.clone()),
        })
        .collect();
    (listed, held)
}

fn changed(p: &SetPlan) -> usize {
    p.slots
        .iter()
        .filter(|s| s.action != SlotAction::Keep)
        .count()
        + p.deletes.len()
}

#[test]
fn voicemail_filters_name_their_extension() {
    assert_eq!(
        voicemail_extension("/restapi/v1.0/account/~/extension/62295327001/voicemail"),
        Some("62295327001")
    );
    assert_eq!(
        voicemail_extension("/restapi/v1.0/account/37439510/extension/7/voicemail"),
        Some("7")
    );
    assert_eq!(
        voicemail_extension("/restapi/v1.0/account/~/extension/~/voicemail"),
        None
    );
    assert_eq!(
        voicemail_extension("/restapi/v1.0/account/~/extension/7/call-log"),
        None
    );
    assert_eq!(voicemail_extension(SESSIONS), None);
    assert_eq!(
        voicemail_extension(&extension_voicemail_filter("42")),
        Some("42")
    );
}

#[test]
fn packed_subscriptions_do_not_overlap_but_duplicates_do() {
    let now = Utc::now();
    let d = set(exts(0..100), 50);
    let (listed, _) = carry_out(&d, &plan_set(&d, &[], &[], now, None), now);
    let refs: Vec<&Subscription> = listed.iter().collect();
    assert_eq!(refs.len(), 3);
    assert_eq!(overlap(&refs), 1, "only the reminder is shared");
    let twice = [&listed[0], &listed[1], &listed[0]];
    assert_eq!(overlap(&twice), 2);
    assert_eq!(overlap(&[]), 0);
}

#[test]
fn two_hundred_extensions_are_packed_into_the_fewest_subscriptions() {
    let now = Utc::now();
    let d = set(exts(0..200), 50);
    let p = plan_set(&d, &[], &[], now, None);
    // 47 in the first (3 account-level filters), 49 in each further one.
    assert_eq!(p.slots.len(), 5, "47 + 49 + 49 + 49 + 6");
    assert!(p.over_limit.is_none() && p.deletes.is_empty());
    let mut seen = Vec::new();
    for (i, slot) in p.slots.iter().enumerate() {
        assert_eq!(slot.action, SlotAction::Create);
        assert!(slot.filters.len() <= 50, "slot {i}: {}", slot.filters.len());
        assert!(slot.filters.iter().any(|f| f == REMINDER), "slot {i}");
        assert_eq!(slot.filters.iter().any(|f| f == SESSIONS), i == 0);
        seen.extend(slot.extensions.iter().cloned());
    }
    assert_eq!(p.slots[0].extensions.len(), 47);
    assert_eq!(seen, exts(0..200), "each exactly once, in order");
}

#[test]
fn adding_or_removing_one_extension_changes_one_subscription() {
    let now = Utc::now();
    let d = set(exts(0..200), 50);
    let p = plan_set(&d, &[], &[], now, None);
    let (listed, held) = carry_out(&d, &p, now);
    let steady = plan_set(&d, &listed, &held, now, None);
    assert_eq!(changed(&steady), 0, "{steady:?}");

    // Remove one from the third subscription: one PUT there.
    let mut fewer = exts(0..200);
    let gone = fewer.remove(120);
    let p = plan_set(&set(fewer.clone(), 50), &listed, &held, now, None);
    assert_eq!(changed(&p), 1);
    let updated: Vec<usize> = (0..p.slots.len())
        .filter(|&i| p.slots[i].action == SlotAction::Update)
        .collect();
    assert_eq!(updated, vec![2]);
    assert!(!p.slots[2].extensions.contains(&gone));
    assert!(
        !p.slots[2]
            .filters
            .contains(&extension_voicemail_filter(&gone))
    );

    // Then add a new one: it fills that hole (one PUT), nothing else moves.
    let d2 = set(fewer.clone(), 50);
    let (listed2, held2) = carry_out(&d2, &p, now);
    let mut more = fewer;
    more.push("62295328999".into());
    let p = plan_set(&set(more, 50), &listed2, &held2, now, None);
    assert_eq!(changed(&p), 1, "{p:?}");
    assert_eq!(p.slots[2].action, SlotAction::Update);
    assert!(p.slots[2].extensions.contains(&"62295328999".to_owned()));
}

#[test]
fn a_new_extension_with_every_subscription_full_gets_a_new_one() {
    let now = Utc::now();
    let d = set(exts(0..96), 50); // 47 + 49: both full
    let p = plan_set(&d, &[], &[], now, None);
    assert_eq!(p.slots.len(), 2);
    let (listed, held) = carry_out(&d, &p, now);
    let p = plan_set(&set(exts(0..97), 50), &listed, &held, now, None);
    assert_eq!(changed(&p), 1);
    assert_eq!(p.slots.len(), 3);
    assert_eq!(p.slots[2].action, SlotAction::Create);
    assert_eq!(p.slots[2].extensions, exts(96..97));
    assert_eq!(p.slots[2].filters.len(), 2, "the filter and the reminder");
}

#[test]
fn an_emptied_subscription_is_deleted_and_many_removals_compact() {
    let now = Utc::now();
    let d = set(exts(0..150), 50); // 47 + 49 + 49 + 5
    let p = plan_set(&d, &[], &[], now, None);
    assert_eq!(p.slots.len(), 4);
    let (listed, held) = carry_out(&d, &p, now);
    let last_id = listed[3].id.clone();
    // The last one's five extensions go: it is deleted, nothing else changes.
    let p = plan_set(&set(exts(0..145), 50), &listed, &held, now, None);
    assert_eq!(p.slots.len(), 3);
    assert_eq!(p.deletes, vec![(last_id, DeleteReason::Emptied)]);
    assert_eq!(changed(&p), 1);
    // Removing most of the first three: their room exceeds a whole subscription, so
    // the last one's extensions move into the first and it is deleted.
    let mut few = exts(0..10);
    few.extend(exts(100..140));
    let p = plan_set(&set(few.clone(), 50), &listed, &held, now, None);
    assert_eq!(p.slots.len(), 2, "{p:?}");
    let mut seen: Vec<String> = p.slots.iter().flat_map(|s| s.extensions.clone()).collect();
    seen.sort_by(ext_order);
    assert_eq!(seen, few);
    assert!(p.slots.iter().all(|s| s.filters.len() <= 50));
}

#[test]
fn the_subscription_limit_leaves_extensions_out_and_says_why() {
    let now = Utc::now();
    let foreign: Vec<Subscription> = (0..27)
        .map(|i| sub(&format!("f{i}"), "https://elsewhere/x", 100, now))
        .collect();
    let d = set(exts(0..200), 50);
    let p = plan_set(&d, &foreign, &[], now, None);
    assert_eq!(p.slots.len(), 3, "30 - 27 foreign");
    let over = p.over_limit.unwrap();
    assert_eq!((over.needed, over.allowed), (5, 3));
    assert_eq!(over.extensions, exts(145..200));
    // A lowered max moves the overflow out of full subscriptions, not everything.
    let p = plan_set(&set(exts(0..10), 50), &[], &[], now, None);
    let (listed, held) = carry_out(&set(exts(0..10), 50), &p, now);
    let p = plan_set(&set(exts(0..10), 8), &listed, &held, now, None);
    assert_eq!(p.slots[0].extensions, exts(0..5));
    assert_eq!(p.slots[1].extensions, exts(5..10));
    assert_eq!(p.slots[1].action, SlotAction::Create);
}

#[test]
fn a_blacklisted_voicemail_subscription_alone_is_recreated_with_its_extensions() {
    let now = Utc::now();
    let d = set(exts(0..200), 50);
    let p = plan_set(&d, &[], &[], now, None);
    let (mut listed, held) = carry_out(&d, &p, now);
    listed[3].status = SubscriptionStatus::Blacklisted;
    let id = listed[3].id.clone();
    let carried = p.slots[3].extensions.clone();
    let last = now - chrono::Duration::minutes(3);
    let p = plan_set(&d, &listed, &held, now, Some(last));
    assert_eq!(
        p.deletes,
        vec![(id, DeleteReason::NotActive("Blacklisted".into()))]
    );
    assert_eq!(changed(&p), 2, "delete + create");
    assert_eq!(p.slots[3].action, SlotAction::Create);
    assert_eq!(p.slots[3].extensions, carried);
    assert_eq!(p.uncovered.len(), 1);
    assert_eq!(p.uncovered[0].extensions.as_ref(), Some(&carried));
    assert_eq!(p.uncovered[0].uncovered.cause, GapCause::Blacklisted);
    assert_eq!(p.uncovered[0].uncovered.since, last);
    // The first one lost: the whole account is concerned.
    let (mut listed, held) = carry_out(&d, &plan_set(&d, &[], &[], now, None), now);
    listed[0].expires_at = now - chrono::Duration::minutes(1);
    let p = plan_set(&d, &listed, &held, now, None);
    assert_eq!(p.slots[0].action, SlotAction::Create);
    assert_eq!(p.uncovered[0].extensions, None);
}

#[test]
fn without_extensions_one_subscription_is_kept_as_before() {
    let now = Utc::now();
    let d = set(Vec::new(), 50);
    let mut kept = sub("k", &d.address, 100, now);
    kept.event_filters = d
        .account_filters
        .iter()
        .map(|f| f.replace("account/~", "account/1"))
        .collect();
    let extra = sub("x", &d.address, 100, now);
    let held = [
        Held {
            id: "k".into(),
            last: None,
        },
        Held {
            id: "x".into(),
            last: None,
        },
    ];
    let p = plan_set(&d, &[kept.clone(), extra], &held, now, None);
    assert_eq!(p.slots.len(), 1);
    assert_eq!(p.slots[0].action, SlotAction::Keep);
    assert_eq!(p.slots[0].existing.as_ref(), Some(&kept));
    // The voicemail-only one from packed times goes (its filters are not wanted).
    assert_eq!(p.deletes, vec![("x".into(), DeleteReason::FiltersChanged)]);
    // The same as `plan`.
    let single = plan(&d.single(), &[kept], Some("k"), now, None);
    assert!(single.actions.is_empty());
}

#[test]
fn turning_on_extensions_updates_the_existing_subscription_in_place() {
    let now = Utc::now();
    let mut legacy = set(Vec::new(), 50);
    legacy
        .account_filters
        .insert(1, "/restapi/v1.0/account/~/extension/~/voicemail".into());
    let mut s = sub("k", &legacy.address, 100, now);
    // RingCentral lists `extension/~` expanded to the JWT user's extension.
    s.event_filters = legacy
        .account_filters
        .iter()
        .map(|f| {
            f.replace("account/~", "account/1")
                .replace("extension/~", "extension/62295327000")
        })
        .collect();
    let held = [Held {
        id: "k".into(),
        last: None,
    }];
    let d = set(exts(0..10), 50);
    let p = plan_set(&d, std::slice::from_ref(&s), &held, now, None);
    assert_eq!(p.slots.len(), 1);
    assert_eq!(p.slots[0].action, SlotAction::Update);
    assert_eq!(p.slots[0].extensions, exts(0..10));
    assert!(p.deletes.is_empty());
}
