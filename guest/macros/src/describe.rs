//! `#[derive(Describe)]`: a struct's or enum's shape, following the serde
//! attributes that change its JSON form (`rename`, `rename_all`,
//! `default`, `skip`; `tag` and `untagged` make it `any`).

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Data, DeriveInput, Fields, Token};

/// What the serde attributes on an item say about its JSON form.
#[derive(Default)]
struct Serde {
    rename: Option<String>,
    rename_all: Option<String>,
    default: bool,
    skip: bool,
    /// `tag`, `untagged` or `content`: a form the shapes do not describe.
    other_form: bool,
}

fn serde_of(attrs: &[Attribute]) -> Serde {
    let mut serde = Serde::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("serde")) {
        // serde reports its own attributes' mistakes: ignore what does not parse.
        let _ = attr.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(ToString::to_string);
            let value = if meta.input.peek(Token![=]) {
                Some(meta.value()?.parse::<syn::Expr>()?)
            } else {
                if meta.input.peek(syn::token::Paren) {
                    meta.parse_nested_meta(|inner| {
                        if inner.input.peek(Token![=]) {
                            inner.value()?.parse::<syn::Expr>()?;
                        }
                        Ok(())
                    })?;
                }
                None
            };
            let text = match &value {
                Some(syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(text),
                    ..
                })) => Some(text.value()),
                _ => None,
            };
            match key.as_deref() {
                Some("rename") => serde.rename = text,
                Some("rename_all") => serde.rename_all = text,
                Some("default") => serde.default = true,
                Some("skip" | "skip_deserializing") => serde.skip = true,
                Some("tag" | "untagged" | "content") => serde.other_form = true,
                _ => {}
            }
            Ok(())
        });
    }
    serde
}

/// `name` (a Rust identifier) under serde's `rename_all = rule`.
fn renamed(name: &str, rule: Option<&str>) -> String {
    let Some(rule) = rule else {
        return name.to_owned();
    };
    let mut words: Vec<String> = Vec::new();
    for part in name.split('_').filter(|part| !part.is_empty()) {
        let mut word = String::new();
        for c in part.chars() {
            if c.is_uppercase() && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            word.extend(c.to_lowercase());
        }
        words.push(word);
    }
    let capitalized = |word: &String| {
        let mut chars = word.chars();
        chars
            .next()
            .map(|first| first.to_uppercase().chain(chars).collect::<String>())
            .unwrap_or_default()
    };
    match rule {
        "lowercase" => words.concat(),
        "UPPERCASE" => words.concat().to_uppercase(),
        "PascalCase" => words.iter().map(capitalized).collect(),
        "camelCase" => words
            .iter()
            .enumerate()
            .map(|(i, word)| {
                if i == 0 {
                    word.clone()
                } else {
                    capitalized(word)
                }
            })
            .collect(),
        "snake_case" => words.join("_"),
        "SCREAMING_SNAKE_CASE" => words.join("_").to_uppercase(),
        "kebab-case" => words.join("-"),
        "SCREAMING-KEBAB-CASE" => words.join("-").to_uppercase(),
        _ => name.to_owned(),
    }
}

fn probe(ty: &syn::Type) -> TokenStream {
    quote!(::wasmproc_guest::__private::Probe::<#ty>::SHAPE)
}

/// The shape of a struct's (or a struct variant's) fields, named `name`.
fn fields_shape(name: &str, fields: &Fields, container: &Serde) -> TokenStream {
    match fields {
        Fields::Unit => quote!(&::wasmproc_guest::Shape::Null),
        Fields::Unnamed(unnamed) if unnamed.unnamed.len() == 1 => {
            let shape = probe(&unnamed.unnamed[0].ty);
            quote!(#shape)
        }
        Fields::Unnamed(unnamed) => {
            let shapes = unnamed.unnamed.iter().map(|field| probe(&field.ty));
            quote!(&::wasmproc_guest::Shape::Tuple(&[#(#shapes),*]))
        }
        Fields::Named(named) => {
            let fields = named.named.iter().filter_map(|field| {
                let serde = serde_of(&field.attrs);
                if serde.skip {
                    return None;
                }
                let ident = field.ident.as_ref()?.to_string();
                let ident = ident.trim_start_matches("r#");
                let json_name = serde
                    .rename
                    .unwrap_or_else(|| renamed(ident, container.rename_all.as_deref()));
                let ty = &field.ty;
                let ty_text = crate::rust_text(&quote!(#ty));
                let is_option = matches!(ty, syn::Type::Path(path)
                    if path.path.segments.last().is_some_and(|last| last.ident == "Option"));
                let optional = serde.default || container.default || is_option;
                let shape = probe(ty);
                Some(quote!(::wasmproc_guest::Field {
                    name: #json_name,
                    ty: #ty_text,
                    shape: #shape,
                    optional: #optional,
                }))
            });
            quote!(&::wasmproc_guest::Shape::Record {
                name: #name,
                fields: &[#(#fields),*],
            })
        }
    }
}

pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "#[derive(Describe)] is for types without parameters; implement \
             wasmproc_guest::Describe by hand for a generic type",
        ));
    }
    let container = serde_of(&input.attrs);
    let ident = &input.ident;
    let name = container
        .rename
        .clone()
        .unwrap_or_else(|| ident.to_string());
    let shape = if container.other_form {
        quote!(&::wasmproc_guest::Shape::Any)
    } else {
        match &input.data {
            Data::Struct(data) => fields_shape(&name, &data.fields, &container),
            Data::Enum(data) => {
                let variants = data.variants.iter().filter_map(|variant| {
                    let serde = serde_of(&variant.attrs);
                    if serde.skip {
                        return None;
                    }
                    let json_name = serde.rename.clone().unwrap_or_else(|| {
                        renamed(&variant.ident.to_string(), container.rename_all.as_deref())
                    });
                    let shape = fields_shape(&json_name, &variant.fields, &serde);
                    Some(quote!(::wasmproc_guest::Variant {
                        name: #json_name,
                        shape: #shape,
                    }))
                });
                quote!(&::wasmproc_guest::Shape::Enum {
                    name: #name,
                    variants: &[#(#variants),*],
                })
            }
            Data::Union(union) => {
                return Err(syn::Error::new_spanned(
                    union.union_token,
                    "#[derive(Describe)] is for structs and enums",
                ));
            }
        }
    };
    Ok(quote! {
        const _: () = {
            #[allow(unused_imports)]
            use ::wasmproc_guest::__private::Undescribed as _;
            impl ::wasmproc_guest::Describe for #ident {
                const SHAPE: &'static ::wasmproc_guest::Shape = #shape;
            }
        };
    })
}

#[cfg(test)]
mod tests {
    use super::renamed;

    #[test]
    fn rename_all_rules_follow_serde() {
        assert_eq!(renamed("max_items", Some("camelCase")), "maxItems");
        assert_eq!(renamed("max_items", Some("kebab-case")), "max-items");
        assert_eq!(renamed("BigRed", Some("snake_case")), "big_red");
        assert_eq!(renamed("BigRed", Some("SCREAMING_SNAKE_CASE")), "BIG_RED");
        assert_eq!(renamed("big_red", Some("PascalCase")), "BigRed");
        assert_eq!(renamed("BigRed", Some("lowercase")), "bigred");
        assert_eq!(renamed("x", None), "x");
    }
}
