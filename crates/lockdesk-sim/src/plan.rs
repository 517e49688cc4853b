//! The scenarios, as a deterministic timeline of steps. Pure: no clock, no network, no keys.

use serde_json::{json, Map, Value};

/// What the simulator can play. Each instance gets fresh conversation and visitor ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// A conversation where nobody logs in.
    Anonymous,
    /// The visitor logs in while the conversation is going on.
    LoginMidConversation,
    /// A logged-in visitor presents a fresh token at every page load.
    TokenEveryPage,
    /// One person on a laptop browser, a phone browser and the mobile app, across two domains.
    MultiDevice,
    /// One token, then silence: the authenticated session lapses on the desk.
    SessionLapse,
    /// A token signed by someone else's key, claiming the brand's issuer.
    Forged,
    /// A token whose `exp` has passed.
    Expired,
    /// A token signed by a key the desk does not know (a rotation the desk never heard of).
    UnknownKey,
    /// A WhatsApp conversation: authentication does not exist there.
    ThirdPartyChannel,
    /// One device carries two verified people, one after the other.
    SharedDevice,
    /// One userId presented for two clearly different people (the reused-id failure).
    ReusedUserId,
    /// The brand signs a userId built to look like another person's (`сust-…` with a Cyrillic
    /// `с`, beside the genuine `cust-…`): the desk's look-alike alert.
    LookAlike,
}

impl Scenario {
    pub const ALL: [Scenario; 12] = [
        Scenario::Anonymous,
        Scenario::LoginMidConversation,
        Scenario::TokenEveryPage,
        Scenario::MultiDevice,
        Scenario::SessionLapse,
        Scenario::Forged,
        Scenario::Expired,
        Scenario::UnknownKey,
        Scenario::ThirdPartyChannel,
        Scenario::SharedDevice,
        Scenario::ReusedUserId,
        Scenario::LookAlike,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Anonymous => "anonymous",
            Scenario::LoginMidConversation => "login-mid-conversation",
            Scenario::TokenEveryPage => "token-every-page",
            Scenario::MultiDevice => "multi-device",
            Scenario::SessionLapse => "session-lapse",
            Scenario::Forged => "forged",
            Scenario::Expired => "expired",
            Scenario::UnknownKey => "unknown-key",
            Scenario::ThirdPartyChannel => "third-party-channel",
            Scenario::SharedDevice => "shared-device",
            Scenario::ReusedUserId => "reused-user-id",
            Scenario::LookAlike => "look-alike",
        }
    }

    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Which key signs a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    /// The brand's signing key (the desk trusts it).
    Brand,
    /// A key of the forger's own, with the brand's issuer in the claims.
    Forger,
    /// A brand key the desk was never given, announced by a `kid`.
    Rotated,
}

/// What to put in a token; it is minted when the step is sent.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSpec {
    pub signer: Signer,
    pub user_id: String,
    pub visitor_data: Option<Map<String, Value>>,
    /// Seconds from the moment of minting to `exp` (negative: already expired).
    pub expires_in: i64,
}

/// Where the visitor presented the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub domain: Option<String>,
    pub device: String,
    pub app: Option<String>,
}

/// A token a visitor presented, as the brand's token provider reports it to the gateway.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    pub visitor_id: String,
    pub conversation_id: Option<String>,
    pub token: TokenSpec,
    pub source: Source,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// An iAdvize webhook delivery. `createdAt` and `sentAt` are added when it is sent.
    Webhook {
        correlation_id: String,
        body: Map<String, Value>,
    },
    Evidence(Evidence),
}

/// One thing to do, `at_ms` after the start of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub at_ms: u64,
    pub scenario: Scenario,
    pub action: Action,
}

/// The brand's issuer in simulated tokens.
pub const ISSUER: &str = "https://brand.example";
/// Signed visitorData of the login-mid-conversation person: markup and script, to be shown as
/// literal text (`window.__lockdeskPwned` stays undefined where nothing ran).
pub const HOSTILE_ADDRESS: &str = "<img src=x onerror=\"window.__lockdeskPwned=1\"><b>12 rue</b>";
pub const HOSTILE_CITY: &str = "<script>window.__lockdeskPwned=2</script>Paris";
/// The iAdvize project the simulated conversations belong to.
pub const PROJECT_ID: i64 = 3_801;
pub const CLIENT_ID: i64 = 2_701;

struct Gen {
    rng: fastrand::Rng,
    steps: Vec<Step>,
    operators: Vec<i64>,
}

const FIRST_NAMES: [&str; 8] = [
    "Jane", "Ahmed", "Chloé", "Mateo", "Aiko", "Olu", "Zofia", "Liam",
];
const LAST_NAMES: [&str; 8] = [
    "Doe", "Benali", "Martin", "García", "Sato", "Adeyemi", "Nowak", "Byrne",
];
const DOMAINS: [&str; 2] = ["www.brand.example", "shop.brand.example"];

impl Gen {
    fn uuid(&mut self) -> String {
        let mut b = [0u8; 16];
        for x in &mut b {
            *x = self.rng.u8(..);
        }
        b[6] = (b[6] & 0x0f) | 0x40; // version 4
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
        let h = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    fn person(&mut self) -> (String, Map<String, Value>) {
        let user_id = format!("cust-{:08}", self.rng.u32(..100_000_000));
        let first = FIRST_NAMES[self.rng.usize(..FIRST_NAMES.len())];
        let last = LAST_NAMES[self.rng.usize(..LAST_NAMES.len())];
        let mut vd = Map::new();
        vd.insert("firstName".into(), first.into());
        vd.insert("lastName".into(), last.into());
        vd.insert(
            "email".into(),
            format!("{}.{}@mail.example", ascii(first), ascii(last)).into(),
        );
        vd.insert("country".into(), "FR".into());
        (user_id, vd)
    }

    fn push(&mut self, at_ms: u64, scenario: Scenario, action: Action) {
        self.steps.push(Step {
            at_ms,
            scenario,
            action,
        });
    }

    fn webhook(&mut self, at_ms: u64, scenario: Scenario, event_type: &str, fields: Value) {
        let mut body = Map::new();
        body.insert("eventId".into(), self.uuid().into());
        body.insert("eventType".into(), event_type.into());
        body.insert("platform".into(), "ha".into());
        body.insert("clientId".into(), CLIENT_ID.into());
        if let Value::Object(f) = fields {
            body.extend(f);
        }
        let correlation_id = self.uuid();
        self.push(
            at_ms,
            scenario,
            Action::Webhook {
                correlation_id,
                body,
            },
        );
    }

    fn operator(&mut self) -> i64 {
        self.operators[self.rng.usize(..self.operators.len())]
    }

    fn pushed(&mut self, at: u64, s: Scenario, conv: &str, visitor: &str, channel: &str) -> i64 {
        let operator = self.operator();
        self.webhook(
            at,
            s,
            "v2.conversation.pushed",
            json!({"projectId": PROJECT_ID, "conversationId": conv, "operatorId": operator,
                   "channel": channel, "visitorId": visitor, "visitorExternalId": null}),
        );
        operator
    }

    fn closed(&mut self, at: u64, s: Scenario, conv: &str, visitor: &str, channel: &str, op: i64) {
        self.webhook(
            at,
            s,
            "v2.conversation.closed",
            json!({"projectId": PROJECT_ID, "conversationId": conv, "operatorIds": [op],
                   "channel": channel, "visitorId": visitor}),
        );
    }

    /// The common case: a valid token from the brand, living iAdvize's recommended 60 s.
    fn signed_in(
        &mut self,
        at: u64,
        s: Scenario,
        visitor: &str,
        conv: Option<&str>,
        person: &(String, Map<String, Value>),
        source: Source,
    ) {
        self.evidence(at, s, visitor, conv, Signer::Brand, person, 60, source);
    }

    #[allow(clippy::too_many_arguments)]
    fn evidence(
        &mut self,
        at: u64,
        s: Scenario,
        visitor: &str,
        conv: Option<&str>,
        signer: Signer,
        person: &(String, Map<String, Value>),
        expires_in: i64,
        source: Source,
    ) {
        self.push(
            at,
            s,
            Action::Evidence(Evidence {
                visitor_id: visitor.to_owned(),
                conversation_id: conv.map(str::to_owned),
                token: TokenSpec {
                    signer,
                    user_id: person.0.clone(),
                    visitor_data: Some(person.1.clone()),
                    expires_in,
                },
                source,
            }),
        );
    }

    /// One instance of `s`, starting `t0` ms into the run. Timings are in seconds of a demo:
    /// short enough to watch, long enough to read.
    fn scenario(&mut self, s: Scenario, t0: u64) {
        let web = |domain: &str, device: &str| Source {
            domain: Some(domain.to_owned()),
            device: device.to_owned(),
            app: None,
        };
        let sec = |n: u64| t0 + n * 1000;
        let conv = self.uuid();
        let visitor = self.uuid();
        let person = self.person();
        let laptop = web(DOMAINS[0], "laptop");
        match s {
            Scenario::Anonymous => {
                let op = self.pushed(sec(0), s, &conv, &visitor, "CHAT");
                self.closed(sec(20), s, &conv, &visitor, "CHAT", op);
            }
            Scenario::LoginMidConversation => {
                // The brand signs whatever its profile holds: here, markup and script that
                // a desk must show as literal text and never run.
                let mut person = person;
                person.1.insert("address".into(), HOSTILE_ADDRESS.into());
                person.1.insert("city".into(), HOSTILE_CITY.into());
                let op = self.pushed(sec(0), s, &conv, &visitor, "CHAT");
                self.signed_in(sec(6), s, &visitor, Some(&conv), &person, laptop);
                self.closed(sec(30), s, &conv, &visitor, "CHAT", op);
            }
            Scenario::TokenEveryPage => {
                self.signed_in(sec(0), s, &visitor, None, &person, laptop.clone());
                let op = self.pushed(sec(1), s, &conv, &visitor, "CHAT");
                for page in 1..=4 {
                    self.signed_in(
                        sec(1 + page * 5),
                        s,
                        &visitor,
                        Some(&conv),
                        &person,
                        laptop.clone(),
                    );
                }
                self.closed(sec(30), s, &conv, &visitor, "CHAT", op);
            }
            Scenario::MultiDevice => {
                let devices = [
                    ("CHAT", web(DOMAINS[0], "laptop")),
                    ("CHAT", web(DOMAINS[1], "phone")),
                    (
                        "MOBILE_APP",
                        Source {
                            domain: None,
                            device: "phone".into(),
                            app: Some("Brand for iOS".into()),
                        },
                    ),
                ];
                for (i, (channel, source)) in devices.into_iter().enumerate() {
                    let at = sec(i as u64 * 4);
                    let (c, v) = if i == 0 {
                        (conv.clone(), visitor.clone())
                    } else {
                        (self.uuid(), self.uuid())
                    };
                    self.signed_in(at, s, &v, None, &person, source);
                    let op = self.pushed(at + 500, s, &c, &v, channel);
                    self.closed(at + 15_000, s, &c, &v, channel, op);
                }
            }
            Scenario::SessionLapse => {
                let op = self.pushed(sec(0), s, &conv, &visitor, "CHAT");
                self.signed_in(sec(2), s, &visitor, Some(&conv), &person, laptop);
                self.closed(sec(120), s, &conv, &visitor, "CHAT", op);
            }
            Scenario::Forged | Scenario::UnknownKey | Scenario::Expired => {
                let (signer, expires_in) = match s {
                    Scenario::Forged => (Signer::Forger, 60),
                    Scenario::UnknownKey => (Signer::Rotated, 60),
                    _ => (Signer::Brand, -600),
                };
                let op = self.pushed(sec(0), s, &conv, &visitor, "CHAT");
                self.evidence(
                    sec(3),
                    s,
                    &visitor,
                    Some(&conv),
                    signer,
                    &person,
                    expires_in,
                    laptop,
                );
                self.closed(sec(25), s, &conv, &visitor, "CHAT", op);
            }
            Scenario::ThirdPartyChannel => {
                let op = self.pushed(sec(0), s, &conv, &visitor, "WHATSAPP");
                self.webhook(
                    sec(4),
                    s,
                    "visitor.updated",
                    json!({"operatorId": op, "visitorId": visitor}),
                );
                self.closed(sec(20), s, &conv, &visitor, "WHATSAPP", op);
            }
            Scenario::SharedDevice => {
                let other = self.person();
                let op = self.pushed(sec(0), s, &conv, &visitor, "CHAT");
                self.signed_in(sec(2), s, &visitor, Some(&conv), &person, laptop.clone());
                self.closed(sec(10), s, &conv, &visitor, "CHAT", op);
                let conv2 = self.uuid();
                let op2 = self.pushed(sec(12), s, &conv2, &visitor, "CHAT");
                self.signed_in(sec(14), s, &visitor, Some(&conv2), &other, laptop);
                self.closed(sec(30), s, &conv2, &visitor, "CHAT", op2);
            }
            Scenario::ReusedUserId | Scenario::LookAlike => {
                // The genuine customer signs in; then, on another device, another person's
                // signed identity with the same userId (ReusedUserId), or with a userId a
                // customer chose to look like theirs: a Cyrillic с (U+0441) for the c (LookAlike).
                let mut other = self.person();
                other.0 = match s {
                    Scenario::ReusedUserId => person.0.clone(),
                    _ => lookalike_of(&person.0),
                };
                let op = self.pushed(sec(0), s, &conv, &visitor, "CHAT");
                self.signed_in(sec(2), s, &visitor, Some(&conv), &person, laptop);
                let (conv2, visitor2) = (self.uuid(), self.uuid());
                let op2 = self.pushed(sec(5), s, &conv2, &visitor2, "CHAT");
                self.signed_in(
                    sec(7),
                    s,
                    &visitor2,
                    Some(&conv2),
                    &other,
                    web(DOMAINS[1], "phone"),
                );
                self.closed(sec(25), s, &conv, &visitor, "CHAT", op);
                self.closed(sec(26), s, &conv2, &visitor2, "CHAT", op2);
            }
        }
    }
}

/// `cust-…` with its Latin `c` replaced by the Cyrillic `с` (U+0441) that looks the same.
pub fn lookalike_of(user_id: &str) -> String {
    user_id.replacen('c', "\u{441}", 1)
}

fn ascii(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'é' => 'e',
            'í' => 'i',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The timeline of one pass over `scenarios` (one instance each, started `stagger_ms` apart),
/// sorted by time. Conversations go to one of `operators` (iAdvize operator ids), chosen by the
/// seeded generator.
pub fn plan(seed: u64, scenarios: &[Scenario], operators: &[i64], stagger_ms: u64) -> Vec<Step> {
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(seed),
        steps: Vec::new(),
        operators: if operators.is_empty() {
            vec![1]
        } else {
            operators.to_vec()
        },
    };
    for (i, s) in scenarios.iter().enumerate() {
        g.scenario(*s, i as u64 * stagger_ms);
    }
    // Stable: steps at the same instant keep the order the scenario wrote them in.
    g.steps.sort_by_key(|s| s.at_ms);
    g.steps
}

#[cfg(test)]
mod tests;
