//! An exported function called as `wasmtime run --invoke` calls it
//! ([`Entry::Export`](crate::Entry::Export)): which functions may be
//! invoked, what their results become, and their arguments parsed from the
//! task's argv.

use wasmtime::{FuncType, Val, ValType};

use super::Module;
use super::describe::describe_extern;
use crate::error::{Error, ErrorKind};

/// What an invoked function's results become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Returns {
    /// `() -> ()`: the task exits 0.
    Nothing,
    /// `() -> i32`: the result is the exit code.
    ExitCode,
    /// Anything else: the results are printed, one per line, and kept as
    /// the outcome's result (a JSON array); the task exits 0.
    Values,
}

impl Returns {
    /// What `ty`'s results become, or why it cannot be invoked: only
    /// numbers (`i32`, `i64`, `f32`, `f64`) cross, as argv words and
    /// printed lines.
    pub(super) fn of(ty: &FuncType) -> Result<Returns, String> {
        let numeric =
            |t: ValType| matches!(t, ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64);
        if !ty.params().chain(ty.results()).all(numeric) {
            return Err(
                "only functions whose parameters and results are numbers (i32, i64, f32, \
                 f64) can be invoked"
                    .to_owned(),
            );
        }
        let results: Vec<ValType> = ty.results().collect();
        Ok(match (ty.params().len(), &results[..]) {
            (0, []) => Returns::Nothing,
            (0, [ValType::I32]) => Returns::ExitCode,
            _ => Returns::Values,
        })
    }
}

/// Whether an export is one of the guest contract's own: the command entry,
/// the reactor's initializer, an SDK task or initializer.
pub(super) fn is_contract_export(name: &str) -> bool {
    matches!(name, "_start" | "_initialize")
        || wasmproc_abi::task_name(name).is_some()
        || wasmproc_abi::init_name(name).is_some()
}

impl Module {
    /// The arguments of the exported function `export` (already resolved
    /// to one that can be invoked), parsed from `argv`: one word per
    /// parameter, decimal or `0x` hexadecimal integers (an `i32` or `i64`
    /// also takes its unsigned range) and decimal floats (`inf`, `nan`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::BadInvocation`] naming the signature, when a word is
    /// missing, extra or not a number of its parameter's type.
    pub(crate) fn invocation_args(&self, export: &str, argv: &[String]) -> Result<Vec<Val>, Error> {
        let ty = self
            .exported_func(export)
            .expect("resolved to an exported function");
        let signature = describe_extern(&wasmtime::ExternType::Func(ty.clone()));
        let bad = |why: String| {
            Error::new(
                ErrorKind::BadInvocation,
                format!(
                    "`{export}` is {signature}: {why}; give one word per argument (`run`: \
                     after MODULE, as in `wasmproc run --invoke {export} {} ...`; `map`: each \
                     input line an array of them, as in [\"1\", \"2\"])",
                    self.name()
                ),
            )
        };
        let params: Vec<ValType> = ty.params().collect();
        if argv.len() != params.len() {
            return Err(bad(format!(
                "it takes {} argument{}, and {} {} given",
                params.len(),
                if params.len() == 1 { "" } else { "s" },
                argv.len(),
                if argv.len() == 1 { "was" } else { "were" }
            )));
        }
        params
            .iter()
            .zip(argv)
            .enumerate()
            .map(|(at, (ty, word))| {
                parse_arg(ty, word).ok_or_else(|| {
                    bad(format!(
                        "argument {} `{}` is not an {ty}",
                        at + 1,
                        word.escape_debug()
                    ))
                })
            })
            .collect()
    }

    /// The type of the exported function `name`, if there is one.
    pub(super) fn exported_func(&self, name: &str) -> Option<FuncType> {
        self.inner
            .plain
            .core()?
            .get_export(name)
            .and_then(|ty| ty.func().cloned())
    }
}

/// `word` as a value of type `ty`, or `None` where it is not one.
fn parse_arg(ty: &ValType, word: &str) -> Option<Val> {
    let integer = |word: &str| -> Option<i128> {
        let (negative, digits) = match word.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, word.strip_prefix('+').unwrap_or(word)),
        };
        let magnitude = match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(hex) => i128::from_str_radix(hex, 16).ok()?,
            None => digits.parse::<i128>().ok()?,
        };
        // `from_str_radix` and `parse` take a sign of their own: one only.
        if digits.starts_with(['-', '+']) {
            return None;
        }
        Some(if negative { -magnitude } else { magnitude })
    };
    match ty {
        ValType::I32 => {
            let n = integer(word)?;
            let bits = i32::try_from(n)
                .ok()
                .or_else(|| u32::try_from(n).ok().map(|u| u as i32))?;
            Some(Val::I32(bits))
        }
        ValType::I64 => {
            let n = integer(word)?;
            let bits = i64::try_from(n)
                .ok()
                .or_else(|| u64::try_from(n).ok().map(|u| u as i64))?;
            Some(Val::I64(bits))
        }
        ValType::F32 => word.parse::<f32>().ok().map(|f| Val::F32(f.to_bits())),
        ValType::F64 => word.parse::<f64>().ok().map(|f| Val::F64(f.to_bits())),
        _ => None,
    }
}

/// A result as `wasmtime run --invoke` prints it, and as JSON (a float
/// that is not finite has no JSON form: `null`).
pub(crate) fn show(value: &Val) -> (String, serde_json::Value) {
    match value {
        Val::I32(n) => (n.to_string(), (*n).into()),
        Val::I64(n) => (n.to_string(), (*n).into()),
        Val::F32(bits) => {
            let f = f32::from_bits(*bits);
            (
                f.to_string(),
                serde_json::Number::from_f64(f64::from(f))
                    .map_or(serde_json::Value::Null, Into::into),
            )
        }
        Val::F64(bits) => {
            let f = f64::from_bits(*bits);
            (
                f.to_string(),
                serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into),
            )
        }
        // `Returns::of` lets only numbers through.
        other => (format!("{other:?}"), serde_json::Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_words_parse_per_type() {
        let i32_of = |w| parse_arg(&ValType::I32, w).map(|v| v.unwrap_i32());
        assert_eq!(i32_of("42"), Some(42));
        assert_eq!(i32_of("-7"), Some(-7));
        assert_eq!(i32_of("0xff"), Some(255));
        assert_eq!(i32_of("4294967295"), Some(-1));
        assert_eq!(i32_of("4294967296"), None);
        assert_eq!(i32_of("--1"), None);
        assert_eq!(i32_of("x"), None);
        assert_eq!(i32_of("1.5"), None);
        let i64_of = |w| parse_arg(&ValType::I64, w).map(|v| v.unwrap_i64());
        assert_eq!(i64_of("-9000000000"), Some(-9_000_000_000));
        let f64_of = |w| parse_arg(&ValType::F64, w).map(|v| v.unwrap_f64());
        assert_eq!(f64_of("2.5"), Some(2.5));
        assert_eq!(f64_of("abc"), None);
    }

    #[test]
    fn results_print_as_wasmtime_prints_them() {
        assert_eq!(show(&Val::I32(-3)).0, "-3");
        assert_eq!(
            show(&Val::F64(2.5f64.to_bits())),
            ("2.5".into(), 2.5.into())
        );
        assert_eq!(
            show(&Val::F64(f64::NAN.to_bits())).1,
            serde_json::Value::Null
        );
    }
}
