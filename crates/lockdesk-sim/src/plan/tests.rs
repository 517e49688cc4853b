use std::collections::{HashMap, HashSet};

use lockdesk_verify::{
    parse_decryption_keys, parse_public_keys, Policy, TrustStore, Verdict, Verifier,
};
use openssl::rsa::Rsa;

use super::*;
use crate::tokens::SimKeys;

fn all() -> Vec<Step> {
    plan(7, &Scenario::ALL, &[1001, 1002], 500)
}

/// How many different values of `field` the pieces of evidence carry.
fn distinct<'a>(evidence: &[&'a Evidence], field: impl Fn(&'a Evidence) -> &'a String) -> usize {
    evidence
        .iter()
        .map(|e| field(e))
        .collect::<HashSet<_>>()
        .len()
}

fn evidence_of(steps: &[Step], s: Scenario) -> Vec<&Evidence> {
    steps
        .iter()
        .filter(|st| st.scenario == s)
        .filter_map(|st| match &st.action {
            Action::Evidence(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn webhooks_of(steps: &[Step], s: Scenario) -> Vec<&Map<String, Value>> {
    steps
        .iter()
        .filter(|st| st.scenario == s)
        .filter_map(|st| match &st.action {
            Action::Webhook { body, .. } => Some(body),
            _ => None,
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_plan() {
    assert_eq!(all(), all());
    assert_ne!(all(), plan(8, &Scenario::ALL, &[1001, 1002], 500));
}

#[test]
fn scenario_names_round_trip() {
    for s in Scenario::ALL {
        assert_eq!(Scenario::from_name(s.name()), Some(s));
    }
    assert_eq!(Scenario::from_name("nope"), None);
}

#[test]
fn every_scenario_plays_and_ids_are_unique() {
    let steps = all();
    let played: HashSet<Scenario> = steps.iter().map(|s| s.scenario).collect();
    assert_eq!(played.len(), Scenario::ALL.len());
    assert!(
        steps.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "sorted by time"
    );
    let mut event_ids = HashSet::new();
    let mut correlations = HashSet::new();
    for st in &steps {
        if let Action::Webhook {
            correlation_id,
            body,
        } = &st.action
        {
            assert!(correlations.insert(correlation_id.clone()));
            assert!(event_ids.insert(body["eventId"].as_str().unwrap().to_owned()));
            for field in ["eventId", "eventType", "platform", "clientId"] {
                assert!(body.contains_key(field), "{field} missing in {body:?}");
            }
            let needs: &[&str] = match body["eventType"].as_str().unwrap() {
                "v2.conversation.pushed" => &[
                    "projectId",
                    "conversationId",
                    "operatorId",
                    "channel",
                    "visitorId",
                ],
                "v2.conversation.closed" => &[
                    "projectId",
                    "conversationId",
                    "operatorIds",
                    "channel",
                    "visitorId",
                ],
                "visitor.updated" => &["operatorId", "visitorId"],
                other => panic!("unexpected event type {other}"),
            };
            for field in needs {
                assert!(body.contains_key(*field), "{field} missing in {body:?}");
            }
        }
    }
}

#[test]
fn scenarios_have_the_shape_they_promise() {
    let steps = all();
    // Anonymous and third-party: no evidence at all.
    assert!(evidence_of(&steps, Scenario::Anonymous).is_empty());
    assert!(evidence_of(&steps, Scenario::ThirdPartyChannel).is_empty());
    assert_eq!(
        webhooks_of(&steps, Scenario::ThirdPartyChannel)[0]["channel"],
        "WHATSAPP"
    );
    // One person on three devices, two domains and the app.
    let md = evidence_of(&steps, Scenario::MultiDevice);
    assert_eq!(distinct(&md, |e| &e.token.user_id), 1);
    assert_eq!(distinct(&md, |e| &e.visitor_id), 3);
    let domains: HashSet<_> = md.iter().filter_map(|e| e.source.domain.clone()).collect();
    assert_eq!(domains.len(), 2);
    assert!(md.iter().any(|e| e.source.app.is_some()));
    let channels: HashSet<_> = webhooks_of(&steps, Scenario::MultiDevice)
        .iter()
        .filter_map(|b| b.get("channel").and_then(|c| c.as_str()).map(str::to_owned))
        .collect();
    assert!(channels.contains("MOBILE_APP") && channels.contains("CHAT"));
    // A shared device: one visitor, two people.
    let sd = evidence_of(&steps, Scenario::SharedDevice);
    assert_eq!(distinct(&sd, |e| &e.visitor_id), 1);
    assert_eq!(distinct(&sd, |e| &e.token.user_id), 2);
    // A reused userId: one id, two different signed emails, two devices.
    let ru = evidence_of(&steps, Scenario::ReusedUserId);
    assert_eq!(distinct(&ru, |e| &e.token.user_id), 1);
    assert_eq!(distinct(&ru, |e| &e.visitor_id), 2);
    let emails: HashSet<_> = ru
        .iter()
        .map(|e| e.token.visitor_data.as_ref().unwrap()["email"].clone())
        .collect();
    assert_eq!(emails.len(), 2, "two different people");
    // A token at every page load.
    assert!(evidence_of(&steps, Scenario::TokenEveryPage).len() >= 4);
}

/// The tokens the simulator mints verify, or fail, exactly as each scenario intends.
#[test]
fn minted_tokens_get_the_intended_verdicts() {
    let desk = Rsa::generate(2048).unwrap();
    let desk_private = parse_decryption_keys(&desk.private_key_to_pem().unwrap()).unwrap();
    let desk_public = parse_public_keys(&desk.public_key_to_pem().unwrap())
        .unwrap()
        .remove(0);
    let keys = SimKeys::generate(&desk_public).unwrap();
    let mut trust = TrustStore::new();
    trust
        .add(
            ISSUER,
            parse_public_keys(keys.brand_public_jwks.as_bytes()).unwrap(),
        )
        .unwrap();
    let verifier = Verifier::new(trust, desk_private, Policy::default());
    let now = 1_800_000_000;

    let steps = all();
    let mut seen: HashMap<Scenario, Vec<String>> = HashMap::new();
    for st in &steps {
        if let Action::Evidence(e) = &st.action {
            let token = keys.mint(&e.token, now).unwrap();
            let verdict = match verifier.verify(token.as_bytes(), now) {
                Verdict::Verified(v) => {
                    assert_eq!(v.user_id, e.token.user_id);
                    "verified".to_owned()
                }
                Verdict::Rejected(r) => r.reason.code().to_owned(),
            };
            seen.entry(st.scenario).or_default().push(verdict);
        }
    }
    let expect = |s: Scenario, v: &str| {
        let got = &seen[&s];
        assert!(
            got.iter().all(|g| g == v),
            "{}: {got:?}, expected all {v}",
            s.name()
        );
    };
    expect(Scenario::Forged, "bad_signature");
    expect(Scenario::UnknownKey, "unknown_key");
    expect(Scenario::Expired, "expired");
    for s in [
        Scenario::LoginMidConversation,
        Scenario::TokenEveryPage,
        Scenario::MultiDevice,
        Scenario::SessionLapse,
        Scenario::SharedDevice,
        Scenario::ReusedUserId,
    ] {
        expect(s, "verified");
    }
}

#[test]
fn the_lookalike_scenario_signs_a_confusable_mixed_script_id_beside_the_genuine_one() {
    let steps = plan(3, &[Scenario::LookAlike], &[1], 0);
    let users: Vec<(String, Signer)> = steps
        .iter()
        .filter_map(|st| match &st.action {
            Action::Evidence(e) => Some((e.token.user_id.clone(), e.token.signer)),
            _ => None,
        })
        .collect();
    assert_eq!(users.len(), 2);
    let (genuine, fake) = (&users[0].0, &users[1].0);
    assert!(users.iter().all(|(_, s)| *s == Signer::Brand));
    assert!(
        genuine.starts_with("cust-") && genuine.is_ascii(),
        "{genuine}"
    );
    assert!(fake.starts_with('\u{441}'), "{fake}");
    assert!(lockdesk_text::confusable(genuine, fake));
    assert!(lockdesk_text::mixes_scripts(fake) && !lockdesk_text::mixes_scripts(genuine));
    assert!(
        lockdesk_text::hazards(fake).is_empty(),
        "nothing for the verifier to refuse"
    );
}
