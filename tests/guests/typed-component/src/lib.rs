//! A library component built with wit-bindgen: its exports are wasmproc
//! tasks through their WIT types (`wit/world.wit`).

wit_bindgen::generate!({ path: "wit", world: "typed" });

struct Tasks;

impl Guest for Tasks {
    fn square(x: i32) -> i32 {
        x.wrapping_mul(x)
    }

    fn add(a: u8, b: u8) -> u8 {
        a.wrapping_add(b)
    }

    fn polar(p: Point) -> Polar {
        Polar {
            radius: p.x.hypot(p.y),
            angle: p.y.atan2(p.x),
        }
    }

    fn area(s: Shape, unit: Unit) -> f64 {
        let metres = match s {
            Shape::Circle(r) => std::f64::consts::PI * r * r,
            Shape::Rectangle((w, h)) => w * h,
            Shape::Dot => 0.0,
        };
        match unit {
            Unit::Metres => metres,
            Unit::Feet => metres * 10.763_910_416_709_722,
        }
    }

    fn largest(values: Vec<i64>) -> Option<i64> {
        values.into_iter().max()
    }

    fn parse_number(text: String) -> Result<u32, String> {
        text.trim()
            .parse()
            .map_err(|error| format!("`{text}` is not a number: {error}"))
    }

    fn render(l: Label) -> String {
        let mut text = l.text;
        if l.style.contains(Style::BOLD) {
            text = format!("**{text}**");
        }
        if l.style.contains(Style::ITALIC) {
            text = format!("_{text}_");
        }
        match l.note {
            Some(note) => format!("{text} ({note})"),
            None => text,
        }
    }

    fn nothing() {}

    fn crash() {
        unreachable!("the crash task traps on purpose")
    }

    fn spin() -> u64 {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn allocate_mib(mib: u32) -> u64 {
        let bytes = mib as usize * 1024 * 1024;
        let block = vec![1u8; bytes];
        std::hint::black_box(&block)
            .iter()
            .map(|&b| u64::from(b))
            .sum()
    }

    fn remember(text: String) -> Result<(), String> {
        if text.is_empty() {
            return Err("nothing to remember".into());
        }
        *MEMO.lock().unwrap() = text;
        Ok(())
    }

    fn recall() -> String {
        MEMO.lock().unwrap().clone()
    }

    fn upper(c: char) -> String {
        c.to_uppercase().collect()
    }
}

/// What `remember` kept.
static MEMO: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

export!(Tasks);
