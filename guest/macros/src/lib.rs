//! The `#[task]`, `#[init]` and `#[handler]` attributes of `wasmproc-guest`; see that
//! crate's docs.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr, ReturnType, Type};

/// Exports a function as a wasmproc task. See `wasmproc_guest::task`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = syn::parse_macro_input!(item as ItemFn);
    match expand(Kind::Task, attr.into(), function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Exports a function as a wasmproc initializer. See `wasmproc_guest::init`.
#[proc_macro_attribute]
pub fn init(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = syn::parse_macro_input!(item as ItemFn);
    match expand(Kind::Init, attr.into(), function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Exports a function as a connection handler. See
/// `wasmproc_guest::handler`.
#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    let function = syn::parse_macro_input!(item as ItemFn);
    match expand_handler(attr.into(), function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// A handler is a task without argument whose body gets the connection.
fn expand_handler(
    attr: proc_macro2::TokenStream,
    function: ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let name = export_name_of(Kind::Task, attr, &function)?;
    let sig = &function.sig;
    if sig.asyncness.is_some() || !sig.generics.params.is_empty() || sig.receiver().is_some() {
        return Err(syn::Error::new(
            sig.span(),
            "#[handler] functions are plain, non-generic, non-async free functions",
        ));
    }
    if sig.inputs.len() != 1 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "a #[handler] takes one parameter, the connection: `connection: &mut wasmproc_guest::Connection`",
        ));
    }
    let fn_ident = &sig.ident;
    let export_name = format!("{}{}", wasmproc_abi::TASK_EXPORT_PREFIX, name);
    let wrapper = format_ident!("__wasmproc_handler_{}", fn_ident);
    let call = quote!(#fn_ident(&mut ::wasmproc_guest::Connection::__new()));
    let body = into_failure(&sig.output, call);
    let runner = quote!(::wasmproc_guest::__private::run_task(|(): ()| #body));
    let record = signature_pieces("handler", &name, &[], &sig.output);
    Ok(with_export(
        &function,
        &export_name,
        &wrapper,
        runner,
        &record,
    ))
}

/// One line of the module's `wasmproc_signatures` custom section: the
/// task's parameters and result as written in Rust, with their JSON shapes
/// (`wasmproc_guest::Describe`, computed at compile time), for `inspect`
/// and for messages about an argument of the wrong shape. An expression of
/// type `&[Piece]`: JSON text, and the shapes between.
fn signature_pieces(
    kind: &str,
    name: &str,
    params: &[(String, &Type)],
    output: &ReturnType,
) -> proc_macro2::TokenStream {
    let mut pieces = Vec::new();
    let mut text = format!(
        "{{\"kind\":\"{kind}\",\"name\":{},\"params\":[",
        json_string(name)
    );
    let mut shape = |text: &mut String, ty: proc_macro2::TokenStream| {
        let written = std::mem::take(text);
        pieces.push(quote!(::wasmproc_guest::__private::Piece::Text(#written)));
        pieces.push(quote!(::wasmproc_guest::__private::Piece::Shape(
            ::wasmproc_guest::__private::Probe::<#ty>::SHAPE
        )));
    };
    for (i, (param, ty)) in params.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!(
            "{{\"name\":{},\"type\":{},\"shape\":",
            json_string(param),
            json_string(&rust_text(&quote!(#ty)))
        ));
        shape(&mut text, quote!(#ty));
        text.push('}');
    }
    let result = match output {
        ReturnType::Default => "()".to_owned(),
        ReturnType::Type(_, ty) => rust_text(&quote!(#ty)),
    };
    text.push_str(&format!(
        "],\"result\":{},\"result_shape\":",
        json_string(&result)
    ));
    match output {
        ReturnType::Default => shape(&mut text, quote!(())),
        ReturnType::Type(_, ty) => shape(&mut text, quote!(#ty)),
    }
    text.push_str("}\n");
    pieces.push(quote!(::wasmproc_guest::__private::Piece::Text(#text)));
    quote!(&[#(#pieces),*])
}

/// Tokens as a person writes them: `Vec<String>`, not `Vec < String >`.
fn rust_text(tokens: &proc_macro2::TokenStream) -> String {
    let mut text = tokens.to_string();
    for (spaced, tight) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" ,", ","),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        text = text.replace(spaced, tight);
    }
    text
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The user's call as a `Result<_, Failure>`: an error return converted,
/// any other return wrapped in `Ok`.
fn into_failure(output: &ReturnType, call: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    if returns_result(output) {
        quote!(#call.map_err(::core::convert::Into::<::wasmproc_guest::Failure>::into))
    } else {
        quote!(::core::result::Result::<_, ::wasmproc_guest::Failure>::Ok(#call))
    }
}

/// The function, unchanged, and on wasm its export `export_name`, a
/// `wrapper` function whose body is `runner` (the SDK's runner call).
fn with_export(
    function: &ItemFn,
    export_name: &str,
    wrapper: &proc_macro2::Ident,
    runner: proc_macro2::TokenStream,
    record: &proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let fn_ident = &function.sig.ident;
    quote! {
        #function

        // Off wasm there is no export; this use keeps the function from
        // being reported as dead code in native builds and tests.
        #[cfg(not(target_family = "wasm"))]
        const _: () = {
            let _ = #fn_ident;
        };

        // A core module (wasm32-wasip1) exports the wrapper by name; a
        // component (wasm32-wasip2) exports WIT functions only, so there
        // the wrapper is registered with the SDK's dispatcher by a static
        // constructor, which wasm-ld runs before the first export.
        #[cfg(target_family = "wasm")]
        #[doc(hidden)]
        #[cfg_attr(not(target_env = "p2"), unsafe(export_name = #export_name))]
        extern "C" fn #wrapper() -> i32 {
            #runner
        }

        #[cfg(all(target_family = "wasm", target_env = "p2"))]
        const _: () = {
            extern "C" fn register() {
                ::wasmproc_guest::__private::register(#export_name, #wrapper);
            }
            // SAFETY: `.init_array` holds constructors, each an
            // `extern "C" fn()`, which `__wasm_call_ctors` calls once
            // before the first export runs; `register` takes and returns
            // nothing and only adds an entry to the SDK's registry.
            #[used]
            #[unsafe(link_section = ".init_array")]
            static REGISTER: extern "C" fn() = register;
        };

        // The linker concatenates every task's record into the module's
        // `wasmproc_signatures` custom section; the record is rendered at
        // compile time, shapes included.
        #[cfg(target_family = "wasm")]
        const _: () = {
            #[allow(unused_imports)]
            use ::wasmproc_guest::__private::Undescribed as _;
            const PIECES: &[::wasmproc_guest::__private::Piece] = #record;
            #[used]
            #[unsafe(link_section = "wasmproc_signatures")]
            static RECORD: [u8; ::wasmproc_guest::__private::record_len(PIECES)] =
                ::wasmproc_guest::__private::record_bytes(PIECES);
        };
    }
}

/// What the attribute exports: both take the same functions and differ in
/// the export's prefix and the runner the export calls.
#[derive(Clone, Copy)]
enum Kind {
    Task,
    Init,
}

impl Kind {
    /// The attribute's name, in messages.
    fn attribute(self) -> &'static str {
        match self {
            Kind::Task => "#[task]",
            Kind::Init => "#[init]",
        }
    }
}

fn expand(
    kind: Kind,
    attr: proc_macro2::TokenStream,
    function: ItemFn,
) -> syn::Result<proc_macro2::TokenStream> {
    let name = export_name_of(kind, attr, &function)?;
    check_signature(kind, &function)?;

    let fn_ident = &function.sig.ident;
    let (export_name, wrapper, runner) = match kind {
        Kind::Task => (
            format!("{}{}", wasmproc_abi::TASK_EXPORT_PREFIX, name),
            format_ident!("__wasmproc_task_{}", fn_ident),
            quote!(run_task),
        ),
        Kind::Init => (
            format!("{}{}", wasmproc_abi::INIT_EXPORT_PREFIX, name),
            format_ident!("__wasmproc_init_{}", fn_ident),
            quote!(run_init),
        ),
    };

    let params: Vec<&Type> = function
        .sig
        .inputs
        .iter()
        .map(|input| match input {
            FnArg::Typed(typed) => &*typed.ty,
            FnArg::Receiver(_) => unreachable!("check_signature rejects self"),
        })
        .collect();
    let bindings: Vec<_> = (0..params.len())
        .map(|i| format_ident!("__arg{}", i))
        .collect();
    // One parameter takes the JSON value itself; none take `null`; several
    // take a JSON array, decoded as a tuple.
    let (arg_pattern, arg_type) = match params.len() {
        0 => (quote!(()), quote!(())),
        1 => {
            let (b, t) = (&bindings[0], params[0]);
            (quote!(#b), quote!(#t))
        }
        _ => (quote!((#(#bindings,)*)), quote!((#(#params,)*))),
    };
    let call = quote!(#fn_ident(#(#bindings),*));
    let body = into_failure(&function.sig.output, call);
    let runner = quote!(::wasmproc_guest::__private::#runner(|#arg_pattern: #arg_type| #body));
    let named: Vec<(String, &Type)> = function
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => {
                let pat = &typed.pat;
                Some((rust_text(&quote!(#pat)), &*typed.ty))
            }
            FnArg::Receiver(_) => None,
        })
        .collect();
    let kind_name = match kind {
        Kind::Task => "task",
        Kind::Init => "init",
    };
    let record = signature_pieces(kind_name, &name, &named, &function.sig.output);
    Ok(with_export(
        &function,
        &export_name,
        &wrapper,
        runner,
        &record,
    ))
}

/// The task's (or initializer's) name: the function's, or `name = "..."`
/// from the attribute.
fn export_name_of(
    kind: Kind,
    attr: proc_macro2::TokenStream,
    function: &ItemFn,
) -> syn::Result<String> {
    let mut name = None;
    if !attr.is_empty() {
        let parser = syn::meta::parser(|meta| {
            if meta.path.is_ident("name") {
                let value: LitStr = meta.value()?.parse()?;
                if !wasmproc_abi::is_valid_task_name(&value.value()) {
                    return Err(syn::Error::new_spanned(
                        &value,
                        "a name is an identifier: letters, digits and `_`, not starting with a digit",
                    ));
                }
                name = Some(value.value());
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown option of {}; the only option is `name = \"...\"`",
                    kind.attribute()
                )))
            }
        });
        syn::parse::Parser::parse2(parser, attr)?;
    }
    let name = name.unwrap_or_else(|| function.sig.ident.to_string());
    // Raw identifiers (`r#type`) name the task without the prefix.
    Ok(name.trim_start_matches("r#").to_owned())
}

fn check_signature(kind: Kind, function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    let attribute = kind.attribute();
    let reject = |span: Span, what: &str| {
        Err(syn::Error::new(
            span,
            // The messages name `#[task]`; the same rules hold for `#[init]`.
            what.replace("#[task]", attribute),
        ))
    };
    if let Some(token) = &sig.asyncness {
        return reject(
            token.span(),
            "#[task] functions cannot be `async`: the call runs to completion in its instance",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return reject(
            sig.generics.span(),
            "#[task] functions cannot be generic: the host needs one concrete parameter type",
        );
    }
    if let Some(variadic) = &sig.variadic {
        return reject(variadic.span(), "#[task] functions cannot be variadic");
    }
    if let Some(abi) = &sig.abi {
        return reject(
            abi.span(),
            "#[task] functions are plain Rust functions; remove the `extern`",
        );
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                return reject(
                    receiver.span(),
                    "#[task] functions cannot take `self`: write a free function",
                );
            }
            FnArg::Typed(typed) => {
                if let Type::ImplTrait(_) | Type::Reference(_) = &*typed.ty {
                    return reject(
                        typed.ty.span(),
                        "#[task] parameters must be owned serde types (e.g. `String`, not `&str`)",
                    );
                }
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && let Type::ImplTrait(_) | Type::Reference(_) = &**ty
    {
        return reject(ty.span(), "#[task] must return an owned serde type");
    }
    Ok(())
}

/// Whether the return type is spelled `Result<..>` (any path ending in it).
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

/// Derives `wasmproc_guest::Describe`: the type's JSON shape, as serde's
/// derives read and write it. See that trait.
#[proc_macro_derive(Describe, attributes(serde))]
pub fn describe(item: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(item as syn::DeriveInput);
    match describe::expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

mod describe;
