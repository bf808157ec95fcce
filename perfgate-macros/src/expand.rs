//! Checks the annotated fn and generates the `#[test]` wrapper that carries the scenario's spec.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{FnArg, ReturnType, Signature};

use crate::args::{self, Args, Load};

const EXPECTED_SIGNATURE: &str = "async fn name(ctx: Ctx) -> perfgate_runtime::Result";

/// Must equal `perfgate_runtime::format::TEST_PREFIX`: discovery looks for it.
const TEST_PREFIX: &str = "__perfgate_";

pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    let args = args::parse(attr).map_err(&mut push).ok();
    let func = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Fn(func)) => {
            check_signature(&func.sig).map_err(&mut push).ok();
            Some(func)
        }
        Ok(other) => {
            push(syn::Error::new_spanned(
                other,
                format!("#[perf_test] goes on an async fn: `{EXPECTED_SIGNATURE}`"),
            ));
            None
        }
        Err(e) => {
            push(e);
            None
        }
    };
    match (errors, args, func) {
        (None, Some(args), Some(func)) => {
            let wrapper = wrapper(&args, &func.sig.ident);
            quote!(#item #wrapper)
        }
        // The item is still emitted so that its uses (and its imports) do not add errors of their own.
        (errors, _, _) => {
            let errors = errors.map(|e| e.to_compile_error());
            quote!(#errors #item)
        }
    }
}

fn signature_error(span: Span, problem: &str) -> syn::Error {
    syn::Error::new(span, format!("{problem}: expected `{EXPECTED_SIGNATURE}`"))
}

/// Like [`signature_error`], spanning all of `tokens` (e.g. every parameter).
fn signature_error_over(tokens: impl quote::ToTokens, problem: &str) -> syn::Error {
    syn::Error::new_spanned(
        tokens,
        format!("{problem}: expected `{EXPECTED_SIGNATURE}`"),
    )
}

fn check_signature(sig: &Signature) -> syn::Result<()> {
    let mut errors: Vec<syn::Error> = Vec::new();
    if sig.asyncness.is_none() {
        errors.push(signature_error(
            sig.fn_token.span,
            "#[perf_test] needs an async fn",
        ));
    }
    if let Some(unsafety) = sig.unsafety {
        errors.push(signature_error(
            unsafety.span,
            "a scenario cannot be an unsafe fn",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(signature_error_over(
            abi,
            "a scenario cannot have an `extern` ABI",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(signature_error_over(
            &sig.generics,
            "a scenario cannot be generic",
        ));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(signature_error_over(
            where_clause,
            "a scenario cannot have a where clause",
        ));
    }
    let receiver = sig
        .inputs
        .iter()
        .find(|arg| matches!(arg, FnArg::Receiver(_)));
    if let Some(receiver) = receiver {
        errors.push(signature_error_over(
            receiver,
            "a scenario is a free fn and cannot take `self`",
        ));
    } else if sig.inputs.is_empty() {
        errors.push(signature_error(
            sig.paren_token.span.join(),
            "a scenario takes one argument, the context",
        ));
    } else if sig.inputs.len() > 1 {
        errors.push(signature_error_over(
            &sig.inputs,
            &format!(
                "a scenario takes only one argument, the context, not {}",
                sig.inputs.len()
            ),
        ));
    }
    if let ReturnType::Default = sig.output {
        errors.push(signature_error(
            sig.paren_token.span.close(),
            "a scenario returns `perfgate_runtime::Result`",
        ));
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            first.extend(errors);
            Err(first)
        }
    }
}

fn f64_lit(v: f64) -> TokenStream {
    let lit = Literal::f64_unsuffixed(v);
    quote!(#lit)
}

fn u64_lit(v: u64) -> TokenStream {
    let lit = Literal::u64_unsuffixed(v);
    quote!(#lit)
}

/// `Some(x)` when given, else the runtime's default constant, so the defaults live in one place.
fn or_default(value: Option<TokenStream>, default: &str) -> TokenStream {
    let default = format_ident!("{}", default);
    value.unwrap_or_else(|| quote!(::perfgate_runtime::format::#default))
}

fn string(s: &str) -> TokenStream {
    quote!(::std::string::String::from(#s))
}

fn option<T>(value: Option<T>, f: impl FnOnce(T) -> TokenStream) -> TokenStream {
    match value {
        Some(v) => {
            let v = f(v);
            quote!(::core::option::Option::Some(#v))
        }
        None => quote!(::core::option::Option::None),
    }
}

pub fn spec_expr(args: &Args, name: &str) -> TokenStream {
    let format = quote!(::perfgate_runtime::format);
    let load = match &args.load {
        Load::Open { rate } => {
            let rate = f64_lit(*rate);
            quote!(#format::LoadModel::Open { rate: #rate })
        }
        Load::Ramping { stages } => {
            let stages = stages.iter().map(|s| {
                let duration_ms = u64_lit(s.duration_ms);
                let target_rate = f64_lit(s.target_rate);
                quote!(#format::Stage { duration_ms: #duration_ms, target_rate: #target_rate })
            });
            quote!(#format::LoadModel::Ramping { stages: ::std::vec![#(#stages),*] })
        }
        Load::Closed { users, think_ms } => {
            let users = u64_lit(*users);
            let think_ms = u64_lit(*think_ms);
            quote!(#format::LoadModel::Closed { users: #users, think_ms: #think_ms })
        }
    };
    let duration_ms = or_default(args.duration_ms.map(u64_lit), "DEFAULT_DURATION_MS");
    let warmup_ms = or_default(args.warmup_ms.map(u64_lit), "DEFAULT_WARMUP_MS");
    let timeout_ms = or_default(args.timeout_ms.map(u64_lit), "DEFAULT_TIMEOUT_MS");
    let regression_pct = or_default(args.regression_pct.map(f64_lit), "DEFAULT_REGRESSION_PCT");
    let cost_regression_pct = or_default(
        args.cost_regression_pct.map(f64_lit),
        "DEFAULT_COST_REGRESSION_PCT",
    );
    let max_in_flight = option(args.max_in_flight, u64_lit);
    let service = option(args.service.as_deref(), string);
    let data = args.data.iter().map(|d| string(d));
    let slos = args.slos.iter().map(|slo| {
        let request = option(slo.request.as_deref(), string);
        let metric = format_ident!("{}", slo.metric.variant());
        let op = format_ident!("{}", slo.op.variant());
        let threshold = f64_lit(slo.threshold);
        quote!(#format::Slo {
            request: #request,
            metric: #format::Metric::#metric,
            op: #format::Op::#op,
            threshold: #threshold,
        })
    });
    let only = args.tiers_only.iter().map(|t| string(t));
    let tier_durations = args.tier_durations.iter().map(|(tier, ms, _)| {
        let tier = string(tier);
        let ms = u64_lit(*ms);
        quote!((#tier, #ms))
    });
    let tier_warmups = args
        .tier_durations
        .iter()
        .filter_map(|(tier, _, w)| Some((tier, (*w)?)))
        .map(|(tier, ms)| {
            let tier = string(tier);
            let ms = u64_lit(ms);
            quote!((#tier, #ms))
        });
    let trends = args.trends.iter().map(|t| {
        let metric = format_ident!("{}", t.metric.variant());
        let allowance = match t.allowance {
            args::Allowance::PerHour(v) => {
                let v = f64_lit(v);
                quote!(#format::Allowance::PerHour(#v))
            }
            args::Allowance::PercentPerHour(v) => {
                let v = f64_lit(v);
                quote!(#format::Allowance::PercentPerHour(#v))
            }
        };
        quote!(#format::TrendSlo { metric: #format::TrendMetric::#metric, allowance: #allowance })
    });
    let name = string(name);
    quote! {
        #format::ScenarioSpec {
            name: #name,
            module_path: ::std::string::String::from(::core::module_path!()),
            // Spanned on the attribute (call site), so this is the attribute's file and line.
            file: ::std::string::String::from(::core::file!()),
            line: ::core::line!(),
            load: #load,
            duration_ms: #duration_ms,
            warmup_ms: #warmup_ms,
            timeout_ms: #timeout_ms,
            max_in_flight: #max_in_flight,
            slos: ::std::vec![#(#slos),*],
            regression_pct: #regression_pct,
            service: #service,
            data: ::std::vec![#(#data),*],
            cost_regression_pct: #cost_regression_pct,
            tiers: #format::TierSpec {
                only: ::std::vec![#(#only),*],
                duration_ms: ::std::collections::BTreeMap::from([#(#tier_durations),*]),
                warmup_ms: ::std::collections::BTreeMap::from([#(#tier_warmups),*]),
            },
            trends: ::std::vec![#(#trends),*],
        }
    }
}

/// A libtest test, ignored so that plain `cargo test` skips it, which runs the scenario.
fn wrapper(args: &Args, ident: &syn::Ident) -> TokenStream {
    let name = ident.unraw().to_string();
    let test_fn = format_ident!("{}{}", TEST_PREFIX, name, span = ident.span());
    let spec = spec_expr(args, &name);
    // Spanned on the fn's name so that a type error points there rather than at the attribute.
    let check = quote::quote_spanned!(ident.span()=> scenario(&#ident));
    quote! {
        // `::core::prelude::v1::test` rather than `test`: a `use tokio::test;` in scope would
        // otherwise take over the attribute.
        #[::core::prelude::v1::test]
        #[ignore = "perfgate scenario: run it with `cargo perfgate`"]
        #[allow(non_snake_case)]
        fn #test_fn() {
            ::perfgate_runtime::__private::run_test(#spec, #ident)
        }

        // The wrapper only exists under `cfg(test)`. This checks the scenario's types in every
        // build (so `cargo check` reports them), and counts as a use of the fn so that a scenario
        // in a crate's `src/` is not dead code.
        const _: () = {
            const fn scenario<F, Fut>(_: &F)
            where
                F: ::core::ops::Fn(::perfgate_runtime::Ctx) -> Fut,
                Fut: ::core::future::Future<Output = ::perfgate_runtime::Result>,
            {
            }
            #check;
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(attr: &str, item: &str) -> TokenStream {
        expand(attr.parse().unwrap(), item.parse().unwrap())
    }

    /// The generated wrapper fn, asserting the user's fn comes first, unchanged.
    fn wrapper_of(attr: &str, item: &str) -> syn::ItemFn {
        let out = expand_str(attr, item);
        let file: syn::File = syn::parse2(out).expect("the expansion parses as items");
        assert_eq!(
            file.items.len(),
            3,
            "the user's fn, the wrapper and the use of the fn"
        );
        let syn::Item::Const(check) = &file.items[2] else {
            panic!("third item is the type check")
        };
        let check = quote!(#check).to_string();
        assert!(check.starts_with("const _ : () ="), "{check}");
        let fn_name = item
            .split(['(', '<'])
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap();
        assert!(
            check.contains(&format!("scenario (& {fn_name})")),
            "{check}"
        );
        let user: TokenStream = item.parse().unwrap();
        let syn::Item::Fn(first) = &file.items[0] else {
            panic!("first item is the user's fn")
        };
        assert_eq!(quote!(#first).to_string(), user.to_string());
        let syn::Item::Fn(wrapper) = file.items[1].clone() else {
            panic!("second item is the wrapper")
        };
        wrapper
    }

    /// Messages of the `compile_error!`s in an expansion that failed, with the text of `item` each starts at.
    fn errors(attr: &str, item: &str) -> Vec<(String, String)> {
        let err = match (
            args::parse(attr.parse().unwrap()),
            syn::parse2::<syn::Item>(item.parse().unwrap()),
        ) {
            (Ok(_), Ok(syn::Item::Fn(f))) => match check_signature(&f.sig) {
                Ok(()) => panic!("{item:?} should be rejected"),
                Err(e) => e,
            },
            (Err(e), _) => e,
            (_, other) => panic!("unexpected parse: {other:?}"),
        };
        err.into_iter()
            .map(|e| {
                let start = e.span().start();
                let line = item.lines().nth(start.line - 1).unwrap_or("");
                (e.to_string(), line.chars().skip(start.column).collect())
            })
            .collect()
    }

    fn signature_error_at(item: &str, at: &str, says: &str) {
        let all = errors("rate = 1", item);
        assert_eq!(all.len(), 1, "{item:?}: {all:#?}");
        assert!(
            all[0].1.starts_with(at),
            "{item:?}: error points at {:?}, expected {at:?}",
            all[0].1
        );
        assert!(
            all[0].0.contains(says),
            "{item:?}: {:?} should contain {says:?}",
            all[0].0
        );
        assert!(
            all[0].0.contains(EXPECTED_SIGNATURE),
            "{:?} should show the expected form",
            all[0].0
        );
    }

    #[test]
    fn the_wrapper_is_an_ignored_test_that_hands_the_fn_to_the_runtime() {
        let wrapper = wrapper_of(
            r#"rate = 300, duration = "20s", p99 < "40ms""#,
            "async fn checkout(ctx: Ctx) -> perfgate_runtime::Result { Ok(()) }",
        );
        assert_eq!(wrapper.sig.ident, "__perfgate_checkout");
        assert!(wrapper.sig.inputs.is_empty() && wrapper.sig.asyncness.is_none());
        let attrs: Vec<String> = wrapper
            .attrs
            .iter()
            .map(|a| quote!(#a).to_string())
            .collect();
        assert_eq!(attrs[0], "# [:: core :: prelude :: v1 :: test]");
        assert_eq!(
            attrs[1],
            r#"# [ignore = "perfgate scenario: run it with `cargo perfgate`"]"#
        );
        let body = quote!(#wrapper).to_string();
        assert!(
            body.contains(":: perfgate_runtime :: __private :: run_test ("),
            "{body}"
        );
        assert!(
            body.trim_end().ends_with(", checkout) }"),
            "the fn is passed last: {body}"
        );
        for expected in [
            "name : :: std :: string :: String :: from (\"checkout\")",
            "load : :: perfgate_runtime :: format :: LoadModel :: Open { rate : 300.0 }",
            "duration_ms : 20000",
            "warmup_ms : :: perfgate_runtime :: format :: DEFAULT_WARMUP_MS",
            "regression_pct : :: perfgate_runtime :: format :: DEFAULT_REGRESSION_PCT",
            "metric : :: perfgate_runtime :: format :: Metric :: P99",
            "op : :: perfgate_runtime :: format :: Op :: Lt",
            "threshold : 40.0",
            "line : :: core :: line ! ()",
            "max_in_flight : :: core :: option :: Option :: None",
        ] {
            assert!(
                body.contains(expected),
                "expansion lacks {expected:?}: {body}"
            );
        }
    }

    #[test]
    fn other_load_models_and_optional_settings_in_the_spec() {
        let body = |attr: &str| {
            let w = wrapper_of(attr, "async fn s(c: Ctx) -> R { Ok(()) }");
            quote!(#w).to_string()
        };
        let closed = body(
            r#"users = 4, think = "1s", service = "api", data = ["a.jsonl"], pay.p99.9 <= "2ms""#,
        );
        for expected in [
            "LoadModel :: Closed { users : 4 , think_ms : 1000 }",
            "service : :: core :: option :: Option :: Some (:: std :: string :: String :: from (\"api\"))",
            "data : :: std :: vec ! [:: std :: string :: String :: from (\"a.jsonl\")]",
            "request : :: core :: option :: Option :: Some (:: std :: string :: String :: from (\"pay\"))",
            "Metric :: P999",
            "Op :: Le",
        ] {
            assert!(closed.contains(expected), "lacks {expected:?}: {closed}");
        }
        let ramp = body(r#"stages = [("1s", 10), ("2s", 20.5)], max_in_flight = 8"#);
        for expected in [
            "stages : :: std :: vec ! [:: perfgate_runtime :: format :: Stage { duration_ms : 1000 , target_rate : 10.0 } , \
             :: perfgate_runtime :: format :: Stage { duration_ms : 2000 , target_rate : 20.5 }]",
            "duration_ms : 3000",
            "max_in_flight : :: core :: option :: Option :: Some (8)",
        ] {
            assert!(ramp.contains(expected), "lacks {expected:?}: {ramp}");
        }
    }

    #[test]
    fn raw_identifiers_name_the_scenario_without_the_prefix() {
        let wrapper = wrapper_of("rate = 1", "async fn r#match(ctx: Ctx) -> R { Ok(()) }");
        assert_eq!(wrapper.sig.ident, "__perfgate_match");
        let body = quote!(#wrapper).to_string();
        assert!(body.contains("String :: from (\"match\")"), "{body}");
        assert!(body.contains(", r#match)"), "{body}");
    }

    #[test]
    fn errors_keep_the_users_fn_and_add_no_wrapper() {
        let item = "async fn checkout(ctx: Ctx) -> R { Ok(()) }";
        let out = expand_str("users = 0", item).to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("async fn checkout"), "{out}");
        assert!(!out.contains("__perfgate_"), "{out}");
    }

    #[test]
    fn signature_errors_point_at_the_offending_part() {
        signature_error_at(
            "fn checkout(ctx: Ctx) -> R { Ok(()) }",
            "fn checkout",
            "needs an async fn",
        );
        signature_error_at(
            "async fn checkout() -> R { Ok(()) }",
            "()",
            "takes one argument",
        );
        signature_error_at(
            "async fn checkout(ctx: Ctx, n: u32) -> R { Ok(()) }",
            "ctx: Ctx",
            "not 2",
        );
        signature_error_at(
            "async fn checkout(&self, ctx: Ctx) -> R { Ok(()) }",
            "&self",
            "cannot take `self`",
        );
        signature_error_at(
            "async fn checkout<T>(ctx: T) -> R { Ok(()) }",
            "<T>",
            "cannot be generic",
        );
        signature_error_at(
            "async fn checkout(ctx: C) -> R where C: Copy { Ok(()) }",
            "where",
            "where clause",
        );
        signature_error_at(
            "async unsafe fn checkout(ctx: Ctx) -> R { Ok(()) }",
            "unsafe",
            "unsafe fn",
        );
        signature_error_at(
            r#"async extern "C" fn checkout(ctx: Ctx) -> R { Ok(()) }"#,
            "extern",
            "`extern` ABI",
        );
        signature_error_at(
            "async fn checkout(ctx: Ctx) { }",
            ") { }",
            "returns `perfgate_runtime::Result`",
        );
    }

    #[test]
    fn attribute_and_signature_errors_are_reported_together() {
        let out = expand_str("durration = \"1s\", rate = 1", "fn checkout() {}").to_string();
        assert_eq!(out.matches("compile_error").count(), 4, "{out}");
        for message in [
            "unknown key `durration`",
            "needs an async fn",
            "takes one argument",
            "returns `perfgate_runtime::Result`",
        ] {
            assert!(out.contains(message), "lacks {message:?}: {out}");
        }
    }

    #[test]
    fn only_fns_can_be_scenarios() {
        let out = expand_str("rate = 1", "struct Checkout;").to_string();
        assert!(out.contains("goes on an async fn"), "{out}");
        assert!(out.contains("struct Checkout"), "{out}");
    }
}
