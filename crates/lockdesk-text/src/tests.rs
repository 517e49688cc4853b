use super::*;

#[test]
fn the_issues_examples_are_each_caught() {
    let real = "cust-48151623";
    assert!(hazards(real).is_empty());
    assert!(!mixes_scripts(real));

    let zwsp = "cust-4815\u{200B}1623";
    assert!(hazards(zwsp).contains(Hazard::Invisible));
    assert_eq!(visible(zwsp), "cust-4815⟨U+200B⟩1623");

    let rlo = "cust-\u{202E}32615184";
    assert!(hazards(rlo).contains(Hazard::Bidi));
    assert_eq!(visible(rlo), "cust-⟨U+202E⟩32615184");

    let cyrillic = "\u{0441}ust-48151623";
    assert!(hazards(cyrillic).is_empty(), "look-alikes are not hazards");
    assert!(mixes_scripts(cyrillic));
    assert!(confusable(cyrillic, real));

    let isolates = "cust-48151623\u{2066}\u{2069}";
    assert!(hazards(isolates).contains(Hazard::Bidi));
    assert_eq!(visible(isolates), "cust-48151623⟨U+2066⟩⟨U+2069⟩");
    // Skeletons drop default-ignorables, so even an unflagged invisible cannot make a new identity.
    assert!(confusable(zwsp, real));
    assert!(confusable(isolates, real));
}

#[test]
fn digit_and_letter_look_alikes_share_a_skeleton() {
    assert!(confusable("cust-4815l623", "cust-48151623"));
    assert!(confusable("paypaI", "paypal"));
    assert!(confusable("rn@example.com", "m@example.com"));
    assert!(!confusable("cust-48151623", "cust-48151624"));
    assert!(
        !confusable("same", "same"),
        "a string is not its own look-alike"
    );
}

#[test]
fn each_class() {
    let cases: &[(&str, Hazard)] = &[
        ("a\u{1B}]0;pwned\u{07}", Hazard::Control),
        ("a\u{7F}", Hazard::Control),
        ("a\u{9B}2J", Hazard::Control),
        ("a\u{85}b", Hazard::Control),
        ("a\u{200F}b", Hazard::Bidi),
        ("a\u{061C}b", Hazard::Bidi),
        ("a\u{2067}b", Hazard::Bidi),
        ("a\u{2060}b", Hazard::Invisible),
        ("a\u{FEFF}b", Hazard::Invisible),
        ("a\u{00AD}b", Hazard::Invisible),
        ("a\u{E0041}b", Hazard::Invisible),
        ("a\u{3164}b", Hazard::Invisible),
        ("a\u{2800}b", Hazard::Invisible),
        ("a\u{FFF9}b", Hazard::Invisible),
        ("a\u{206A}b", Hazard::Invisible),
        ("a\u{2065}b", Hazard::Invisible),
        ("a\u{E0001}b", Hazard::Invisible),
        ("a\u{E0FFF}b", Hazard::Invisible),
        ("a\u{2028}b", Hazard::LineSeparator),
        ("a\u{2029}b", Hazard::LineSeparator),
        ("e\u{301}\u{301}\u{301}\u{301}\u{301}", Hazard::CombiningRun),
    ];
    for (s, h) in cases {
        let found = hazards(s);
        assert!(found.contains(*h), "{s:?}: {found:?}");
        assert!(
            hazards(&visible(s)).is_empty(),
            "{s:?} still hazardous once shown"
        );
    }
}

#[test]
fn ordinary_text_in_many_scripts_is_left_alone() {
    for s in [
        "Zoë Ångström",
        "José Nuñez",
        "Νίκος",
        "Дмитрий",
        "محمد",
        "יוסי",
        "山田太郎",
        "김민준",
        "Nguyễn Văn Anh",
        "हिन्दी",
        "e\u{301}\u{301}\u{301}\u{301}",
        "a b",
        "",
    ] {
        assert!(hazards(s).is_empty(), "{s:?}: {:?}", hazards(s));
        assert!(matches!(visible(s), Cow::Borrowed(_)));
    }
}

#[test]
fn no_code_point_survives_visible_as_a_hazard() {
    for cp in 0..=0x10FFFFu32 {
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        let s = format!("x{c}y");
        let v = visible(&s);
        assert!(hazards(&v).is_empty(), "U+{cp:04X}");
        if hazard_of(c).is_some() {
            assert_eq!(v, format!("x⟨U+{cp:04X}⟩y"));
        }
        // Nothing a terminal interprets ever gets through.
        assert!(!v.chars().any(|c| c.is_control()), "U+{cp:04X}");
    }
}

#[test]
fn combining_runs_keep_the_first_four_marks() {
    let s = "a\u{300}\u{301}\u{302}\u{303}\u{304}\u{305}b\u{300}";
    assert_eq!(
        visible(s),
        "a\u{300}\u{301}\u{302}\u{303}⟨U+0304⟩⟨U+0305⟩b\u{300}"
    );
}

#[test]
fn isolation_wraps_and_neutralises() {
    let s = isolated("abc\u{202E}def");
    assert_eq!(s, "\u{2068}abc⟨U+202E⟩def\u{2069}");
    // The only bidi controls left are ours, balanced.
    assert_eq!(s.chars().filter(|c| is_bidi_control(*c)).count(), 2);
}

#[test]
fn shown_pads_and_escapes() {
    assert_eq!(format!("[{:<8}]", Shown("a\u{1B}")), "[a⟨U+001B⟩]");
    assert_eq!(format!("[{:<4}]", Shown("ab")), "[ab  ]");
    assert_eq!(format!("{:?}", Shown("a\nb")), "\"a⟨U+000A⟩b\"");
    // A quote or backslash in the value cannot end the quoted form early.
    assert_eq!(
        format!("{:?}", Shown("x\"  ALERT \\")),
        "\"x\\\"  ALERT \\\\\""
    );
}

#[test]
fn csv_cells_never_start_a_formula() {
    for s in [
        "=HYPERLINK(\"http://x\")",
        "+1",
        "-1+2",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "  =1",
        "\u{FF1D}1",
    ] {
        let cell = csv_field(s);
        assert!(cell.starts_with('\''), "{s:?}");
        assert_eq!(&cell[1..], s, "the text is kept after the quote");
    }
    for s in ["cust-1", "a=b", "", "'quoted", "1-2"] {
        assert_eq!(csv_field(s), s);
    }
}

/// The shared table `tests/hazards.json` is read by this test and by the UI's vitest
/// (`ui/src/lib/text.test.ts`), so both renderings agree.
#[test]
fn the_shared_table_matches() {
    let text = include_str!("../tests/hazards.json");
    let table: serde_json::Value = serde_json::from_str(text).unwrap();
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for case in cases {
        let input = case["input"].as_str().unwrap();
        let shown = case["visible"].as_str().unwrap();
        let classes: Vec<&str> = case["hazards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(visible(input), shown, "{input:?}");
        let got: Vec<&str> = hazards(input).iter().map(Hazard::code).collect();
        assert_eq!(got, classes, "{input:?}");
    }
}

#[test]
fn a_json_error_is_described_without_the_input() {
    let cases = [
        (
            r#"{"token": "eyJsecret"#,
            "truncated JSON at line 1 column 20",
        ),
        (
            r#"{"token": eyJsecret}"#,
            "invalid JSON at line 1 column 11",
        ),
    ];
    for (input, said) in cases {
        let e = serde_json::from_str::<serde_json::Value>(input).unwrap_err();
        let described = json::describe_error(&e);
        assert_eq!(described, said, "{input}");
        assert!(!described.contains("eyJ"), "{described}");
    }
    let e = serde_json::from_str::<Vec<u8>>(r#"["eyJsecret"]"#).unwrap_err();
    assert!(
        e.to_string().contains("eyJsecret"),
        "serde_json quotes it: {e}"
    );
    assert_eq!(
        json::describe_error(&e),
        "unexpected content at line 1 column 12"
    );
}
