//! `#[derive(Model)]`: a struct declares a Terraform schema block once.
//!
//! Each field is one attribute (or, with `#[tf(block)]`, one single nested
//! block). Its Rust type says the attribute's type and grammar (through
//! `tfplugin::framework::attr::AttrValue`, whose parse is the validation);
//! its doc comment is the description; `#[tf(...)]` says the rest. From that
//! one declaration the macro derives the schema block (with a validator on
//! every attribute), `from_value` and `to_value`, the way
//! terraform-plugin-framework derives the mapping from `tfsdk` struct tags.
//!
//! Field options:
//! * none: required (or optional when the type is `Option<T>`);
//! * `required` on an `Option<T>`: the configuration must set it, but a
//!   state may hold null (an import that could not read the value);
//! * `default = <expr>`: optional, planned as `<expr>` when not configured;
//! * `default_doc = "text"`: how the docs describe that default;
//! * `computed`: set by the provider, never configured (type `Option<T>`);
//! * `stable`: a computed value kept from the prior state while unchanged;
//! * `requires_replace`, `sensitive`;
//! * `block`: a required single nested block of a type that is a `Model`.
//!
//! Struct option: `required_together(a, b, ...)`: attributes set together
//! or not at all.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{Data, DeriveInput, Expr, Fields, GenericArgument, Ident, LitStr, PathArguments, Type};

/// Derives `tfplugin::framework::Model` for a struct with named fields.
#[proc_macro_derive(Model, attributes(tf))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// What `#[tf(...)]` says about one field.
#[derive(Default)]
struct FieldOptions {
    default: Option<Expr>,
    default_doc: Option<LitStr>,
    computed: bool,
    required: bool,
    stable: bool,
    requires_replace: bool,
    sensitive: bool,
    block: bool,
}

fn doc_of(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    lines.join(" ").trim().to_string()
}

fn field_options(attrs: &[syn::Attribute]) -> syn::Result<FieldOptions> {
    let mut o = FieldOptions::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("tf")) {
        attr.parse_nested_meta(|meta| {
            let flag = |f: &mut bool| {
                *f = true;
                Ok(())
            };
            if meta.path.is_ident("default") {
                o.default = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("default_doc") {
                o.default_doc = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("computed") {
                flag(&mut o.computed)
            } else if meta.path.is_ident("required") {
                flag(&mut o.required)
            } else if meta.path.is_ident("stable") {
                flag(&mut o.stable)
            } else if meta.path.is_ident("requires_replace") {
                flag(&mut o.requires_replace)
            } else if meta.path.is_ident("sensitive") {
                flag(&mut o.sensitive)
            } else if meta.path.is_ident("block") {
                flag(&mut o.block)
            } else {
                Err(meta.error("unknown tf option; expected default, default_doc, computed, required, stable, requires_replace, sensitive or block"))
            }
        })?;
    }
    Ok(o)
}

fn required_together(attrs: &[syn::Attribute]) -> syn::Result<Vec<Vec<String>>> {
    let mut groups = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("tf")) {
        attr.parse_nested_meta(|meta| {
            if !meta.path.is_ident("required_together") {
                return Err(meta.error(
                    "unknown tf option on a struct; expected required_together(a, b, ...)",
                ));
            }
            let mut group = Vec::new();
            meta.parse_nested_meta(|inner| {
                let ident = inner
                    .path
                    .get_ident()
                    .ok_or_else(|| inner.error("expected a field name"))?;
                group.push(ident.to_string());
                Ok(())
            })?;
            groups.push(group);
            Ok(())
        })?;
    }
    Ok(groups)
}

/// `T` when `ty` is `Option<T>`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            input,
            "Model is derived for structs only",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(input, "Model needs named fields"));
    };
    let struct_doc = doc_of(&input.attrs);
    let groups = required_together(&input.attrs)?;
    let field_names: Vec<String> = fields
        .named
        .iter()
        .filter_map(|f| f.ident.as_ref().map(Ident::to_string))
        .collect();
    for g in &groups {
        for n in g {
            if !field_names.contains(n) {
                return Err(syn::Error::new_spanned(
                    input,
                    format!("required_together names {n}, which is not a field"),
                ));
            }
        }
    }

    let fw = quote!(::tfplugin::framework);
    let mut schema_parts = Vec::new();
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for f in &fields.named {
        let ident = f
            .ident
            .as_ref()
            .ok_or_else(|| syn::Error::new_spanned(f, "Model needs named fields"))?;
        let attr_name = ident.to_string();
        let doc = doc_of(&f.attrs);
        if doc.is_empty() {
            return Err(syn::Error::new_spanned(
                f,
                "every attribute needs a doc comment: it is the attribute's description",
            ));
        }
        let o = field_options(&f.attrs)?;
        let ty = &f.ty;
        if o.block {
            schema_parts.push(quote! {
                .block(::tfplugin::schema::NestedBlock::new(
                    #attr_name,
                    ::tfplugin::schema::Nesting::Single,
                    <#ty as #fw::Model>::block().with_description(#doc),
                ).required())
            });
            reads.push(quote! {
                #ident: <#ty as #fw::Model>::from_value_at(o.raw(#attr_name), &o.path_of(#attr_name))?
            });
            writes.push(quote! { .set(#attr_name, #fw::Model::to_value(&self.#ident)) });
            continue;
        }
        let inner = option_inner(ty);
        if o.computed && inner.is_none() {
            return Err(syn::Error::new_spanned(
                ty,
                "a computed attribute has type Option<T>",
            ));
        }
        if o.default.is_some() && inner.is_some() {
            return Err(syn::Error::new_spanned(
                ty,
                "an attribute with a default is never null: use T, not Option<T>",
            ));
        }
        if o.required && (inner.is_none() || o.computed || o.default.is_some()) {
            return Err(syn::Error::new_spanned(
                ty,
                "`required` is for an Option<T> field without default that is not computed (a plain T is required already)",
            ));
        }
        let value_ty = inner.unwrap_or(ty);
        let presence = if o.required {
            quote!(Required)
        } else if o.computed {
            quote!(Computed)
        } else if o.default.is_some() || inner.is_some() {
            quote!(Optional)
        } else {
            quote!(Required)
        };
        let mut attribute = quote! {
            #fw::attr::attribute::<#value_ty>(#attr_name, #fw::attr::Presence::#presence).description(#doc)
        };
        if let Some(default) = &o.default {
            attribute = quote! {
                #attribute.default_value({
                    let default: #value_ty = #default;
                    #fw::attr::AttrValue::to_tf(&default)
                })
            };
        }
        if let Some(text) = &o.default_doc {
            attribute = quote!(#attribute.default_doc(#text));
        }
        for (set, method) in [
            (o.stable, quote!(stable)),
            (o.requires_replace, quote!(requires_replace)),
            (o.sensitive, quote!(sensitive)),
        ] {
            if set {
                attribute = quote!(#attribute.#method());
            }
        }
        schema_parts.push(quote!(.attribute(#attribute)));
        if inner.is_some() {
            reads.push(quote! {
                #ident: #fw::attr::optional::<#value_ty>(o.raw(#attr_name), &o.path_of(#attr_name))?
            });
            writes.push(quote! {
                .set(#attr_name, self.#ident.as_ref().map_or(::tfplugin::value::Value::Null, #fw::attr::AttrValue::to_tf))
            });
        } else {
            reads.push(quote! {
                #ident: #fw::attr::required::<#value_ty>(o.raw(#attr_name), &o.path_of(#attr_name))?
            });
            writes.push(quote! { .set(#attr_name, #fw::attr::AttrValue::to_tf(&self.#ident)) });
        }
    }
    let together = groups
        .iter()
        .map(|g| quote!(.required_together(&[#(#g),*])));

    Ok(quote! {
        impl #fw::Model for #name {
            fn block() -> ::tfplugin::schema::Block {
                ::tfplugin::schema::Block::new(#struct_doc)
                    #(#schema_parts)*
                    #(#together)*
            }

            fn from_value_at(
                v: &::tfplugin::value::Value,
                path: &::tfplugin::diag::AttributePath,
            ) -> ::std::result::Result<Self, #fw::ModelError> {
                let o = #fw::Obj::at(v, path)?;
                Ok(#name { #(#reads),* })
            }

            fn to_value(&self) -> ::tfplugin::value::Value {
                #fw::ObjBuilder::new() #(#writes)* .build()
            }
        }
    })
}
